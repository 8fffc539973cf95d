# SPDX-License-Identifier: MIT
"""shmlink.Interface from Python: a C++ peer started by hand and through exec=, sequence numbers
and typed values both ways, a peer killed with SIGKILL, a clean close drained to ShutDownError,
import mismatches, attach timeouts, and closing from another thread."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

import shmlink

# What tests/python/peer.cpp's interface-echo imports and exports.
TO_PEER = [(0, "x", "f64"), (1, "n", "i64"), (2, "flag", "bool"), (3, "z", "c64")]
FROM_PEER = [(0, "y", "f64", "V"), (1, "n2", "i64"), (2, "notflag", "bool"), (3, "z2", "c64")]


def values(k: int) -> list:
    return [k * 0.5 - 3, k * 1_000_003 - 7, k % 3 == 0, complex(k, -0.25 * k)]


def echoed(k: int) -> list:
    x, n, flag, z = values(k)
    return [2 * x, 2 * n, not flag, 2 * z]


def make(**kw) -> shmlink.Interface:
    kw.setdefault("exports", TO_PEER)
    kw.setdefault("imports", FROM_PEER)
    kw.setdefault("attach_timeout", 20.0)
    return shmlink.Interface("py_out", "py_in", **kw)


def test_python_and_a_cpp_peer_started_by_hand(streamdir, peer):
    child = subprocess.Popen([peer.exe, "interface-echo", "py_in", "py_out"], stderr=subprocess.PIPE, text=True)
    try:
        with make() as iface:  # opens on enter
            assert iface.is_open
            assert iface.peer.pid == child.pid and not iface.peer.launched
            assert iface.peer_signals == [shmlink.Signal(*s) for s in FROM_PEER]
            assert iface.exports == [shmlink.Signal(*s) for s in TO_PEER]
            assert iface.imports[0] == shmlink.Signal(0, "y", "f64", "V")
            for k in range(20):
                iface.write(values(k), timeout=10)
                s = iface.read(timeout=10)
                assert s.tolist() == echoed(k)
                assert s.asdict()["n2"] == echoed(k)[1]
                assert s.sequence == k
                assert s.flags & shmlink.SampleFlag.HAS_TS_RECEIVED and s.ts_received >= s.ts_origin > 0
            assert iface.peer_alive()
        assert not iface.is_open
        assert child.wait(timeout=20) == 0, child.stderr.read()  # it read `closed` and exited cleanly
    finally:
        if child.poll() is None:
            child.kill()


def test_exec_launches_the_peer_exchanges_100_samples_and_reaps_it(streamdir, peer):
    iface = make(exec=[peer.exe, "interface-echo"])  # names from SHMLINK_INTERFACE_IN/OUT
    iface.open()
    try:
        assert iface.peer.launched and iface.peer.pid > 0 and not iface.peer.exited
        assert peer.exe in iface.peer.command
        for k in range(100):
            assert iface.next_sequence == k
            iface.write(values(k), timeout=10)
            s = iface.read(timeout=10)
            assert s.sequence == k  # the peer's own counter, also from 0
            assert s.tolist() == echoed(k)
        assert iface.next_sequence == 100
    finally:
        iface.close()
    st = iface.peer
    assert st.exited and st.exit_code == 0 and st.term_signal == 0, st.description
    assert "exited with status 0" in st.description
    assert not os.path.exists(shmlink.queue_path("py_out"))  # our output is removed on close
    iface.close()  # idempotent
    with pytest.raises(shmlink.ClosedError, match="not open"):
        iface.read(timeout=0)


@pytest.mark.parametrize("launched", [True, False], ids=["exec", "by-hand"])
def test_a_peer_killed_mid_run_makes_read_raise_peer_exited(streamdir, peer, launched):
    child = None
    if launched:
        iface = make(exec=[peer.exe, "interface-echo"])
    else:
        child = subprocess.Popen([peer.exe, "interface-echo", "py_in", "py_out"])
        iface = make()
    with iface:
        try:
            for k in range(10):
                iface.write(values(k), timeout=10)
                assert iface.read(timeout=10).tolist() == echoed(k)
            iface.write(values(10), timeout=10)
            time.sleep(0.2)  # it answered sample 10: that answer is still delivered after the kill
            os.kill(iface.peer.pid, signal.SIGKILL)
            assert iface.read(timeout=10).tolist() == echoed(10)
            t0 = time.monotonic()
            with pytest.raises(shmlink.PeerExitedError) as info:
                iface.read(timeout=30)
            assert time.monotonic() - t0 < 2.0
            assert isinstance(info.value, ConnectionError) and info.value.code == -17
            assert info.value.peer.exited
            if launched:
                assert "killed by signal 9" in str(info.value)
                assert iface.peer.term_signal == signal.SIGKILL and iface.peer.exit_code == -1
            else:
                assert f"pid {child.pid}" in str(info.value)
            with pytest.raises(shmlink.PeerExitedError):
                iface.write(values(11), timeout=1)
            assert not iface.peer_alive()
        finally:
            if child is not None:
                child.wait(timeout=10)


def test_mismatched_import_types_are_a_layout_error_at_open(streamdir, peer):
    bad = [FROM_PEER[0], (1, "n2", "f64")]  # the peer exports index 1 as i64
    iface = make(imports=bad, exec=[peer.exe, "interface-echo"], stop_timeout=0.2)
    with pytest.raises(shmlink.LayoutError, match=r"import 1 'n2' is f64 here but i64 in the peer's queue .*py_in"):
        iface.open()
    assert not iface.is_open
    assert iface.peer.exited  # the launched peer was stopped and reaped
    assert not os.path.exists(shmlink.queue_path("py_out"))


def test_no_peer_is_a_timeout_at_open(streamdir):
    iface = shmlink.Interface("lonely_out", "lonely_in", attach_timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(shmlink.WaitTimeout, match="lonely_in"):
        iface.open()
    assert time.monotonic() - t0 < 5
    with pytest.raises(shmlink.ClosedError):
        iface.write([1.0])


def test_a_peer_that_exits_before_attaching_is_peer_exited_at_open(streamdir):
    iface = shmlink.Interface("o", "i", exec=["/bin/sh", "-c", "exit 3"], attach_timeout=20)
    with pytest.raises(shmlink.PeerExitedError, match="status 3"):
        iface.open()
    assert iface.peer.exit_code == 3
    with pytest.raises(FileNotFoundError):
        shmlink.Interface("o", "i", exec=["/nonexistent/peer"]).open()


def test_two_python_sides_clean_close_drains_then_closed(streamdir):
    a = shmlink.Interface("a2b", "b2a", exports=[(0, "k", "i64"), (1, "v")], attach_timeout=20)
    b = shmlink.Interface("b2a", "a2b", imports=[(0, "k", "i64"), (1, "v", "f64")], attach_timeout=20)
    t = threading.Thread(target=a.open)  # open() releases the GIL while it waits for the peer
    t.start()
    b.open()
    t.join(20)
    assert a.is_open and b.is_open
    assert a.peer.pid == os.getpid()
    for k in range(5):
        a.write([k, k / 4])
    a.close()  # shuts its output: b drains what was sent, then reads ShutDownError
    assert [s.tolist() for s in b] == [[k, k / 4] for k in range(5)]  # iteration stops at a clean close
    with pytest.raises(shmlink.ShutDownError, match="closed the interface"):
        b.read(timeout=1)
    assert b.peer.closed
    b.close()


def test_close_from_another_thread_ends_a_blocked_read(streamdir, peer):
    with make(exec=[peer.exe, "interface-echo"]) as iface:
        errors = []

        def reader():
            try:
                iface.read()  # the peer only answers what we write: blocks
            except shmlink.ClosedError as e:
                errors.append(e)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        iface.close()
        t.join(10)
        assert not t.is_alive() and errors and "closed" in str(errors[0])
        assert iface.peer.exit_code == 0


def test_write_checks_values_against_the_exports(streamdir, peer):
    with make(exec=[peer.exe, "interface-echo"]) as iface:
        with pytest.raises(shmlink.ArgumentError, match=r"index 1 \(signal 'n', i64\) is not an integer"):
            iface.write([0.0, 1.5])
        with pytest.raises(shmlink.ArgumentError, match="5 values, at most 4"):
            iface.write([0.0, 1, True, 0j, 5.0])
        iface.write(values(3), sequence=41, ts_origin=5, flags=shmlink.SampleFlag.HAS_DATA)
        assert iface.next_sequence == 42
        assert iface.read(timeout=10).tolist() == echoed(3)
    with pytest.raises(ValueError, match="signal type"):
        shmlink.Interface("a", "b").export_signal(0, "x", "f32")
    with pytest.raises(TypeError, match="exec must be a list"):
        shmlink.Interface("a", "b", exec="peer --flag")


def villas_name(tag: str) -> str:
    """A POSIX shared-memory name of this test process (protocol='villas' regions live in /dev/shm)."""
    return f"/shmlink-pyvt{os.getpid()}-{tag}"


def villas_leftovers() -> list:
    """This process's villas regions and semaphores still in /dev/shm."""
    prefix = f"shmlink-pyvt{os.getpid()}-"
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix) or n.startswith("sem." + prefix))


