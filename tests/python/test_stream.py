# SPDX-License-Identifier: MIT
"""shmlink.Stream from Python: views, waits (timeout, wake-up, Ctrl-C), torn-read stress,
counters, timestamps, metadata, keywords, rolling buffers and errors."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import shmlink


def make(name: str, shape=(4, 6), dtype="float32", **kw) -> shmlink.Stream:
    return shmlink.Stream.create(name, shape=shape, dtype=dtype, mode="purge", **kw)


# ---- close from another thread --------------------------------------------------------------

# A waiter in one thread, close() in another: the waiter holds the stream by reference, so the
# mapping stays until it returns, and it gets ClosedError instead of touching unmapped memory. Run
# in a child process, so that a crash (as before the fix) fails the test instead of pytest.
CLOSE_UNDER_WAIT = """
import sys, threading, time
import shmlink
path, how = sys.argv[1], sys.argv[2]
s = shmlink.Stream.create(path, shape=(4,), dtype="uint16", depth=4 if how == "read_next" else 0)
got = []
def waiter():
    try:
        got.append(("returned", s.wait(timeout=20) if how == "wait" else s.read_next(timeout=20)))
    except shmlink.ClosedError as e:
        got.append(("closed", str(e)))
t = threading.Thread(target=waiter)
t.start()
time.sleep(0.3)  # let the waiter get into its wait (if it does not, it gets ClosedError at once)
s.close()
assert s.closed
t.join(30)
assert not t.is_alive(), "the waiter noticed the close"
print(got[0][0], "|", got[0][1], flush=True)
"""


@pytest.mark.parametrize("how", ["wait", "read_next"])
def test_close_from_another_thread_ends_a_wait_with_closed_error_without_unmapping_under_it(streamdir, how):
    path = os.path.join(streamdir, f"cw_{how}.im.shm")
    out = subprocess.run([sys.executable, "-c", CLOSE_UNDER_WAIT, path, how], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"rc {out.returncode}: {out.stderr}"
    outcome, message = out.stdout.strip().split(" | ", 1)
    assert outcome == "closed", out.stdout
    assert "cw_" + how in message and "closed" in message, message


# ---- views ------------------------------------------------------------------------------

def test_view_is_zero_copy_and_read_only(streamdir):
    with make("v") as s:
        v = s.view()
        assert not v.flags.writeable
        with pytest.raises(ValueError):
            v[0, 0] = 1.0
        s.write(np.full((4, 6), 7.0, np.float32))
        assert v[2, 3] == 7.0  # the same memory: sees the new frame
        v2 = s.view()
        with pytest.raises(BufferError, match="2 view"):
            s.close()
        del v, v2
        s.close()
        assert s.closed


def test_view_keeps_mapping_alive_after_handle_goes_away(streamdir):
    s = make("keep")
    s.write(np.full((4, 6), 3.0, np.float32))
    v = s.view()
    del s  # the view's base holds the handle
    assert float(v.sum()) == 3.0 * 24


# ---- waits ------------------------------------------------------------------------------

def test_wait_times_out_then_wakes_on_a_write_from_another_process(streamdir, peer):
    with make("w", shape=(3,), dtype="uint8") as s:
        t0 = time.monotonic()
        assert s.wait(timeout=0.2) is False
        assert time.monotonic() - t0 >= 0.19
        child = subprocess.Popen([peer.exe, "write-after", "w", "200"])
        try:
            assert s.wait(timeout=10) is True
            assert s.cnt0 == 1
            assert s.last_cnt0 == 1
        finally:
            assert child.wait(timeout=10) == 0


def test_wait_on_a_semaphore_and_by_spinning(streamdir, peer):
    with make("ws", shape=(3,), dtype="uint8") as s:
        slot = s.claim_semaphore()
        assert 0 <= slot < 10
        s.sem_flush(slot)
        assert s.wait(timeout=0.05, sem=slot) is False
        child = subprocess.Popen([peer.exe, "write-after", "ws", "100"])
        assert s.wait(timeout=10, sem=slot) is True
        assert child.wait(timeout=10) == 0
        child = subprocess.Popen([peer.exe, "write-after", "ws", "100"])
        assert s.wait(timeout=10, spin=True) is True
        assert child.wait(timeout=10) == 0
        assert s.cnt0 == 2
        with pytest.raises(ValueError, match="semaphore 10 is outside 0..9 of stream 'ws'"):
            s.wait(timeout=0, sem=10)


def test_streams_without_semaphores_and_with_129_say_so_in_english(streamdir):
    # Issue 18 item 3: 0 and 129 slots as ImageStreamIO accepts them; the error read
    # "semaphore 0 is outside 0..-1" before.
    with make("nosem", shape=(3,), dtype="uint8", semaphores=0) as s:
        assert s.semaphores == 0
        with pytest.raises(ValueError, match="stream 'nosem' has no semaphores"):
            s.wait(timeout=0, sem=0)
    with make("many", shape=(3,), dtype="uint8", semaphores=129) as s:
        assert s.semaphores == 129
        assert s.claim_semaphore(128) == 128
        s.write(np.zeros(3, np.uint8))
        assert s.wait(timeout=1, sem=128) is True


def test_string_keywords_hold_sixteen_characters(streamdir):
    # Issue 18 item 4: ImageStreamIO's string keyword field holds 16 bytes.
    with make("kw16", shape=(1,), dtype="uint8", keywords=1) as s:
        s.keywords["CAMERA"] = "0123456789ABCDEF"
        assert shmlink.Stream.open("kw16").keywords["CAMERA"] == "0123456789ABCDEF"
        with pytest.raises(ValueError, match="at most 16"):
            s.keywords["CAMERA"] = "0123456789ABCDEFG"


WAITER = """
import sys, shmlink
s = shmlink.Stream.open("ctrlc")
print("waiting", flush=True)
try:
    s.wait({args})
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
sys.exit(3)
"""


@pytest.mark.parametrize("args", ["", "sem=0", "spin=True", "timeout=600"])
def test_ctrl_c_interrupts_a_wait(streamdir, args):
    make("ctrlc", shape=(2,), dtype="uint8").close()
    child = subprocess.Popen([sys.executable, "-c", WAITER.format(args=args)], stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ))
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.2)  # let it block
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=10)
        assert "interrupted" in out
        assert child.returncode == 0
    finally:
        if child.poll() is None:
            child.kill()


def test_torn_read_stress_accepts_no_torn_frame(streamdir, peer):
    with make("torn", shape=(64, 1024), dtype="uint32") as s:
        writer = subprocess.Popen([peer.exe, "stress", "torn", "1.5"])
        try:
            reads = 0
            seen = set()
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:
                f = s.read()
                assert f.min() == f.max(), f"torn frame: {f.min()}..{f.max()}"
                seen.add(int(f[0, 0]))
                reads += 1
            assert reads > 10
            assert len(seen) > 2, "the writer never ran concurrently"
        finally:
            assert writer.wait(timeout=30) == 0


# ---- counters, times, metadata, keywords ----------------------------------------------

def test_counters_times_and_metadata(streamdir):
    with make("meta", shape=(2, 2), dtype="int16", keywords=4) as s:
        assert (s.cnt0, s.cnt1, s.cnt2, s.write_flag) == (0, 0, 0, False)
        s.write(np.ones((2, 2), np.int16), atime_ns=1_700_000_000_123_456_789, frame_id=42)
        assert s.cnt0 == 1 and s.cnt2 == 42
        assert s.atime_ns == 1_700_000_000_123_456_789
        assert s.atime == datetime.datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=datetime.timezone.utc)
        assert abs(s.writetime_ns - time.time_ns()) < 60e9
        assert isinstance(s.creation_time, datetime.datetime)
        md = s.metadata
        assert md["name"] == "meta" and md["dtype"] == "int16" and md["shape"] == (2, 2)
        assert md["cnt0"] == 1 and md["semaphores"] == 10 and md["keyword_slots"] == 4
        assert md["path"] == os.path.join(streamdir, "meta.im.shm")


def test_keywords_are_a_mutable_mapping(streamdir):
    with make("kw", shape=(1,), dtype="uint8", keywords=3) as s:
        kw = s.keywords
        kw["GAIN"] = 12
        kw["EXPTIME"] = 0.001
        kw.set("MODE", "closed", "loop state")
        assert dict(kw) == {"GAIN": 12, "EXPTIME": 0.001, "MODE": "closed"}
        assert "GAIN" in kw and len(kw) == 3
        with pytest.raises(ValueError, match="all 3 keyword slots"):
            kw["FOURTH"] = 1
        del kw["EXPTIME"]
        kw["FOURTH"] = 4
        assert shmlink.Stream.open("kw").keywords["FOURTH"] == 4
        with pytest.raises(KeyError):
            del kw["EXPTIME"]
        with pytest.raises(TypeError, match="int, float or str"):
            kw["BAD"] = [1]


# ---- rolling buffers --------------------------------------------------------------------

def test_fifo_newest_next_arbitrary_and_overwrite(streamdir):
    w = shmlink.Stream.create("fifo", shape=(2, 3), dtype="float64", depth=4, mode="purge")
    r = shmlink.Stream.open("fifo")
    assert (w.shape, w.depth, r.depth) == ((2, 3), 4, 4)
    assert r.read_next() is None
    for k in range(1, 4):
        w.write(np.full((2, 3), float(k)))
    for k in range(1, 4):
        frame, cnt0, skipped = r.read_next()
        assert (cnt0, skipped, frame[0, 0]) == (k, 0, float(k))
    for k in range(4, 14):
        w.write(np.full((2, 3), float(k)))
    frame, cnt0, skipped = r.read_next()
    assert (cnt0, skipped, frame[1, 2]) == (13, 9, 13.0)
    assert r.read_next(timeout=0.05) is None
    assert r.read_frame(12)[0, 0] == 12.0
    with pytest.raises(shmlink.OverwrittenError):
        r.read_frame(9)
    assert r.read_slice(13 % 4)[0, 0] == 13.0
    assert r.read()[0, 0] == 13.0 and r.newest()[0, 0] == 13.0
    h = r.history(3)
    assert h.shape == (3, 2, 3) and list(h[:, 0, 0]) == [11.0, 12.0, 13.0]
    assert r.slice_info(13 % 4)["cnt0"] == 13
    v = shmlink.Stream.create("fifo1d", shape=(5,), dtype="int32", depth=3, mode="purge")
    assert v.shape == (5,) and v.isio_size == [5, 1, 3]
    v.write(np.arange(5, dtype=np.int32))
    assert list(v.read()) == [0, 1, 2, 3, 4]


def test_a_rolling_buffer_whose_cnt1_names_no_slice_reads_as_a_layout_error(streamdir):
    # cnt1 (offset 272) >= depth: ImageStreamIO's readLastWroteBuffer fails; so do read() and
    # view(), naming the stream and both values, instead of reading slice cnt1 % depth.
    w = shmlink.Stream.create("cb", shape=(2,), dtype="uint32", depth=3, mode="purge")
    for k in range(1, 5):
        w.write(np.full(2, k, np.uint32))
    with open(w.path, "r+b") as f:
        f.seek(272)
        f.write((3).to_bytes(8, "little"))
    message = r"stream 'cb': cnt1 is 3, outside the 3 slices of its rolling buffer"
    with pytest.raises(shmlink.LayoutError, match=message):
        w.read()
    with pytest.raises(shmlink.LayoutError, match=message):
        w.view()
    w.write(np.full(2, 5, np.uint32))  # a write goes to slice (3 + 1) % 3 and repairs cnt1
    assert list(w.read()) == [5, 5]


# ---- errors -----------------------------------------------------------------------------

def test_errors_are_the_right_exceptions_with_clear_messages(streamdir):
    with pytest.raises(FileNotFoundError, match="missing.im.shm"):
        shmlink.Stream.open("missing")
    with pytest.raises(shmlink.NotFoundError):
        shmlink.Stream.open("missing")
    s = make("err", shape=(2, 3), dtype="uint16")
    with pytest.raises(FileExistsError, match="err"):
        shmlink.Stream.create("err", shape=(2, 3), dtype="uint16")
    with pytest.raises(ValueError, match=r"stream 'err': expected uint16 \(2, 3\), got float32 \(2, 3\)"):
        s.write(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected uint16 \(2, 3\), got uint16 \(3, 2\)"):
        s.write(np.zeros((3, 2), np.uint16))
    with pytest.raises(ValueError, match="axis length 0"):
        shmlink.Stream.create("zero", shape=(0, 3), dtype="uint8")
    with pytest.raises(ValueError, match="mode 'nope'"):
        shmlink.Stream.create("m", shape=(1,), mode="nope")
    s.write(np.asfortranarray(np.arange(6, dtype=np.uint16).reshape(2, 3)))  # any order is accepted
    assert list(s.read().ravel()) == [0, 1, 2, 3, 4, 5]
    s.close()
    with pytest.raises(ValueError, match="stream 'err' is closed"):
        s.read()
    with pytest.raises(shmlink.ClosedError):
        s.cnt0
    ro = shmlink.Stream.open("err", writable=False)
    with pytest.raises(PermissionError):
        ro.write(np.zeros((2, 3), np.uint16))


def test_axis_sizes_whose_product_wraps_are_refused_so_view_never_exceeds_the_mapping(streamdir):
    # Issue 17 item 5: 2147549185 x 2147418113 x 4 = 2^64 + 4 wrapped to the file's nelement 4,
    # and view() returned a 4.6e18-byte array over a 4-byte frame (.sum() died of SIGBUS).
    s = make("wrap", shape=(1, 1, 4), dtype="uint8")  # ISIO sizes 4 x 1 x 1: nelement 4
    path = s.path
    s.close()
    with open(path, "r+b") as f:
        f.seek(116)
        f.write(np.array([2147549185, 2147418113, 4], dtype="<u4").tobytes())
    with pytest.raises(shmlink.LayoutError, match=r"wrap\.im\.shm.*2147549185x2147418113x4"):
        shmlink.Stream.open("wrap")
