# SPDX-License-Identifier: MIT
"""DAO compatibility: the Python examples of DAO's documentation (docs/source quick start and the
example set-up script), verbatim apart from the import, then the rest of daoShm.shm's API."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from shmlink import dao
from shmlink.dao import shm


def run_example(code: str, cwd: str) -> subprocess.CompletedProcess:
    """Runs a documentation example in a fresh interpreter (the import line already swapped)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))


def test_quick_start_writing_then_reading(streamdir, tmp_path):
    shm("file.im.shm", np.zeros([10, 10]).astype(np.uint16)).close()
    writing = """
        from shmlink import dao
        import numpy as np

        shared_memory = dao.shm('file.im.shm')
        data = shared_memory.set_data(np.zeros([10,10]).astype(np.uint16))
        """
    r = run_example(writing, tmp_path)
    assert r.returncode == 0, r.stderr
    reading = """
        from shmlink import dao

        shared_memory = dao.shm('file.im.shm')
        data = shared_memory.get_data()
        print(data.shape, data.dtype, shared_memory.get_counter())
        """
    r = run_example(reading, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(10,", "10)", "uint16", "2"]


def test_quick_start_simple_loop_wakes_once_per_frame(streamdir, tmp_path):
    writer = shm("file.im.shm", np.zeros([10, 10]).astype(np.uint16))  # cnt0 = 1, one post
    loop = """
        from shmlink import dao
        shared_memory = dao.shm('file.im.shm')
        print('ready', flush=True)

        while True:
            data = shared_memory.get_data(check=True)
            print(flush=True)
        """
    child = subprocess.Popen([sys.executable, "-u", "-c", textwrap.dedent(loop)], cwd=tmp_path,
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert child.stdout.readline().strip() == "ready"
        for k in range(5):
            writer.set_data(np.full([10, 10], k, np.uint16))
        lines = 0
        while lines < 6:  # the creation's post plus five frames: one wake-up each
            assert child.stdout.readline() == "\n"
            lines += 1
        time.sleep(0.3)
        assert child.poll() is None  # still waiting: no seventh wake-up
    finally:
        child.kill()
        child.wait()


def test_setup_script_example(tmp_path):
    path = "/tmp/demoShm.im.shm"
    clock = "/tmp/demoClockShm.im.shm"
    try:
        example = """
            from shmlink.dao import shm as _shm
            import numpy as np
            class shmlib:  # the example's module name
                shm = _shm
            shm=shmlib.shm('/tmp/demoShm.im.shm',np.zeros((100,100)).astype(np.float32))
            clockShm=shmlib.shm('/tmp/demoClockShm.im.shm',np.zeros((1,1)).astype(np.uint32))
            print(shm.get_data().shape, clockShm.get_data().dtype)
            """
        r = run_example(example, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "(100, 100) uint32"
        assert shm(path).get_data().dtype == np.float32
    finally:
        for p in (path, clock):
            if os.path.exists(p):
                os.unlink(p)


def test_counters_frame_id_timestamp_metadata(streamdir):
    s = shm("dm", np.ones((3, 4), np.float32))
    assert s.get_counter() == 1
    s.stream.write(np.ones((3, 4), np.float32), frame_id=17)
    assert s.get_frame_id() == 17
    ts = s.get_timestamp()
    assert isinstance(ts, datetime.datetime)
    assert abs(ts.timestamp() - time.time()) < 60
    md = s.get_meta_data()
    assert md["cnt0"] == 2 and md["shape"] == (3, 4) and md["dtype"] == "float32"
    data = s.get_data(reform=False)
    assert data.shape == (12,)
    s.close()
    s.close()  # idempotent


def test_get_data_waits_with_timeout_spin_and_semaphore(streamdir):
    s = shm("sync", np.zeros((2, 2), np.int32))
    r = shm("sync")
    r.stream.sem_flush(0)
    t0 = time.monotonic()
    assert r.get_data(check=True, timeout=0.2) is None  # DAO returns None on timeout
    assert time.monotonic() - t0 >= 0.19
    s.set_data(np.full((2, 2), 5, np.int32))
    assert r.get_data(check=True, timeout=5)[0, 0] == 5
    s.set_data(np.full((2, 2), 6, np.int32))
    assert r.get_data(check=True, spin=True)[1, 1] == 6
    s.set_data(np.full((2, 2), 7, np.int32))
    assert r.get_data(check=True, semNb=3, timeout=5)[0, 1] == 7


def test_fifo_depth_4_sequential_and_overwrite(streamdir):
    # DAO's own FIFO tests (test_cppInterface.cpp): depth 4 sequential reads give consecutive
    # counters; 10 writes into depth 4 make the next read an overwrite.
    w = shm("fifo", np.zeros((2, 2), np.float32), depth=4)
    r = shm("fifo")
    assert r.get_data_next() == (dao.DAO_NOTREADY, None)
    for k in range(3):
        w.set_data(np.full((2, 2), k, np.float32))
    counters = []
    for k in range(3):
        status, data = r.get_data_next()
        assert status == dao.DAO_SUCCESS and data[0, 0] == k
        counters.append(r.stream.tail)
    assert counters == [2, 3, 4]
    for k in range(10):
        w.set_data(np.full((2, 2), 100 + k, np.float32))
    status, data = r.get_data_next()
    assert status == dao.DAO_OVERWRITE and data[0, 0] == 109
    assert r.stream.tail == 14
    assert r.get_data_arbitrary(14 % 4)[0, 0] == 109
    h = r.get_history(3)
    assert h.shape == (3, 2, 2) and list(h[:, 0, 0]) == [107, 108, 109]
    status, data = r.get_data_next(wait=False)
    assert status == dao.DAO_NOTREADY


def test_dao_errors_are_exceptions(streamdir):
    with pytest.raises(FileNotFoundError):
        shm("nothing_here")
    s = shm("typed", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="expected float32"):
        s.set_data(np.zeros((2, 2)))  # float64: DAO copied garbage, shmlink refuses
    quiet = shm("typed")  # DAO's mirroring defaults; nothing starts before pubThread/subThread
    assert (quiet.pubPort, quiet.subPort, quiet.subHost) == (5555, 5555, "localhost")
    assert not quiet.pubEnable and quiet.publisher is None and not quiet.pubThread.is_alive()
    quiet.close()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.get_data()