@pytest.fixture
def villas_cleanup():
    """Removes what a failed villas test left in /dev/shm (a passing one asserts there is nothing)."""
    yield
    for n in villas_leftovers():
        try:
            os.unlink("/dev/shm/" + n)
        except FileNotFoundError:
            pass


def test_protocol_villas_loopback_and_two_python_sides(villas_cleanup):
    loop = villas_name("loop")
    signals = [(0, "k", "i64"), (1, "v", "f64")]
    with shmlink.Interface(loop, loop, protocol="villas", capacity=8, exports=signals, imports=signals) as iface:
        assert os.path.exists("/dev/shm" + loop)  # a VILLASnode region, not a queue file
        assert iface.peer_signals == []  # no signal table travels: reads are decoded by the imports
        for k in range(5):
            iface.write([k, k / 4], timeout=1)
        got = [iface.read(timeout=1) for _ in range(5)]
        assert [s.tolist() for s in got] == [[k, k / 4] for k in range(5)]
        assert [s.sequence for s in got] == list(range(5))
    assert villas_leftovers() == []

    a2b, b2a = villas_name("a2b"), villas_name("b2a")
    a = shmlink.Interface(a2b, b2a, protocol="villas", exports=signals, attach_timeout=20)
    b = shmlink.Interface(b2a, a2b, protocol="villas", imports=signals, attach_timeout=20)
    t = threading.Thread(target=a.open)
    t.start()
    b.open()
    t.join(20)
    assert a.is_open and b.is_open
    for k in range(5):
        a.write([k, k / 4])
    closer = threading.Thread(target=a.close)  # close waits until b took what is queued
    closer.start()
    assert [s.tolist() for s in b] == [[k, k / 4] for k in range(5)]  # then b reads a clean close
    closer.join(20)
    assert b.peer.closed
    b.close()
    assert villas_leftovers() == []  # regions and semaphores all gone


def test_protocol_must_be_shmlink_or_villas():
    with pytest.raises(ValueError, match="protocol 'nope'"):
        shmlink.Interface("a", "b", protocol="nope")
    with pytest.raises(ValueError, match="'/'"):
        shmlink.Interface("a/b", "c", protocol="villas").open()
