# SPDX-License-Identifier: MIT
"""shmlink.Stream.open("HOST:NAME") through the bridge service of this host: a fake service (a
thread serving the control socket, AF_UNIX SOCK_SEQPACKET) makes the replica and answers its path."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest

import shmlink

MAGIC = "SHMLINK-BRIDGE/1"


class FakeService:
    """Answers each request with handler(fields) -> list of reply fields (after the magic)."""

    def __init__(self, path: str, handler):
        self.requests: list[list[str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.bind(path)
        self._sock.listen(4)
        self._sock.settimeout(0.05)
        self._handler = handler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                fields = conn.recv(1 << 20).decode().split("\t")
                assert fields[0] == MAGIC
                self.requests.append(fields[1:])
                conn.send("\t".join([MAGIC, *self._handler(fields[1:])]).encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture()
def service(streamdir, monkeypatch):
    monkeypatch.delenv("SHMLINK_BRIDGE", raising=False)
    monkeypatch.delenv("SHMLINK_BRIDGE_SOCKET", raising=False)
    monkeypatch.setenv("SHMLINK_BRIDGE_TIMEOUT_MS", "3000")

    def make_replica(fields):
        verb, kind, host, name, timeout_ms, keep = fields
        assert (verb, kind, host, timeout_ms, keep) == ("OPEN", "stream", "rtc1", "3000", "0")
        s = shmlink.Stream.create(name, shape=(2, 3), dtype="float32", mode="purge")
        s.write(np.arange(6, dtype=np.float32).reshape(2, 3))
        path = os.path.join(streamdir, name + ".im.shm")
        s.close()
        return ["OK", path]

    svc = FakeService(os.path.join(streamdir, ".shmlink-bridge.sock"), make_replica)
    yield svc
    svc.close()


def test_host_name_opens_the_replica_the_service_makes(service):
    s = shmlink.Stream.open("rtc1:wfs")
    assert s.name == "wfs"
    assert service.requests == [["OPEN", "stream", "rtc1", "wfs", "3000", "0"]]
    np.testing.assert_array_equal(s.read(), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_without_a_service_the_open_fails_at_once_naming_both(streamdir, monkeypatch):
    monkeypatch.delenv("SHMLINK_BRIDGE_SOCKET", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        shmlink.Stream.open("rtc1:wfs")
    assert "does not exist" in str(e.value)
    assert "no bridge service at " + os.path.join(streamdir, ".shmlink-bridge.sock") in str(e.value)


def test_bridge_want_sends_every_frame_mode_and_window_only_when_asked(streamdir, monkeypatch):
    from shmlink import bridge
    monkeypatch.delenv("SHMLINK_BRIDGE_SOCKET", raising=False)
    svc = FakeService(os.path.join(streamdir, ".shmlink-bridge.sock"), lambda f: ["OK", "/dev/shm/replica"])
    try:
        assert bridge.want("rtc1:rec", every_frame=True, window=8, timeout=2.5) == "/dev/shm/replica"
        assert bridge.want("rec", keep=True, timeout=2.5) == "/dev/shm/replica"
        assert svc.requests == [["OPEN", "stream", "rtc1", "rec", "2500", "0", "every_frame", "8"],
                                ["OPEN", "stream", "", "rec", "2500", "1"]]
        with pytest.raises(shmlink.ArgumentError):
            bridge.want("rec", every_frame=True, window=2000)
    finally:
        svc.close()
