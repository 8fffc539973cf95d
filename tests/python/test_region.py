# SPDX-License-Identifier: MIT
"""shmlink.Region: a stream and a queue side by side in one region file, created here and used by
name from a second Python process; numpy views of a stream in a region; entries, remove, and the
errors mapped to the built-in exceptions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
