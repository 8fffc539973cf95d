# SPDX-License-Identifier: MIT
"""shmlink.Queue from Python: typed round trips, the signal table, open mismatches, a full queue,
shutdown and draining, the C++ peer as producer and echo, and Python child processes on an MPMC
queue."""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shmlink

TABLE = [
    shmlink.Signal(0, "v", "f64", "V"),
    shmlink.Signal(1, "n", "i64"),
    shmlink.Signal(2, "on", "bool"),
    shmlink.Signal(3, "z", "c64", "A"),
]


def bits_f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def bits_c64(z: complex) -> int:
    return struct.unpack("<Q", struct.pack("<ff", z.real, z.imag))[0]


def bits_as_float(n: int) -> float:
    """The float whose bits are int64 n (how an untyped index holding an int reads)."""
    return struct.unpack("<d", struct.pack("<q", n))[0]


def expected(k: int, i: int, type_: str):
    """Value i of sample k as tests/python/peer.cpp's queue-produce writes it."""
    if type_ == "i64":
        return k * 1000 - i * 7
    if type_ == "bool":
        return (k + i) % 2 == 1
    if type_ == "c64":
        return complex(k + 0.5, -i)
    return k + i * 0.25


# ---- values and the signal table ------------------------------------------------------------

def test_round_trip_of_every_type(streamdir):
    with shmlink.Queue.create("types", capacity=8, max_values=6, signals=TABLE) as q:
        q.push([1.25, -(2**62), True, 1.5 - 2.25j, 0.5, 7])  # 4, 5: no signal (f64)
        q.push(np.array([-0.0, 3.0, 0.0, 2.0, 1.0]))  # float64 array: each index by its table type
        q.push((np.float32(2.5), np.int16(-3), np.bool_(False), np.complex64(1j)))
        s = q.pop()
        assert len(s) == 6
        assert s.tolist() == [1.25, -(2**62), True, 1.5 - 2.25j, 0.5, 7.0]
        assert [type(x) for x in s.tolist()[:4]] == [float, int, bool, complex]
        assert s[1] == -(2**62) and s[-1] == 7.0
        assert s.asdict() == {"v": 1.25, "n": -(2**62), "on": True, "z": 1.5 - 2.25j}
        raw = s.raw
        assert raw.dtype == np.uint64
        assert list(raw) == [bits_f64(1.25), (-(2**62)) & (2**64 - 1), 1, bits_c64(1.5 - 2.25j), bits_f64(0.5), bits_f64(7.0)]
        v = s.values  # the table has a c64 signal: complex128, ints and bools converted
        assert v.dtype == np.complex128
        assert v[0] == 1.25 and v[1] == float(-(2**62)) and v[2] == 1.0 and v[3] == 1.5 - 2.25j
        s = q.pop()
        assert s.tolist() == [-0.0, 3, False, 2 + 0j, 1.0]
        assert math.copysign(1.0, s[0]) == -1.0  # -0.0 bit for bit
        assert type(s[1]) is int
        s = q.pop()
        assert s.tolist() == [2.5, -3, False, 1j]


def test_values_of_a_table_without_complex_are_float64(streamdir):
    with shmlink.Queue.create("f", max_values=3, signals=[(0, "a"), (1, "b", "i64"), (2, "c", bool)]) as q:
        q.push(np.array([1, 2, 1], dtype=np.int32))
        s = q.pop()
        assert s.values.dtype == np.float64
        np.testing.assert_array_equal(s.values, [1.0, 2.0, 1.0])
        assert s.tolist() == [1.0, 2, True]


def test_indices_without_a_signal_are_f64_both_ways(streamdir):
    with shmlink.Queue.create("u", max_values=4, signals=[(3, "n", "i64")]) as q:
        q.push([1.5, 3, True, 7])
        q.push(np.arange(4))  # an int array: index 3 is i64 by the table, the rest f64
        s = q.pop()
        assert list(s.raw) == [bits_f64(1.5), bits_f64(3.0), bits_f64(1.0), 7]
        assert s.tolist() == [1.5, 3.0, 1.0, 7]
        assert [type(x) for x in s] == [float, float, float, int]
        assert s.value(3, "f64") == bits_as_float(7)  # another reading of the same bits
        assert q.pop().tolist() == [0.0, 1.0, 2.0, 3]
        with pytest.raises(shmlink.ArgumentError, match="index 1 is complex: .*c64 signal"):
            q.push([0.0, 1j])


