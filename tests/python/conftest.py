# SPDX-License-Identifier: MIT
"""Fixtures of the Python tests: a private stream directory, the C++ peer, the test pattern."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

#: numpy dtype name -> shmlink short name, all 13 ImageStreamIO datatypes.
DTYPES = {
    "uint8": "u8", "int8": "i8", "uint16": "u16", "int16": "i16", "uint32": "u32", "int32": "i32",
    "uint64": "u64", "int64": "i64", "float16": "f16", "float32": "f32", "float64": "f64",
    "complex64": "c64", "complex128": "c128",
}


def pattern(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """The frame tests/python/peer.cpp writes and checks (see its header comment)."""
    n = int(np.prod(shape))
    i = np.arange(n)
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        v = (i * 37 + 5) % 120
        if dt.kind == "i":
            v = v - 60
        a = v.astype(dt)
        if n >= 3:
            info = np.iinfo(dt)
            a[0], a[1] = info.max, info.min
    elif dt.kind == "f":
        a = (i * 0.25 - 1.5).astype(dt)
    else:
        a = np.empty(n, dt)
        a.real = i * 0.25 - 1.5
        a.imag = -(i * 0.5)  # -0.0 for element 0, as the C++ peer computes it
    return a.reshape(shape)


@pytest.fixture()
def streamdir(monkeypatch):
    """A private stream directory under /dev/shm, set as SHMLINK_DIR for us and our children."""
    d = tempfile.mkdtemp(prefix="shmlink-py-", dir="/dev/shm")
    monkeypatch.setenv("SHMLINK_DIR", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def peer():
    """Runs the C++ peer (tests/python/peer.cpp) and returns its CompletedProcess."""
    exe = os.environ.get("SHMLINK_PYPEER")
    if not exe:
        pytest.fail("SHMLINK_PYPEER is not set: run the Python tests through ctest")

    def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"peer {args} failed ({r.returncode}): {r.stderr}")
        return r

    run.exe = exe
    return run
