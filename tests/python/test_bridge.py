# SPDX-License-Identifier: MIT
"""shmlink.bridge (Publisher, Replica): real stream files (one directory per "host"), loopback
TCP on ephemeral ports, short heartbeats."""

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


def test_replica_of_a_port_nobody_serves_times_out_instead_of_hanging(hosts):
    _, b = hosts
    with bridge.Replica("wfs", f"tcp://127.0.0.1:{free_port()}", local_name=f"{b}/wfs.im.shm", **FAST) as rep:
        assert rep.wait_first_frame(0.3) is False
        assert rep.stats()["link_up"] is False
    assert not os.path.exists(f"{b}/wfs.im.shm")