def test_bad_values_are_clear_errors(streamdir):
    with shmlink.Queue.create("bad", max_values=4, signals=TABLE) as q:
        with pytest.raises(shmlink.ArgumentError, match=r"index 1 \(signal 'n', i64\) is not an integer"):
            q.push([0.0, 2.5])
        with pytest.raises(ValueError, match="index 0 .* is complex"):
            q.push([1j])
        with pytest.raises(shmlink.ArgumentError, match="5 values, at most 4"):
            q.push([1, 2, 3, 4, 5])
        with pytest.raises(shmlink.ArgumentError, match="1-D"):
            q.push(np.zeros((2, 2)))
        with pytest.raises(TypeError, match="not a number"):
            q.push([1.0, "2"])
        with pytest.raises(TypeError, match="sequence of numbers"):
            q.push("1234")
        with pytest.raises(shmlink.ArgumentError, match="64 bits"):
            q.push([0.0, 2**64])
        assert len(q) == 0  # nothing half-pushed
        q.push([])  # an empty sample is a sample
        assert len(q.pop()) == 0
    with pytest.raises(ValueError, match="signal type 'f32'"):
        shmlink.Queue.create("bad2", signals=[(0, "x", "f32")])
    with pytest.raises(shmlink.ArgumentError, match="power of two"):
        shmlink.Queue.create("bad3", capacity=3)
    with pytest.raises(ValueError, match="kind 'mpsc'"):
        shmlink.Queue.create("bad4", kind="mpsc")


def test_signal_table_is_visible_from_a_second_handle(streamdir):
    with shmlink.Queue.create("tab", max_values=8, kind="mpmc", wait="futex", signals=TABLE) as q:
        with shmlink.Queue.open("tab") as r:
            assert r.signals == TABLE
            assert r.signals[3] == (3, "z", "c64", "A")  # a named tuple
            assert r.kind == "mpmc" and r.max_values == 8 and r.capacity == 512
            info = r.info()
            assert info["signals"] == TABLE and info["wait"] == "futex" and info["creator_pid"] == os.getpid()
            q.push([1.0, 2, True, 3j])
            assert r.pop().tolist() == [1.0, 2, True, 3j]  # decoded by the table in the file
        with shmlink.Queue.open("tab", max_values=8, kind="mpmc", signals=list(TABLE)):
            pass  # a matching expectation opens


def test_open_mismatch_is_a_layout_error_naming_the_queue(streamdir):
    shmlink.Queue.create("mm", max_values=4, signals=TABLE).close()
    with pytest.raises(shmlink.LayoutError, match=r"mm\.queue\.shm.*4 values per sample, expected 5"):
        shmlink.Queue.open("mm", max_values=5)
    with pytest.raises(shmlink.LayoutError, match=r"mm\.queue\.shm.*spsc, expected mpmc"):
        shmlink.Queue.open("mm", kind="mpmc")
    wrong = [*TABLE[:1], shmlink.Signal(1, "n", "f64"), *TABLE[2:]]
    with pytest.raises(ValueError, match=r"mm\.queue\.shm.*signal table .*1:n\(i64\).*1:n\(f64\)"):
        shmlink.Queue.open("mm", signals=wrong)
    with pytest.raises(shmlink.LayoutError, match="mm"):
        shmlink.Queue.create("mm", max_values=4, mode="open_or_create")  # no signals: differs
    with pytest.raises(FileNotFoundError):
        shmlink.Queue.open("absent")
    with pytest.raises(FileExistsError):
        shmlink.Queue.create("mm", max_values=4, signals=TABLE)
    shmlink.Queue.remove("mm")
    assert not os.path.exists(shmlink.queue_path("mm"))


# ---- full, empty, shut ------------------------------------------------------------------------

