# SPDX-License-Identifier: MIT
"""Runs every fenced code block of README.md, docs/**/*.md and examples/*/README.md, so the docs
cannot drift from the code.

Usage (ctest runs it, tests/docs/CMakeLists.txt):
    doc_blocks.py run    --source DIR --cxx CXX --cc CC --include DIR... --lib LIBSHMLINK
                         --bin-path DIR... --pythonpath DIR [--only FILE] [--timeout S]
                         [--examples-not-built]
    doc_blocks.py list   --source DIR                 # what would run, and how
    doc_blocks.py paths  --source DIR                 # no reference leaves the repository

What happens to a block is decided by its language and by an optional marker, an HTML comment on
the line right above the opening fence (blank lines between are allowed):

    ```cpp / ```c      compiled with -Wall -Wextra -Werror and linked to libshmlink; run when it
                       defines main() (a complete program), else compiled as a fragment: its
                       #include lines at file scope, the rest inside the body of a function
                       returning int (so a fragment may `return 1;` on an error)
    ```python          run by the interpreter running this script (Debian's /usr/bin/python3)
    ```sh / ```bash    run by `bash -euo pipefail`, with the build's shmlink (and the examples'
                       shmlink-ao-loop, shmlink-cosim, shmlink-villas-echo) on PATH
    anything else      must carry a skip marker (a diagram, an output sample, a JSON schema)

    <!-- doctest: skip (REASON) -->        never run; the reason is required
    <!-- doctest: compile -->              a complete program that is compiled but not run
    <!-- doctest: twice first=A,B then=C,D [after=line] -->
                                           a complete C/C++ program run as two processes,
                                           `prog A B` and `prog C D`: the second at once, or once
                                           the first printed a line on stdout; both must exit 0
    <!-- doctest: synopsis -->             a usage synopsis: each `shmlink ...` line's subcommand
                                           is run with --help, which must name every option
                                           (--x, -x) the line and its indented continuations show
    <!-- doctest: pair=NAME role=reader --> two blocks, role=reader and role=writer, run at the
    <!-- doctest: pair=NAME role=writer --> same time as two processes: the reader started first,
                                           the writer once the reader printed a line on stdout;
                                           both must exit 0 (a two-terminal example)

Each block runs in a fresh scratch directory that is also its SHMLINK_DIR, with a time limit
(--timeout, 30 s; each process of a pair, the reader's first line included, has it too), and
the test fails when a block fails, and on any block that has neither a language it
can run nor a skip marker. `paths` fails when a file of the repository (README.md, the CMake
files, docs/, include/, src/, tools/, examples/, python/, tests/, scripts/, bench/, cmake/, .ci/;
this script excepted) mentions a path outside it: the design documents' `../shared`, the build
machine's `/work`, or a home directory (`/home/NAME`, `/root/`, `/Users/NAME`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

RUNNABLE = {"cpp", "c++", "c", "python", "sh", "bash"}
MARKER = re.compile(r"^\s*<!--\s*doctest:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
BLOCK_TIMEOUT_S = 30


@dataclass
class Block:
    """One fenced block of a Markdown file."""

    path: Path
    line: int          # 1-based line of the opening fence
    lang: str
    code: str
    marker: str = ""   # the text of the doctest marker, "" when none
    attrs: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files(source: Path) -> list[Path]:
    """README.md, every Markdown file under docs/ and each example's README.md."""
    return ([source / "README.md"] + sorted((source / "docs").rglob("*.md")) +
            sorted((source / "examples").glob("*/README.md")))


def parse_marker(text: str) -> dict:
    """'pair=q role=reader' -> {'pair': 'q', 'role': 'reader'}; 'skip (why)' -> {'skip': 'why'}."""
    m = re.match(r"skip\s*\((.+)\)\s*$", text)
    if m:
        return {"skip": m.group(1).strip()}
    if text == "compile":
        return {"compile": "1"}
    if text == "synopsis":
        return {"synopsis": "1"}
    if text.split()[:1] == ["twice"]:
        attrs = dict(kv.split("=", 1) for kv in text.split()[1:] if "=" in kv)
        if not {"first", "then"} <= set(attrs) <= {"first", "then", "after"} or attrs.get("after", "line") != "line":
            return {"bad": text}
        return {"twice": "1", **attrs}
    attrs = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)
    if set(attrs) != {"pair", "role"} or attrs["role"] not in ("reader", "writer"):
        return {"bad": text}
    return attrs


