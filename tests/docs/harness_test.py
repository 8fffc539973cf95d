# SPDX-License-Identifier: MIT
"""Tests of doc_blocks.py itself, on small files written here (no build needed: the blocks are
Python). `run`: a two-terminal pair whose reader never prints, or whose writer fails, fails within
the block time limit, naming both blocks (file:line) and showing what each process printed on
stdout and on stderr; a reader's stderr does not count as the line that starts the writer.
`paths`: a reference that leaves the repository is found in every kind of file it scans.

Usage: harness_test.py DOC_BLOCKS_PY
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOC_BLOCKS = Path(sys.argv[1]).resolve()
LIMIT_S = 2          # the block time limit where a case expects it to expire
ROOMY_S = 10         # the block time limit where a case expects the processes to start and end
HANG_S = 60          # the harness itself is called hung after this (its pairs must end in ~2 x limit)


def pair(reader: str, writer: str) -> str:
    """A Markdown file with one reader/writer pair; its opening fences are on the lines
    fence_lines() gives."""
    return ("# fixture\n\n"
            "<!-- doctest: pair=p role=reader -->\n```python\n" + reader + "\n```\n\n"
            "<!-- doctest: pair=p role=writer -->\n```python\n" + writer + "\n```\n")


def fence_lines(reader: str) -> tuple[str, str]:
    """'fixture.md:N' of the reader's and of the writer's block in pair(reader, ...)."""
    writer_line = 4 + reader.count("\n") + 1 + 3 + 1
    return "fixture.md:4", f"fixture.md:{writer_line}"


def run(markdown: str, limit: float = LIMIT_S) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="shmlink-doc-harness-") as d:
        (Path(d) / "fixture.md").write_text(markdown)
        try:
            r = subprocess.run([sys.executable, str(DOC_BLOCKS), "run", "--source", d, "--only", "fixture.md",
                                "--timeout", str(limit)], capture_output=True, text=True, timeout=HANG_S)
        except subprocess.TimeoutExpired:
            sys.exit(f"FAIL: doc_blocks.py still running after {HANG_S} s (a pair's reader that never "
                     "prints must fail within the block time limit)")
    return r.returncode, r.stdout + r.stderr


def expect_failure(title: str, markdown: str, *needles: str, limit: float = LIMIT_S) -> None:
    rc, out = run(markdown, limit)
    missing = [n for n in needles if n not in out]
    if rc == 0 or missing:
        sys.exit(f"FAIL: {title}: exit {rc}, missing {missing} in the output:\n{out}")
    print(f"ok: {title}")


SILENT = "import sys, time\nprint('reader-err', file=sys.stderr, flush=True)\ntime.sleep(600)"
expect_failure(
    "a reader that never prints on stdout fails, both blocks named",
    pair(SILENT, "print('writer ran')"),
    *fence_lines(SILENT), "printed no line on stdout within 2 s", "reader-err")
expect_failure(
    "a failing writer fails the pair, both outputs shown",
    pair("import sys, time\nprint('reader-waits', flush=True)\nprint('reader-err', file=sys.stderr)\n"
         "time.sleep(600)",
         "import sys\nprint('writer-out')\nprint('writer-err', file=sys.stderr)\nsys.exit(3)"),
    "fixture.md:4", "the writer exited 3", "reader-waits", "reader-err", "writer-out", "writer-err",
    limit=ROOMY_S)
expect_failure(
    "a reader that does not end after the writer fails",
    pair("import time\nprint('reader-waits', flush=True)\ntime.sleep(600)", "print('writer ran')"),
    "fixture.md:4", "the reader was still running after 2 s", "writer ran")
rc, out = run(pair("import sys, time\nprint('reader-waits', flush=True)\nprint('x' * 200000, file=sys.stderr)\n"
                   "import pathlib\nwhile not pathlib.Path('go').exists(): time.sleep(0.01)\nprint('reader done')",
                   "import pathlib\npathlib.Path('go').touch()"), ROOMY_S)
if rc != 0:
    sys.exit(f"FAIL: a pair whose reader writes a lot on stderr and waits for its writer: exit {rc}\n{out}")
print("ok: a working pair passes (its reader's large stderr does not block it)")


# `paths` on a small tree: one reference out of the repository in each kind of file it scans. The
# paths are put together here so that this file itself does not trip the check on the real tree.
UP, WORK, HOME = "../" + "../" + "shared", "/" + "work", "/" + "home"
tree = {
    "CMakeLists.txt": f"include({UP}/x.cmake)\n",
    "python/shmlink/x.py": f"# see {UP}/reference/memif.md\n",
    "tests/unit/a.cpp": f"// built in {WORK}/main/src\n",
    "scripts/s": f"cd {HOME}/alice/shmlink\n",
    "examples/e/README.md": "fine: /dev/shm, /milk/shm, /tmp/x.im.shm\n" + "/" + "root/.cache\n",
    "cmake/m.cmake": f"set(X {WORK})\n",
    "docs/ok.md": "/dev/shm and /milk/shm; ../docs/reference/memif.md; /workspace is not it\n",
}
with tempfile.TemporaryDirectory(prefix="shmlink-doc-harness-") as d:
    for name, text in tree.items():
        (Path(d) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(d) / name).write_text(text)
    r = subprocess.run([sys.executable, str(DOC_BLOCKS), "paths", "--source", d], capture_output=True,
                       text=True, timeout=HANG_S)
    out = r.stdout + r.stderr
    want = ["CMakeLists.txt:1", "python/shmlink/x.py:1", "tests/unit/a.cpp:1", "scripts/s:1",
            "examples/e/README.md:2", "cmake/m.cmake:1", "references outside the repository: 6 in"]
    missing = [w for w in want if w not in out]
    if r.returncode == 0 or missing or "docs/ok.md" in out:
        sys.exit(f"FAIL: paths: exit {r.returncode}, missing {missing} in the output:\n{out}")
print("ok: paths finds a reference out of the repository in each kind of file, and only those")

# A usage synopsis is checked against the --help of the command it names (a stand-in `shmlink`).
with tempfile.TemporaryDirectory(prefix="shmlink-doc-harness-") as d:
    fake = Path(d) / "bin" / "shmlink"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n[ \"$1 $2 $3\" = 'memif ping --help' ] || exit 2\n"
                    "echo 'Options:'; echo '  -c UINT  count'; echo '  --no-arp  skip ARP'\n")
    fake.chmod(0o755)
    for name, synopsis, ok in (
            ("good.md", "shmlink memif ping [-c N] [--no-arp]\n", True),
            ("bad.md", "shmlink memif ping [-c N]\n                   [--no-arp] [--gone]\n", False)):
        (Path(d) / name).write_text(f"<!-- doctest: synopsis -->\n```\n{synopsis}```\n")
        r = subprocess.run([sys.executable, str(DOC_BLOCKS), "run", "--source", d, "--only", name,
                            "--bin-path", str(fake.parent)], capture_output=True, text=True, timeout=HANG_S)
        out = r.stdout + r.stderr
        if (r.returncode == 0) != ok or (not ok and "`shmlink memif ping --help` has no --gone" not in out):
            sys.exit(f"FAIL: synopsis {name}: exit {r.returncode}\n{out}")
print("ok: a synopsis passes when --help names its options, and fails naming an option it lacks")

# A shell block that fails with a command left in the background: the failure is reported at once
# (not when the time limit expires) and the background command is killed with the block.
rc, out = run("```sh\nsleep 600 & echo \"background $!\"\nexit 3\n```\n", ROOMY_S)
if rc == 0 or "exit status 3" not in out or "background " not in out:
    sys.exit(f"FAIL: a failing sh block with a background command: exit {rc}\n{out}")
pid = int(out.split("background ", 1)[1].split()[0])
for _ in range(500):  # bounded: 5 s for the killed process to be reaped
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        break
    if state in ("Z", "X"):
        break
    time.sleep(0.01)
else:
    sys.exit(f"FAIL: the block's background command (pid {pid}) still runs after the block ended")
print("ok: a failing sh block is reported at once and its background command is killed")