def test_full_queue_refuses_and_push_times_out(streamdir):
    with shmlink.Queue.create("full", capacity=4, max_values=1) as q:
        assert all(q.try_push([k]) for k in range(4))
        assert len(q) == 4
        assert q.try_push([9]) is False
        t0 = time.monotonic()
        with pytest.raises(shmlink.WaitTimeout, match="pushing to queue 'full': timed out after 0.2 s"):
            q.push([9], timeout=0.2)
        assert time.monotonic() - t0 >= 0.19
        with pytest.raises(TimeoutError):
            q.push([9], timeout=0)
        assert [s[0] for s in q.pop_many(10)] == [0.0, 1.0, 2.0, 3.0]  # nothing lost, nothing extra
        with pytest.raises(shmlink.WaitTimeout, match="popping from queue 'full'"):
            q.pop(timeout=0.05)
        assert q.try_pop() is None
        assert q.pop_many(3) == [] and q.pop_many(3, timeout=0.05) == []


def test_push_many_and_pop_many(streamdir):
    with shmlink.Queue.create("many", capacity=4, max_values=2, signals=[(0, "a"), (1, "k", "i64")]) as q:
        rows = np.arange(12, dtype=np.float64).reshape(6, 2)
        assert q.push_many(rows, timeout=0) == 4  # as many as fit
        got = q.pop_many(10)
        assert [s.tolist() for s in got] == [[0.0, 1], [2.0, 3], [4.0, 5], [6.0, 7]]
        assert [s.sequence for s in got] == [0, 1, 2, 3]
        assert q.push_many([[1.0, 2], [3.0, 4]]) == 2
        assert q.next_sequence == 6
        with pytest.raises(shmlink.ArgumentError, match="row 1"):
            q.push_many([[1.0, 2], [1.0, 2.5]])  # checked before anything is pushed
        assert len(q) == 2


def test_pop_many_of_a_huge_count_takes_every_sample_in_runs(streamdir):
    """pop_many(n) makes its samples in runs of 64 before popping into them (a huge n reserves
    nothing for samples that are not there): every sample comes out, in order, across runs."""
    with shmlink.Queue.create("huge", capacity=1 << 16, max_values=4096, signals=[(0, "a")]) as q:
        rows = np.arange(300, dtype=np.float64).reshape(300, 1)
        assert q.push_many(rows, timeout=0) == 300
        got = q.pop_many(10**12)
        assert [s[0] for s in got] == list(range(300))  # all, in order, across several runs
        assert len(q) == 0


def test_pop_many_keeps_every_field_of_samples_of_any_length(streamdir):
    """pop_many takes all but the first sample in one burst straight from the cells (a handler
    per sample, no scratch Sample): every field and value of each comes out as it went in."""
    sig = [(0, "x"), (1, "n", "i64"), (2, "b", "bool"), (3, "z", "c64")]
    with shmlink.Queue.create("burst", capacity=8, max_values=4, signals=sig) as q:
        sent = [
            ([1.5], 10, 111, shmlink.SampleFlag.HAS_DATA),
            ([2.5, -(2**63)], 20, 222, shmlink.SampleFlag.NEW_FRAME),
            ([], 30, 333, 0),
            ([3.5, 2**63 - 1, True, 1 - 2j], 40, 444, shmlink.SampleFlag.HAS_SEQUENCE),
            ([4.5, 7, False], 50, 555, shmlink.SampleFlag.NEW_SIMULATION),
        ]
        for values, seq, ts, flags in sent:
            q.push(values, sequence=seq, ts_origin=ts, flags=flags)
        got = q.pop_many(100)
        assert [(s.tolist(), s.sequence, s.ts_origin, s.flags, s.ts_received) for s in got] == [
            (v, seq, ts, int(flags), 0) for v, seq, ts, flags in sent]
        assert q.pop_many(100) == [] and len(q) == 0


def test_sequence_timestamps_and_flags(streamdir):
    with shmlink.Queue.create("meta", max_values=1) as q:
        before = time.time_ns()
        q.push([1.0])
        q.push([2.0], sequence=100, ts_origin=123456789, flags=shmlink.SampleFlag.NEW_FRAME)
        q.push([3.0])
        a, b, c = q.pop(), q.pop(), q.pop()
        # The library stamps with its TSC clock, within tens of ns of clock_gettime: 1 us slack.
        assert a.sequence == 0 and before - 1000 <= a.ts_origin <= time.time_ns() + 1000
        assert a.flags == shmlink.SampleFlag.HAS_SEQUENCE | shmlink.SampleFlag.HAS_DATA | shmlink.SampleFlag.HAS_TS_ORIGIN
        assert a.ts_received == 0
        assert (b.sequence, b.ts_origin, b.flags) == (100, 123456789, shmlink.SampleFlag.NEW_FRAME)
        assert c.sequence == 101  # carries on from an explicit sequence
        assert abs((a.origin_time.timestamp() * 1e9) - a.ts_origin) < 1e4


