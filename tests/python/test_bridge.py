# SPDX-License-Identifier: MIT
"""shmlink.bridge (Publisher, Replica) and DAO's ZeroMQ mirror on top of it
(shmlink.dao.shm(..., pubPort=) / shm(..., subPort=, subHost=)): real processes, real stream files
(one directory per "host"), loopback TCP on ephemeral ports, short heartbeats."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import shmlink
from shmlink import bridge
from shmlink.dao import shm

#: Short heartbeats so that a credit lost before the connection was up is renewed at once.
FAST = dict(heartbeat_ms=50, link_timeout_ms=300)


def frame(k: int) -> np.ndarray:
    """Frame number k of the tests: every element differs, and k can be read back from any."""
    return (np.arange(24, dtype=np.int32).reshape(4, 6) * 1000 + k).astype(np.int32)


def frame_number(a: np.ndarray) -> int:
    """k of frame(k), after checking the whole frame is that one (never torn)."""
    k = int(a[0, 0])
    assert np.array_equal(a, frame(k)), f"frame {k} is not whole: {a}"
    return k


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def hosts(tmp_path):
    """Two stream directories under /dev/shm standing for two hosts."""
    import shutil
    import tempfile
    a = tempfile.mkdtemp(prefix="shmlink-py-a-", dir="/dev/shm")
    b = tempfile.mkdtemp(prefix="shmlink-py-b-", dir="/dev/shm")
    yield a, b
    shutil.rmtree(a, ignore_errors=True)
    shutil.rmtree(b, ignore_errors=True)


# ---- shmlink.bridge ---------------------------------------------------------------------------

def test_replica_holds_the_publishers_frames_and_says_where_they_come_from(hosts):
    a, b = hosts
    src = shmlink.Stream.create(f"{a}/wfs.im.shm", data=frame(1), keywords=4, mode="purge")
    src.keywords["GAIN"] = 3
    with bridge.Publisher(f"{a}/wfs.im.shm", "tcp://127.0.0.1:0", **FAST) as pub:
        assert pub.endpoint.startswith("tcp://127.0.0.1:") and pub.port > 0
        with bridge.Replica("wfs", pub.endpoint, local_name=f"{b}/wfs.im.shm", **FAST) as rep:
            assert rep.path == f"{b}/wfs.im.shm"
            assert rep.wait_first_frame(5.0), rep.last_error
            copy = shmlink.Stream.open(rep.path)
            assert frame_number(copy.read()) == 1
            kw = dict(copy.keywords)
            assert kw["BR_ORIGIN"] == "127.0.0.1" and kw["BR_LINK"] == 1 and kw["GAIN"] == 3
            src.write(frame(2))
            assert copy.wait(timeout=5.0), rep.stats()
            assert frame_number(copy.read()) == 2 and copy.keywords["BR_SRC_CNT0"] == 2
            st = rep.stats()
            assert st["link_up"] and st["frames_published"] >= 2 and st["refused"] == 0
            assert pub.stats()["frames_sent"] >= 2 and pub.stats()["subscribers"] == 1
        assert rep.stopped and "stopped" in repr(rep)
        rep.stop()  # idempotent
    assert pub.stopped
    assert pub.stats()["frames_sent"] >= 2  # readable after stop


def test_every_frame_replica_is_a_rolling_buffer_that_gets_each_frame_of_a_burst(hosts):
    a, b = hosts
    src = shmlink.Stream.create(f"{a}/rec.im.shm", data=frame(1), depth=8, mode="purge")
    with bridge.Publisher(f"{a}/rec.im.shm", "tcp://127.0.0.1:0", **FAST) as pub:
        with bridge.Replica("rec", pub.endpoint, local_name=f"{b}/rec.im.shm", every_frame=True, window=4,
                            **FAST) as rep:
            assert rep.wait_first_frame(5.0), rep.last_error
            for k in range(2, 8):  # a burst within the depth: nothing can be lost
                src.write(frame(k))
            deadline = time.monotonic() + 10
            while rep.stats()["source_cnt0"] < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
            st = rep.stats()
            assert st["mode"] == "every_frame" and st["source_cnt0"] == 7, st
            assert st["frames_published"] == 7 and st["lost"] == 0 and st["duplicates_dropped"] == 0, st
            copy = shmlink.Stream.open(rep.path)
            assert copy.keywords["BR_LOST"] == 0 and copy.keywords["BR_SRC_CNT0"] == 7
        assert shmlink.Stream.open(f"{b}/rec.im.shm").keywords["BR_LINK"] == 0  # stopped: not updated any more
    with pytest.raises(shmlink.ArgumentError):
        bridge.Replica("rec", "tcp://127.0.0.1:1", every_frame=True, window=0)


def test_publisher_errors_name_the_stream_and_the_endpoint(hosts):
    a, _ = hosts
    with pytest.raises(FileNotFoundError, match="nothing"):
        bridge.Publisher(f"{a}/nothing.im.shm", "tcp://127.0.0.1:0")
    shmlink.Stream.create(f"{a}/s.im.shm", data=frame(1), mode="purge").close()
    with bridge.Publisher(f"{a}/s.im.shm", "tcp://127.0.0.1:0") as pub:
        with pytest.raises(OSError, match=f"tcp://127.0.0.1:{pub.port}"):
            bridge.Publisher(f"{a}/s.im.shm", f"tcp://127.0.0.1:{pub.port}")  # the port is taken
    with pytest.raises(ValueError, match="link_timeout_ms"):
        bridge.Publisher(f"{a}/s.im.shm", "tcp://127.0.0.1:0", heartbeat_ms=100, link_timeout_ms=100)


def test_publisher_stop_frees_its_port_before_it_returns(hosts):
    """zmq_close() leaves the listening socket to libzmq's I/O thread; stop() waits for it (before
    that, about one bind in three right after stop() found the port still taken)."""
    a, _ = hosts
    shmlink.Stream.create(f"{a}/s.im.shm", data=frame(1), mode="purge").close()
    for _ in range(20):
        pub = bridge.Publisher(f"{a}/s.im.shm", "tcp://127.0.0.1:0")
        port = pub.port
        pub.stop()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
        assert pub.endpoint == f"tcp://127.0.0.1:{port}" and pub.stats()["frames_sent"] == 0


def test_replica_of_a_port_nobody_serves_times_out_instead_of_hanging(hosts):
    _, b = hosts
    with bridge.Replica("wfs", f"tcp://127.0.0.1:{free_port()}", local_name=f"{b}/wfs.im.shm", **FAST) as rep:
        assert rep.wait_first_frame(0.3) is False
        assert rep.stats()["link_up"] is False
    assert not os.path.exists(f"{b}/wfs.im.shm")


# ---- DAO's pubPort / subPort ------------------------------------------------------------------

#: The publishing process of the DAO example: creates the stream, starts the mirror on an
#: ephemeral port (pubPort=0) of loopback, prints the port, then writes frame(k), k = 2, 3, ...
#: every 2 ms until a line arrives on stdin, and exits without stopping anything itself (the
#: interpreter's exit must stop the mirror's threads).
PUBLISHER = """
    import select, sys, time
    import numpy as np
    from shmlink.dao import shm

    def frame(k):
        return (np.arange(24, dtype=np.int32).reshape(4, 6) * 1000 + k).astype(np.int32)

    s = shm(sys.argv[1], frame(1), pubPort=0, pubHost="127.0.0.1", heartbeat=0.05)
    s.pubEnable = True
    s.pubThread.start()
    print(s.pubPort, flush=True)
    k = 1
    while not select.select([sys.stdin], [], [], 0.002)[0]:
        k += 1
        s.set_data(frame(k))
    print(k, flush=True)
    """


def test_dao_example_publisher_and_subscriber_in_two_processes(hosts):
    a, b = hosts
    pub = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PUBLISHER), f"{a}/wfs.im.shm"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(pub.stdout.readline())
        sub = shm(f"{b}/wfs.im.shm", subPort=port, subHost="127.0.0.1", heartbeat=0.05)
        sub.subEnable = True
        sub.subThread.start()
        assert sub.subThread.is_alive()
        seen = [frame_number(sub.get_data())]  # waits for the first frame (subTimeout)
        while len(set(seen)) < 6 and len(seen) < 200:
            data = sub.get_data(check=True, timeout=5.0)  # semaphore 0, as DAO's loop reads
            assert data is not None, sub.replica.stats()
            seen.append(frame_number(data))
        assert len(set(seen)) == 6 and seen == sorted(seen), seen  # whole frames, never older
        assert sub.get_counter() >= 6
        kw = dict(sub.stream.keywords)
        assert kw["BR_ORIGIN"] == "127.0.0.1" and kw["BR_LINK"] == 1
        assert kw["BR_SRC_CNT0"] >= seen[-1]  # the source's cnt0: frame k is its k-th write
        sub.subEnable = False  # stops the replica (DAO's thread idles); the stream stays readable
        assert sub.replica is None and sub.subThread.is_alive()
        last = sub.get_counter()
        time.sleep(0.05)
        assert sub.get_counter() == last
        assert frame_number(sub.get_data()) >= seen[-1]
        sub.close()  # ends DAO's thread
        assert not sub.subThread.is_alive()
        out, err = pub.communicate("stop\n", timeout=10)
        assert pub.returncode == 0, err
        assert int(out.split()[-1]) >= seen[-1]
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.wait()


def test_dao_subscriber_of_a_wrong_port_raises_a_timeout_naming_it(hosts):
    _, b = hosts
    port = free_port()
    s = shm(f"{b}/wfs.im.shm", subPort=port, subHost="127.0.0.1", heartbeat=0.05, subTimeout=0.3)
    with pytest.raises(FileNotFoundError, match="subThread"):
        s.get_data()  # not started: no replica, and the stream does not exist here
    s.subEnable = True
    s.subThread.start()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        s.get_data()
    assert time.monotonic() - t0 < 3.0
    s.subEvent.set()  # DAO's way of ending the thread
    s.subThread.join(timeout=2.0)
    assert not s.subThread.is_alive()
    with pytest.raises(RuntimeError):
        s.subThread.start()  # as a threading.Thread: once only
    s.close()


def test_dao_pub_enable_false_stops_the_publisher_and_frees_its_port(hosts):
    a, _ = hosts
    s = shm(f"{a}/wfs.im.shm", frame(1), pubPort=0, pubHost="127.0.0.1")
    s.pubThread.start()  # not enabled yet: DAO's thread idles, nothing is bound
    assert s.publisher is None and s.pubThread.is_alive()
    s.pubEnable = True
    assert s.publisher is not None and s.pubPort > 0
    port = s.pubPort
    s.pubEnable = False
    assert s.publisher is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again
    with pytest.raises(shmlink.ArgumentError, match="both"):
        s.subEnable = True  # a stream mirrored both ways would echo for ever
        s.subThread.start()
    s.close()
    assert not s.pubThread.is_alive()


def test_dao_subscriber_into_an_existing_local_stream_follows_the_publisher(hosts):
    """DAO's documented set-up: the mirror host first creates its own stream (here without the
    keyword slots the replica needs, so the bridge re-creates it), then subscribes."""
    a, b = hosts
    src = shm(f"{a}/wfs.im.shm", frame(7), pubPort=0, pubHost="127.0.0.1", heartbeat=0.05)
    src.pubEnable = True
    src.pubThread.start()
    sub = shm(f"{b}/wfs.im.shm", np.zeros((4, 6), np.int32), subPort=src.pubPort, subHost="127.0.0.1",
              heartbeat=0.05)
    assert not sub.get_data().any()  # the local zeros until the subscriber starts
    sub.subEnable = True
    sub.subThread.start()
    assert sub.replica.wait_first_frame(5.0), sub.replica.last_error
    assert frame_number(sub.get_data()) == 7  # the re-created replica, re-opened
    src.set_data(frame(8))
    assert frame_number(sub.get_data(check=True, timeout=5.0)) in (7, 8)  # a post may be pending
    deadline = time.monotonic() + 5.0
    while frame_number(sub.get_data()) != 8 and time.monotonic() < deadline:
        sub.get_data(check=True, timeout=0.5)
    assert frame_number(sub.get_data()) == 8 and sub.stream.keywords["BR_SRC_CNT0"] == 2
    rep = sub.replica
    assert rep.stats()["recreated"] == 1  # the zeros had no room for the bridge's keywords
    del sub  # deleting the object stops its replica
    assert rep.stopped
    src.pubEvent.set()
    src.pubThread.join(1.0)
    assert src.publisher is None and not src.pubThread.is_alive()
    src.close()