def extract(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, each with the marker right above it."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i, marker = 0, ""
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m:
            marker = m.group(1)
            i += 1
            continue
        f = FENCE.match(lines[i])
        if f:
            indent, fence, lang = f.group(1), f.group(2), f.group(3).lower()
            body, j = [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            blocks.append(Block(path, i + 1, lang, "\n".join(body) + "\n", marker,
                                parse_marker(marker) if marker else {}))
            marker, i = "", j + 1
            continue
        if lines[i].strip():
            marker = ""  # a marker belongs to the block right below it only
        i += 1
    return blocks


def problems_of(block: Block) -> str:
    """Why a block cannot be handled, or ""."""
    if "bad" in block.attrs:
        return f"unreadable doctest marker '{block.marker}'"
    if "skip" in block.attrs:
        return "" if block.attrs["skip"] else "a skip marker needs a reason: skip (why)"
    if "synopsis" in block.attrs:
        return "" if SYNOPSIS_COMMAND.search(block.code) else "a synopsis names no `shmlink` command"
    if block.lang not in RUNNABLE:
        lang = block.lang or "no language"
        return (f"a ```{lang} block cannot be run: give it a language that runs "
                "(cpp, c, python, sh) or a marker <!-- doctest: skip (reason) -->")
    if "pair" in block.attrs and block.lang not in ("python", "cpp", "c++", "c"):
        return "pairs are python or C++ programs"
    if "twice" in block.attrs and block.lang not in ("cpp", "c++", "c"):
        return "a block run twice is a C or C++ program"
    return ""


class Runner:
    """Compiles and runs blocks in scratch directories."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="shmlink-doctest-"))
        self.count = 0
        self.compiled: dict = {}  # id(block) -> (executable or None, complete?) or the failure

    def scratch(self) -> Path:
        self.count += 1
        d = self.work / f"b{self.count}"
        d.mkdir()
        return d

    def env(self, scratch: Path) -> dict:
        env = dict(os.environ)
        env["SHMLINK_DIR"] = str(scratch)
        # Names outside the stream directory (VILLAS regions in /dev/shm) that a page's blocks
        # append this to, so that runs in parallel never meet.
        env["SHMLINK_DOC_SUFFIX"] = f"-doc{os.getpid()}-{scratch.name}"
        bins = [str(Path(d).resolve()) for d in self.args.bin_path]
        env["PATH"] = os.pathsep.join(bins + [env.get("PATH", "/usr/bin:/bin")])
        env["PYTHONPATH"] = str(Path(self.args.pythonpath).resolve()) if self.args.pythonpath else ""
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("MILK_SHM_DIR", None)
        return env

    def compile(self, block: Block, scratch: Path) -> tuple[Path | None, bool]:
        """Compiles a C or C++ block: (executable or None for a fragment, complete program?)."""
        is_c = block.lang == "c"
        complete = re.search(r"\bint\s+main\s*\(", block.code) is not None
        if complete:
            source = block.code
        else:
            includes = [ln for ln in block.code.splitlines() if ln.lstrip().startswith("#include")]
            rest = [ln for ln in block.code.splitlines() if not ln.lstrip().startswith("#include")]
            prelude = "" if is_c else "using namespace std::chrono_literals;\n"
            source = ("\n".join(includes) + ("\n#include <chrono>\n" if not is_c else "\n") +
                      "static int doc_fragment(void);\nstatic int doc_fragment(void) {\n" + prelude +
                      "\n".join(rest) + "\nreturn 0;\n}\nint main(void) { (void)doc_fragment; return 0; }\n")
        src = scratch / ("block.c" if is_c else "block.cpp")
        src.write_text(source)
        exe = scratch / "block"
        compiler = self.args.cc if is_c else self.args.cxx
        std = "-std=c11" if is_c else "-std=c++20"
        cmd = [compiler, std, "-Wall", "-Wextra", "-Werror", "-O0", "-pthread"]
        cmd += [f"-I{Path(d).resolve()}" for d in self.args.include]
        lib = Path(self.args.lib).resolve()
        if complete:
            cmd += [str(src), "-o", str(exe), str(lib), f"-Wl,-rpath,{lib.parent}"]
        else:
            cmd += ["-fsyntax-only", str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BlockFailure(f"does not compile ({' '.join(cmd[:2])} ... -Wall -Wextra -Werror):\n"
                               + r.stdout + r.stderr)
        return (exe if complete else None), complete

    def precompile(self, blocks: list[Block]) -> None:
        """Compiles every C and C++ block, two at a time (compiling is most of this test's time);
        a failure is raised again when its block runs."""
        todo = [b for b in blocks if b.lang in ("cpp", "c++", "c") and "skip" not in b.attrs]
        dirs = {id(b): self.scratch() for b in todo}

        def one(b: Block):
            try:
                return self.compile(b, dirs[id(b)])
            except (BlockFailure, subprocess.TimeoutExpired) as e:
                return e

        with ThreadPoolExecutor(max_workers=2) as pool:
            for b, result in zip(todo, pool.map(one, todo)):
                self.compiled[id(b)] = result

    def command(self, block: Block, scratch: Path) -> list[str] | None:
        """The command that runs a block (compiled by precompile()), or None when it is only compiled."""
        if block.lang in ("cpp", "c++", "c"):
            result = self.compiled.get(id(block)) or self.compile(block, scratch)
            if isinstance(result, Exception):
                raise BlockFailure(str(result))
            exe, complete = result
            if not complete or "compile" in block.attrs:
                return None
            return [str(exe)]
        if block.lang == "python":
            (scratch / "block.py").write_text(block.code)
            return [sys.executable, str(scratch / "block.py")]
        (scratch / "block.sh").write_text(block.code)
        return ["bash", "-euo", "pipefail", str(scratch / "block.sh")]

    def check_synopsis(self, block: Block) -> None:
        """Every option a usage synopsis names is in the --help of the command it names."""
        scratch = self.scratch()
        for command, words in synopsis_commands(block.code):
            r = subprocess.run(["shmlink", *command, "--help"], cwd=scratch, env=self.env(scratch),
                               capture_output=True, text=True, timeout=self.args.timeout,
                               stdin=subprocess.DEVNULL)
            name = " ".join(["shmlink", *command])
            if r.returncode != 0:
                raise BlockFailure(f"`{name} --help` exited {r.returncode}:\n{r.stdout}{r.stderr}")
            missing = [o for o in OPTION.findall(words)
                       if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", r.stdout)]
            if missing:
                raise BlockFailure(f"`{name} --help` has no {', '.join(missing)}:\n{r.stdout}")

    def run_one(self, block: Block) -> None:
        if "synopsis" in block.attrs:
            self.check_synopsis(block)
            return
        scratch = self.scratch()
        cmd = self.command(block, scratch)
        if cmd is None:
            return
        p = Process("the block", cmd, scratch, self.env(scratch))
        try:
            p.proc.wait(self.args.timeout)
        except subprocess.TimeoutExpired:
            p.stop()
            raise BlockFailure(f"still running after {self.args.timeout:g} s (long-running blocks need "
                               f"<!-- doctest: skip (reason) -->):\n{p.report()}") from None
        p.stop()  # what the block left running in the background
        if p.proc.returncode != 0:
            raise BlockFailure(f"exit status {p.proc.returncode}:\n{p.report()}")

    def run_pair(self, reader: Block, writer: Block) -> None:
        """Reader first; the writer once the reader printed its first line on stdout."""
        scratch = self.scratch()
        (scratch / "r").mkdir()
        (scratch / "w").mkdir()
        rcmd = self.command(reader, scratch / "r")
        wcmd = self.command(writer, scratch / "w")
        if rcmd is None or wcmd is None:
            raise BlockFailure("a pair's blocks must both be complete programs")
        self.run_two(f"pair '{reader.attrs['pair']}' (reader {reader.where}, writer {writer.where})",
                     ("reader", f"reader ({reader.where})", rcmd), ("writer", f"writer ({writer.where})", wcmd),
                     scratch, after_line=True)

    def run_twice(self, block: Block) -> None:
        """One program run as two processes with the marker's arguments: `then` starts once
        `first` printed a line on stdout (after=line) or at once."""
        scratch = self.scratch()
        cmd = self.command(block, scratch)
        if cmd is None:
            raise BlockFailure("a block run twice must be a complete program")
        first, then = block.attrs["first"].split(","), block.attrs["then"].split(",")
        self.run_two(f"{block.where} run as `{' '.join(first)}` and `{' '.join(then)}`",
                     ("first", f"`{' '.join(first)}`", cmd + first), ("second", f"`{' '.join(then)}`", cmd + then),
                     scratch, after_line=block.attrs.get("after") == "line")

    def run_two(self, title: str, first: tuple, second: tuple, scratch: Path, after_line: bool) -> None:
        """Runs two processes (role, name, command) in `scratch`: the second once the first printed
        a line on stdout (after_line) or at once; both must exit 0, each within the block time
        limit. A failure names both and shows what each printed on stdout and stderr."""
        env = self.env(scratch)
        limit = self.args.timeout
        procs: dict[str, Process] = {}

        def failure(what: str) -> BlockFailure:
            for p in procs.values():
                p.stop()
            shown = "".join(p.report() for p in procs.values())
            return BlockFailure(f"{title}: {what}\n{shown}")

        role1, role2 = first[0], second[0]
        procs[role1] = Process(first[1], first[2], scratch, env)
        if after_line:
            p = procs[role1]
            if not p.first_line.wait(limit):
                raise failure(f"the {role1} printed no line on stdout within {limit:g} s (it prints "
                              "that it is ready, then waits)")
            if not p.out:
                try:
                    p.proc.wait(limit)
                except subprocess.TimeoutExpired:
                    pass
                raise failure(f"the {role1} closed its stdout ({p.proc.returncode}) before printing "
                              "that it is ready")
        procs[role2] = Process(second[1], second[2], scratch, env)
        deadline = time.monotonic() + limit
        for role in (role2, role1):
            p = procs[role]
            try:
                p.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise failure(f"the {role} was still running after {limit:g} s") from None
            p.stop()  # what it left running in the background
            if p.proc.returncode != 0:
                raise failure(f"the {role} exited {p.proc.returncode}")

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


#: A synopsis line that starts a command, and the options it names.
SYNOPSIS_COMMAND = re.compile(r"^shmlink\b", re.M)
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def synopsis_commands(code: str) -> list[tuple[list[str], str]]:
    """The commands of a usage synopsis: (subcommand words, the text of the command with its
    continuation lines). `shmlink memif bench [--sizes ...]` -> (['memif', 'bench'], '...')."""
    commands: list[tuple[list[str], str]] = []
    for line in code.splitlines():
        if SYNOPSIS_COMMAND.match(line):
            words = line.split()[1:]
            sub = []
            for w in words:
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                sub.append(w)
            commands.append((sub, " ".join(words[len(sub):])))
        elif line[:1].isspace() and commands:
            commands[-1] = (commands[-1][0], commands[-1][1] + " " + line.strip())
    return commands


class Process:
    """A block's program running in its own session (process group), its stdout and stderr
    collected apart by two threads (a pipe is never left to fill up); first_line is set once
    stdout has a line or ends. stop() kills the whole group: nothing a block started in the
    background outlives it, even when the block fails."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict) -> None:
        self.name = name
        self.out: list[str] = []
        self.err: list[str] = []
        self.first_line = threading.Event()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, True),
                                         daemon=True),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, False),
                                         daemon=True)]
        for t in self.threads:
            t.start()

    def _pump(self, stream, sink: list[str], first: bool) -> None:
        for line in stream:
            sink.append(line)
            if first:
                self.first_line.set()
        if first:
            self.first_line.set()

    def drain(self) -> None:
        """Waits (bounded) for the collecting threads once the process has exited or was killed."""
        for t in self.threads:
            t.join(5)

    def stop(self) -> None:
        """Kills the process and everything left in its group, then collects the output."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
        self.proc.wait()
        self.drain()

    def report(self) -> str:
        return (f"--- {self.name} stdout:\n{''.join(self.out)}"
                f"--- {self.name} stderr:\n{''.join(self.err)}")


class BlockFailure(Exception):
    """A block that does not compile or run as the docs say."""


def cmd_run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    files = [source / f for f in args.only] if args.only else doc_files(source)
    blocks = [b for f in files for b in extract(f)]
    bad = [(b, p) for b in blocks if (p := problems_of(b))]
    for b, p in bad:
        print(f"{b.where}: {p}", file=sys.stderr)
    pairs: dict[str, dict[str, Block]] = {}
    for b in blocks:
        if "pair" in b.attrs:
            pairs.setdefault(f"{b.path}:{b.attrs['pair']}", {})[b.attrs["role"]] = b
    for name, roles in pairs.items():
        if set(roles) != {"reader", "writer"}:
            print(f"{name}: a pair needs one role=reader and one role=writer block", file=sys.stderr)
            bad.append((None, name))
    if bad:
        return 1
    runner = Runner(args)
    failed = ran = skipped = not_built = 0
    start = time.monotonic()
    try:
        runner.precompile(blocks)
        for b in blocks:
            if "skip" in b.attrs or b.attrs.get("role") == "writer":
                skipped += "skip" in b.attrs
                continue
            if args.examples_not_built and b.path.parent.parent == source / "examples":
                not_built += 1
                continue
            try:
                if b.attrs.get("role") == "reader":
                    runner.run_pair(b, pairs[f"{b.path}:{b.attrs['pair']}"]["writer"])
                elif "twice" in b.attrs:
                    runner.run_twice(b)
                else:
                    runner.run_one(b)
                ran += 1
            except BlockFailure as e:
                failed += 1
                print(f"{b.where}: ```{b.lang} block: {e}\n--- the block:\n{b.code}---", file=sys.stderr)
    finally:
        runner.close()
    print(f"doc blocks: {ran} run, compiled or checked, {skipped} skipped with a reason, {failed} failed "
          f"({time.monotonic() - start:.1f} s)" +
          (f"; {not_built} of examples/*/README.md not run: the examples are not built" if not_built else ""))
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    for f in doc_files(Path(args.source)):
        for b in extract(f):
            how = problems_of(b) or (f"skip ({b.attrs['skip']})" if "skip" in b.attrs else
                                     " ".join(f"{k}={v}" for k, v in b.attrs.items()) or "run")
            print(f"{b.where}: {b.lang or '-'}: {how}")
    return 0


#: A path that leaves the repository: the design documents' folder (`../shared`, however many
#: `../`), the build machine's tree (`/work`), or someone's home directory.
OUTSIDE = re.compile(r"\.\./(?:\.\./)*shared\b|(?<![\w.-])/work\b|(?<![\w.-])(?:/home|/Users|/root)/[\w.-]")

#: What `paths` reads: the top-level files, and every file under these folders.
SCANNED_FILES = ("README.md", "CMakeLists.txt", "CMakePresets.json")
SCANNED_DIRS = ("docs", "include", "src", "tools", "examples", "python", "tests", "scripts", "bench",
                "cmake", ".ci")


def scanned(source: Path) -> list[Path]:
    """The files `paths` checks: SCANNED_FILES and SCANNED_DIRS, without this script (its patterns
    name the paths it looks for)."""
    files = [source / f for f in SCANNED_FILES if (source / f).is_file()]
    for top in SCANNED_DIRS:
        files += [p for p in sorted((source / top).rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts]
    me = Path(__file__).resolve()
    return [f for f in files if f.resolve() != me]


def cmd_paths(args: argparse.Namespace) -> int:
    source = Path(args.source)
    files = scanned(source)
    found = 0
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                print(f"{f.relative_to(source)}:{n}: points outside the repository: {line.strip()}",
                      file=sys.stderr)
                found += 1
    print(f"references outside the repository: {found} in {len(files)} files")
    return 1 if found else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "list", "paths"])
    p.add_argument("--source", required=True, help="the repository root")
    p.add_argument("--cxx", default="c++")
    p.add_argument("--cc", default="cc")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--lib", default="", help="libshmlink.so to link")
    p.add_argument("--bin-path", action="append", default=[], help="prepended to PATH")
    p.add_argument("--pythonpath", default="")
    p.add_argument("--only", action="append", default=[], help="a Markdown file (relative to --source)")
    p.add_argument("--examples-not-built", action="store_true",
                   help="leave out the blocks of examples/*/README.md (they run the example programs)")
    p.add_argument("--timeout", type=float, default=BLOCK_TIMEOUT_S,
                   help=f"seconds a block (each process of a pair) may run (default {BLOCK_TIMEOUT_S})")
    args = p.parse_args()
    return {"run": cmd_run, "list": cmd_list, "paths": cmd_paths}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