def test_shutdown_drains_then_raises_shut_down(streamdir):
    with shmlink.Queue.create("shut", capacity=8, max_values=1) as q, shmlink.Queue.open("shut") as r:
        for k in range(3):
            q.push([k])
        assert not q.shut_down and not q.closed
        q.shutdown()
        assert q.shut_down and r.shut_down and r.info()["shut_down"] and r.info()["shut"]
        assert not q.closed and not r.closed  # the queue is shut down, the handles are open
        assert "shut down" in repr(q)
        with pytest.raises(shmlink.ShutDownError, match="shut down") as e:
            q.push([9])
        assert e.value.code == -18 and isinstance(e.value, shmlink.ClosedError)  # old catches still work
        with pytest.raises(shmlink.ShutDownError):
            q.try_push([9])
        with pytest.raises(shmlink.ShutDownError, match="after 0 of 1"):
            q.push_many([[9]])
        assert r.pop().tolist() == [0.0]
        assert [s[0] for s in r] == [1.0, 2.0]  # iteration drains, then stops
        with pytest.raises(shmlink.ShutDownError, match="shut down and is drained"):
            r.pop(timeout=1)
        with pytest.raises(shmlink.ShutDownError):
            r.try_pop()
        with pytest.raises(shmlink.ShutDownError):
            r.pop_many(4)
        r.close()
        with pytest.raises(shmlink.ClosedError, match="is closed") as e:
            r.pop(timeout=0)
        assert type(e.value) is shmlink.ClosedError and e.value.code == -12  # the handle, not the queue


def test_shut_is_a_deprecated_alias_of_shut_down(streamdir):
    with shmlink.Queue.create("alias", capacity=2, max_values=1) as q:
        with pytest.warns(DeprecationWarning, match="shut_down"):
            assert q.shut is False
        q.shutdown()
        with pytest.warns(DeprecationWarning):
            assert q.shut is True


def test_shutdown_wakes_a_blocked_pop(streamdir):
    with shmlink.Queue.create("wake", max_values=1) as q:
        threading.Timer(0.2, q.shutdown).start()
        t0 = time.monotonic()
        with pytest.raises(shmlink.ClosedError):
            q.pop(timeout=10)
        assert time.monotonic() - t0 < 5


def test_blocking_pop_releases_the_gil(streamdir):
    with shmlink.Queue.create("gil", max_values=1, wait="futex") as q:
        got = []
        t = threading.Thread(target=lambda: got.append(q.pop(timeout=10)))
        t.start()
        time.sleep(0.1)  # the thread is blocked in pop; this thread still runs Python
        q.push([4.5])
        t.join(10)
        assert got and got[0][0] == 4.5


def test_closing_the_handle_ends_a_pop_in_another_thread(streamdir):
    q = shmlink.Queue.create("cl", max_values=1)
    errors = []

    def pop():
        try:
            q.pop()
        except shmlink.ClosedError as e:
            errors.append(e)

    t = threading.Thread(target=pop)
    t.start()
    time.sleep(0.1)
    q.close()
    t.join(5)
    assert not t.is_alive() and errors and "closed" in str(errors[0])
    assert q.closed
    with pytest.raises(shmlink.ClosedError, match="queue 'cl' is closed"):
        q.push([1.0])
    assert repr(q) == "<shmlink.Queue 'cl' (closed)>"


def test_read_only_handle_cannot_push_or_pop(streamdir):
    with shmlink.Queue.create("ro", max_values=1) as q:
        q.push([1.0])
        with shmlink.Queue.open("ro", writable=False) as r:
            assert len(r) == 1 and r.info()["pushed"] == 1
            with pytest.raises(PermissionError, match="read-only"):
                r.push([2.0])
            with pytest.raises(shmlink.AccessError):
                r.try_pop()


