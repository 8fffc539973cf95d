# SPDX-License-Identifier: MIT
"""C++ writer process -> Python reader and Python writer -> C++ reader process, for every dtype
and for 1-, 2- and 3-axis shapes, compared exactly; and the axis convention."""

from __future__ import annotations

import numpy as np
import pytest

import shmlink
from conftest import DTYPES, pattern

SHAPES = [(7,), (3, 5), (2, 3, 4)]  # numpy order (slowest first)


def isio(shape: tuple[int, ...]) -> str:
    """The ISIO shape text (fastest axis first) of a numpy shape."""
    return "x".join(str(d) for d in reversed(shape))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpp_writes_python_reads(streamdir, peer, dtype, shape):
    peer("write", "c2p", DTYPES[dtype], isio(shape))
    with shmlink.Stream.open("c2p") as s:
        assert s.dtype == np.dtype(dtype)
        assert s.shape == shape
        got = s.read()
        assert got.dtype == np.dtype(dtype) and got.shape == shape
        np.testing.assert_array_equal(got, pattern(dtype, shape), strict=True)
        assert got.tobytes() == pattern(dtype, shape).tobytes()  # bit-exact, -0.0 and all


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_python_writes_cpp_reads(streamdir, peer, dtype, shape):
    with shmlink.Stream.create("p2c", pattern(dtype, shape), mode="purge") as s:
        assert s.isio_size == list(reversed(shape))
    r = peer("check", "p2c", check=False)
    assert r.returncode == 0, r.stderr


def test_non_square_image_is_not_transposed(streamdir, peer):
    # C++ writes a 5 (wide) x 3 (high) image: ISIO size = {5, 3}; numpy sees (3, 5), row-major.
    peer("write", "img", "u16", "5x3")
    with shmlink.Stream.open("img") as s:
        assert s.shape == (3, 5)
        img = s.read()
        flat = pattern("uint16", (15,))
        for y in range(3):
            for x in range(5):
                assert img[y, x] == flat[y * 5 + x]


def test_unsupported_dtype_is_a_clear_error(streamdir):
    with pytest.raises(ValueError, match="bool"):
        shmlink.Stream.create("b", shape=(2,), dtype=bool)
    with pytest.raises(ValueError, match=">f4"):
        shmlink.Stream.create("b", shape=(2,), dtype=">f4")
