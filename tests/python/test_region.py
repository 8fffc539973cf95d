# SPDX-License-Identifier: MIT
"""shmlink.Region: a stream and a queue side by side in one region file, created here and used by
name from a second Python process; numpy views of a stream in a region; entries, remove, and the
errors mapped to the built-in exceptions."""

from __future__ import annotations

import gc
import mmap
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import shmlink

SIZE = 1 << 20

# The second process: opens the region by path, reads the stream's frame (a copy and a view),
# pops the queue's samples, writes a frame back and pushes an answer.
OTHER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import shmlink
    with shmlink.Region(sys.argv[1]) as r:
        names = sorted((e["name"], e["kind"], e["state"]) for e in r.entries())
        assert names == [("meas", "queue", "ready"), ("wfs", "stream", "ready")], names
        s = r.open_stream("wfs")
        q = r.open_queue("meas", max_values=2)
    assert s.view().sum() == s.read().sum() == 15  # usable after the Region is closed
    got = [q.pop(timeout=5).tolist() for _ in range(3)]
    assert got == [[k, k * 0.5] for k in range(3)], got
    s.write(np.full((2, 3), 9, np.uint16))
    q.push([100, 0.25])
    print("other: ok", flush=True)
    """
)


@pytest.fixture
def region(streamdir):
    r = shmlink.Region.create("ao", SIZE)
    yield r
    r.close()


def test_a_stream_and_a_queue_in_one_region_used_by_name_from_another_process(region, streamdir):
    assert region.path == os.path.join(streamdir, "ao.region.shm") == shmlink.region_path("ao")
    assert region.size == SIZE and os.path.getsize(region.path) == SIZE
    s = region.create_stream("wfs", np.arange(6, dtype=np.uint16).reshape(2, 3))
    q = region.create_queue("meas", capacity=8, max_values=2, signals=[(0, "k", "i64"), (1, "v")])
    for k in range(3):
        q.push([k, k * 0.5])
    assert s.cnt0 == 1 and s.shape == (2, 3) and s.dtype == np.uint16
    out = subprocess.run([sys.executable, "-c", OTHER, region.path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "other: ok\n"
    assert s.cnt0 == 2 and (s.read() == 9).all()
    back = q.pop(timeout=5)
    assert back.tolist() == [100, 0.25]  # typed by the queue's table in the region


def test_a_view_of_a_stream_in_a_region_is_zero_copy_and_keeps_the_stream_open(region):
    s = region.create_stream("img", shape=(4, 5), dtype="float32")
    v = s.view()
    assert v.shape == (4, 5) and v.dtype == np.float32 and not v.flags.writeable
    s.write(np.full((4, 5), 2.5, np.float32))
    assert (v == 2.5).all()  # the view is the region's bytes, not a copy
    with pytest.raises(BufferError):
        s.close()
    del v
    s.close()


def test_entries_remove_and_reuse(region):
    region.create_stream("a", shape=(16,), dtype="uint8")
    region.create_queue("b", capacity=4, max_values=1)
    entries = {e["name"]: e for e in region.entries()}
    assert set(entries) == {"a", "b"}
    for e in entries.values():
        assert e["state"] == "ready" and e["size"] > 0 and e["offset"] % 4096 == 0 and e["generation"] >= 1
        assert e["offset"] + e["size"] <= SIZE
    assert entries["a"]["kind"] == "stream" and entries["b"]["kind"] == "queue"
    region.remove("a")
    assert [e["name"] for e in region.entries()] == ["b"]
    with pytest.raises(FileNotFoundError, match="a"):
        region.open_stream("a")
    region.create_stream("a", shape=(16,), dtype="uint8")  # the name and the bytes can be used again
    assert sorted(e["name"] for e in region.entries()) == ["a", "b"]


def test_a_removed_channel_raises_replaced_on_write_and_push(region):
    s = region.create_stream("wgone", shape=(4,), dtype="float32")
    q = region.create_queue("cgone", capacity=4, max_values=1)
    q.push([1.0])
    region.remove("wgone")
    region.remove("cgone")
    with pytest.raises(shmlink.ReplacedError, match="wgone"):
        s.write(np.zeros(4, np.float32))
    with pytest.raises(shmlink.ReplacedError, match="cgone"):
        q.push([2.0])
    assert q.pop(timeout=1).tolist() == [1.0]  # what was pushed before the removal
    with pytest.raises(shmlink.ReplacedError):
        q.pop(timeout=1)
    assert [e["state"] for e in region.entries()] == ["removing", "removing"]  # held by s and q
    s.close()
    q.close()


def test_errors_map_to_the_builtin_exceptions(region, streamdir):
    region.create_stream("s", shape=(2,), dtype="int32")
    region.create_queue("q", max_values=1)
    with pytest.raises(FileExistsError, match="s"):
        region.create_stream("s", shape=(2,), dtype="int32")
    with pytest.raises(FileNotFoundError, match="nothing"):
        region.open_queue("nothing")
    with pytest.raises(shmlink.LayoutError, match="q"):
        region.open_stream("q")  # a queue, not a stream
    with pytest.raises(shmlink.LayoutError):
        region.create_stream("s", shape=(3,), dtype="int32", mode="open_or_create")  # another shape
    with pytest.raises(shmlink.NoSpaceError):
        region.create_stream("big", shape=(SIZE,), dtype="uint8")
    with pytest.raises(shmlink.ArgumentError):
        region.create_queue("bad/name", max_values=1)
    with pytest.raises(FileNotFoundError, match="absent"):
        shmlink.Region("absent")
    with pytest.raises(FileExistsError):
        shmlink.Region.create("ao", SIZE)
    with pytest.raises(shmlink.ArgumentError):
        shmlink.Region.create("odd", 100_000)  # not a power of two
    with shmlink.Region("ao", writable=False) as ro:
        assert [e["name"] for e in ro.entries()] == ["s", "q"]
        with pytest.raises(PermissionError):
            ro.create_queue("more", max_values=1)
    region.close()
    assert region.closed
    with pytest.raises(shmlink.ClosedError, match="closed"):
        region.entries()


# ---- the GIL around the directory lock -------------------------------------------------------

def test_a_call_waiting_for_the_directory_lock_lets_other_threads_run(region):
    # A lock word naming a holder of another kernel (a foreign hash): the next directory change
    # waits the lock timeout (2 s) before it takes the lock over. Meanwhile another Python thread
    # must keep running: the call waits with the GIL released.
    foreign_token = (0x5EED1E55 << 32) | 4242
    with open(region.path, "r+b") as f:
        f.seek(192)  # the lock word of the directory header
        f.write(struct.pack("<Q", foreign_token))
    ticks = 0
    stop = threading.Event()

    def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        before = ticks
        q = region.create_queue("after_takeover", max_values=1)  # waits out the stale lock
        during = ticks - before
    finally:
        stop.set()
        t.join(10)
    assert during >= 10, f"the other thread ran {during} times while create_queue waited for the lock"
    q.push([1.0])
    assert [e["name"] for e in region.entries()] == ["after_takeover"]


# ---- memory the caller maps: create_memfd, attach, format --------------------------------------

# A second process: maps the memfd it inherited and attaches the region there.
ATTACH_FD = textwrap.dedent(
    """
    import mmap, sys
    import shmlink
    fd, size = int(sys.argv[1]), int(sys.argv[2])
    mm = mmap.mmap(fd, size)
    r = shmlink.Region.attach(mm, what="inherited memfd")
    q = r.open_queue("q", max_values=1)
    assert q.pop(timeout=5).tolist() == [7.0]
    q.push([8.0])
    print("child:", [e["name"] for e in r.entries()], r.path, flush=True)
    """
)


def test_create_memfd_and_attach_it_in_this_and_another_process():
    r = shmlink.Region.create_memfd("pymemfd", SIZE)
    assert r.path == "memfd:pymemfd" and r.size == SIZE and r.fd >= 0 and r.same_kernel
    q = r.create_queue("q", capacity=4, max_values=1)
    mm = mmap.mmap(r.fd, SIZE)
    here = shmlink.Region.attach(mm, what="my mapping")
    assert here.path == "my mapping" and here.fd == -1
    assert [e["name"] for e in here.entries()] == ["q"]
    q.push([7.0])
    out = subprocess.run([sys.executable, "-c", ATTACH_FD, str(r.fd), str(SIZE)], pass_fds=[r.fd],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "child: ['q'] inherited memfd\n"
    assert here.open_queue("q", max_values=1).pop(timeout=5).tolist() == [8.0]
    with pytest.raises(BufferError):
        mm.close()  # the attached region holds the buffer
    here.close()
    gc.collect()
    mm.close()  # nothing holds it any more
    r.close()


def test_format_memory_of_an_mmap_then_attach_it_as_another_kernel_would():
    mm = mmap.mmap(-1, SIZE)
    r = shmlink.Region.format(mm, what="bar2", same_kernel=False, max_entries=16)
    assert r.path == "bar2" and r.size == SIZE and not r.same_kernel
    s = r.create_stream("wfs", np.arange(4, dtype=np.int32))
    again = shmlink.Region.attach(mm, what="bar2 again")
    assert not again.same_kernel, "the directory records that other kernels use it"
    assert (again.open_stream("wfs").read() == np.arange(4)).all()
    del s
    with pytest.raises(shmlink.LayoutError, match="blank"):
        shmlink.Region.attach(mmap.mmap(-1, SIZE), what="blank")  # never formatted
    with pytest.raises(shmlink.ArgumentError, match="writable"):
        shmlink.Region.attach(bytes(SIZE), what="ro")  # read-only memory
    with pytest.raises(shmlink.ArgumentError, match="small"):
        shmlink.Region.format(mmap.mmap(-1, 4096), what="small")


def test_remove_entry_frees_a_corrupt_entry_that_entries_refuses(region):
    region.create_queue("q", max_values=1)
    with open(region.path, "r+b") as f:
        f.seek(256 + 88)  # entry 0's offset: no longer a multiple of 4096
        f.write(struct.pack("<Q", 12345))
    with pytest.raises(shmlink.LayoutError, match="entry 0"):
        region.entries()
    region.remove_entry(0)
    assert region.entries() == []
    with pytest.raises(FileNotFoundError):
        region.remove_entry(0)  # free already
    with pytest.raises(shmlink.ArgumentError):
        region.remove_entry(1 << 20)  # beyond max_entries
    region.create_queue("q", max_values=1)  # the name can be used again