POPPER = """
import shmlink
q = shmlink.Queue.open("intr")
print("waiting", flush=True)
try:
    q.pop()
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_interrupts_a_blocking_pop(streamdir):
    shmlink.Queue.create("intr", max_values=1).close()
    child = subprocess.Popen([sys.executable, "-c", POPPER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=10)
        assert "interrupted" in out and child.returncode == 0
    finally:
        if child.poll() is None:
            child.kill()


# ---- other processes ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_cpp_producer_pushes_samples_python_pops_in_order(streamdir, peer, kind):
    n = 2000
    with shmlink.Queue.create("prod", capacity=64, max_values=6, kind=kind, signals=TABLE) as q:
        child = subprocess.Popen([peer.exe, "queue-produce", "prod", str(n)], stderr=subprocess.PIPE, text=True)
        try:
            types = ["f64", "i64", "bool", "c64", "f64", "f64"]
            k = 0
            for s in q:  # until the producer shuts the queue and it is drained
                assert s.sequence == k
                assert s.tolist() == [expected(k, i, t) for i, t in enumerate(types)]
                k += 1
            assert k == n
            assert child.wait(timeout=20) == 0, child.stderr.read()
        finally:
            if child.poll() is None:
                child.kill()


def test_cpp_echo_round_trips_every_bit(streamdir, peer):
    n = 300
    spec = dict(capacity=16, max_values=6, signals=TABLE)
    with shmlink.Queue.create("to_cpp", **spec) as out, shmlink.Queue.create("from_cpp", **spec) as back:
        child = subprocess.Popen([peer.exe, "queue-echo", "to_cpp", "from_cpp", str(n)], stderr=subprocess.PIPE, text=True)
        try:
            sent = []
            for k in range(n):
                values = [k * -1.5, -k * 2**40, k % 3 == 0, complex(k, 0.25 - k), math.nan if k == 7 else k + 0.5, -k]
                out.push(values, timeout=20, sequence=k * 3, ts_origin=10**18 + k, flags=k)
                sent.append(values)
                s = back.pop(timeout=20)
                assert (s.sequence, s.ts_origin, s.flags) == (k * 3, 10**18 + k, k)
                got = s.tolist()
                assert got[:4] == values[:4] and got[5] == -k
                assert math.isnan(got[4]) if k == 7 else got[4] == k + 0.5
            assert child.wait(timeout=20) == 0, child.stderr.read()
        finally:
            if child.poll() is None:
                child.kill()


PRODUCER = """
import sys, shmlink
me, n = int(sys.argv[1]), int(sys.argv[2])
with shmlink.Queue.open("mp", kind="mpmc") as q:
    for k in range(n):
        q.push([me, k], timeout=30)
"""


def test_python_child_processes_share_an_mpmc_queue(streamdir):
    producers, n = 3, 400
    with shmlink.Queue.create("mp", capacity=32, max_values=2, kind="mpmc",
                              signals=[(0, "who", "i64"), (1, "k", "i64")]) as q:
        children = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(p), str(n)]) for p in range(producers)]
        # A second consumer in this process (a thread with its own handle) competes with us.
        other = []
        stop = threading.Event()

        def consume():
            with shmlink.Queue.open("mp") as r:
                while not stop.is_set():
                    other.extend(s.tolist() for s in r.pop_many(8, timeout=0.05))

        t = threading.Thread(target=consume)
        t.start()
        try:
            mine = []
            deadline = time.monotonic() + 60
            while len(mine) + len(other) < producers * n and time.monotonic() < deadline:
                mine.extend(s.tolist() for s in q.pop_many(8, timeout=0.05))
            for c in children:
                assert c.wait(timeout=30) == 0
        finally:
            stop.set()
            t.join(10)
            for c in children:
                if c.poll() is None:
                    c.kill()
        everything = mine + other
        assert len(everything) == producers * n
        assert sorted(map(tuple, everything)) == [(p, k) for p in range(producers) for k in range(n)]  # exactly once
        for p in range(producers):  # each consumer sees each producer's samples in order
            assert [k for who, k in mine if who == p] == sorted(k for who, k in mine if who == p)
        assert len(q) == 0 and q.info()["pushed"] == producers * n


def test_shutdown_docstring_names_the_error_it_makes():
    doc = shmlink.Queue.shutdown.__doc__
    assert "ShutDownError" in doc, doc
    assert "raise ClosedError" not in doc, doc  # a shut queue raises ShutDownError (a ClosedError subclass)
