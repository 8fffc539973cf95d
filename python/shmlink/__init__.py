# SPDX-License-Identifier: MIT
"""shmlink: shared-memory streams for Python, byte-compatible with milk/cacao ImageStreamIO 2.00,
plus typed sample queues and the co-simulation Interface.

>>> import numpy as np, shmlink
>>> with shmlink.Stream.create("wfs", shape=(240, 320), dtype="uint16", mode="purge") as s:
...     s.write(np.zeros((240, 320), np.uint16))
...     frame = s.read()            # validated copy, never torn

Axis convention (once, for every API): numpy shapes are slowest axis first. A C-order array of
shape ``(z, y, x)`` is stored with ImageStreamIO ``size[0] = x`` (the fastest axis), ``size[1] = y``,
``size[2] = z``. An image written from C++ as ``shape = {width, height}`` therefore reads here as
``(height, width)``, not transposed, and a milk/C++ reader sees what Python wrote.

Datatypes: uint8..uint64, int8..int64, float16, float32, float64, complex64, complex128 (native
byte order), the 13 ImageStreamIO types. Errors: see :mod:`shmlink.errors`. DAO users:
``from shmlink.dao import shm``.

Queues (``shmlink.Queue``) carry samples of 8-byte values typed by a signal table (``Signal``:
f64, i64, bool, c64); ``shmlink.Interface`` is a duplex link to a peer process (VILLASnode
shmem / DPsim style). See docs/python.md "Queues and co-simulation". ``shmlink.Region`` holds
named streams and queues in one mapping (e.g. a hugetlbfs file shared with QEMU guests).
"""

import datetime as _dt
import enum as _enum
from collections.abc import Iterator as _Iterator, MutableMapping as _MutableMapping
from typing import Union as _Union

import numpy as _np

from . import errors
from . import _shmlink
from ._shmlink import (Interface, PeerStatus, Queue, Region, Sample, Signal, Stream, queue_path,
                       region_path, stream_directory, stream_path)
from .errors import (AccessError, ArgumentError, BusyError, ClosedError, Error, ExistsError,
                     Interrupted, LayoutError, NoSpaceError, NotFoundError, NotReadyError,
                     OverwrittenError, PeerExitedError, ReplacedError, ShutDownError,
                     SystemFailure, TornReadError, WaitTimeout, WriterActiveError)

# Every public name, and only those: `from shmlink import *` and dir()'s public names agree
# (tests/python/test_namespace.py). Helpers and what is imported for typing stay private (_x).
__all__ = [
    "Stream", "Keywords", "KeywordValue", "stream_directory", "stream_path", "errors", "Error",
    "AccessError", "ArgumentError", "BusyError", "ClosedError", "ExistsError", "Interrupted", "LayoutError",
    "NoSpaceError", "NotFoundError", "NotReadyError", "OverwrittenError", "ReplacedError",
    "SystemFailure", "TornReadError", "WaitTimeout", "WriterActiveError", "DTYPES",
    "Queue", "Sample", "Signal", "SignalType", "SampleFlag", "Interface", "PeerStatus",
    "PeerExitedError", "ShutDownError", "queue_path", "Region", "region_path",
]

__version__ = "0.4.0"

#: The numpy dtypes a stream can hold, in ImageStreamIO code order (1..13).
DTYPES = tuple(_np.dtype(n) for n in (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32",
    "float64", "complex64", "complex128", "float16"))

#: A keyword's value: an int (int64), a float (double) or a str.
KeywordValue = _Union[int, float, str]

class SignalType(str, _enum.Enum):
    """A signal's type; a str, so ``SignalType.I64 == "i64"`` and either is accepted."""

    F64 = "f64"    #: float64
    I64 = "i64"    #: int64
    BOOL = "bool"  #: bool, stored as 0/1 in 8 bytes
    C64 = "c64"    #: complex64: float32 real and imaginary parts


class SampleFlag(_enum.IntFlag):
    """Bits of ``Sample.flags`` (VILLASnode's SampleFlags values)."""

    HAS_TS_ORIGIN = _shmlink.SAMPLE_HAS_TS_ORIGIN
    HAS_TS_RECEIVED = _shmlink.SAMPLE_HAS_TS_RECEIVED
    HAS_SEQUENCE = _shmlink.SAMPLE_HAS_SEQUENCE
    HAS_DATA = _shmlink.SAMPLE_HAS_DATA
    NEW_FRAME = _shmlink.SAMPLE_NEW_FRAME
    NEW_SIMULATION = _shmlink.SAMPLE_NEW_SIMULATION


class Keywords(_MutableMapping):
    """A stream's ImageStreamIO keywords as a mutable mapping of name -> int, float or str.

    Names are at most 15 bytes, string values at most 16 bytes (as ImageStreamIO stores them);
    the number of slots is fixed at creation (``Stream.create(..., keywords=N)``): adding one
    more raises ArgumentError.
    """

    def __init__(self, stream: "Stream") -> None:
        self._stream = stream

    def __getitem__(self, name: str) -> KeywordValue:
        values = self._stream._keywords()
        if name not in values:
            raise KeyError(name)
        return values[name]

    def __setitem__(self, name: str, value: KeywordValue) -> None:
        self._stream._set_keyword(name, value, "")

    def set(self, name: str, value: KeywordValue, comment: str = "") -> None:
        """Sets ``name`` with a comment (at most 79 bytes)."""
        self._stream._set_keyword(name, value, comment)

    def __delitem__(self, name: str) -> None:
        if not self._stream._erase_keyword(name):
            raise KeyError(name)

    def __iter__(self) -> _Iterator[str]:
        return iter(list(self._stream._keywords()))

    def __len__(self) -> int:
        return len(self._stream._keywords())

    def __repr__(self) -> str:
        return f"Keywords({self._stream._keywords()!r})"


def _datetime(ns: int) -> _dt.datetime:
    """ns since the epoch -> an aware UTC datetime (microsecond resolution)."""
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)


def _history(self: "Stream", count: int = 0) -> _np.ndarray:
    """The last ``count`` frames of a rolling buffer (all but the slice being rewritten when 0),
    oldest first, as an array of shape ``(n,) + shape``; frames overwritten meanwhile are left out."""
    newest = self.cnt0
    if count <= 0:
        count = max(self.depth - 1, 1)
    frames = []
    for k in range(max(newest - count + 1, 1), newest + 1):
        try:
            frames.append(self.read_frame(k))
        except OverwrittenError:
            continue
    if not frames:
        return _np.empty((0,) + tuple(self.shape), self.dtype)
    return _np.stack(frames)


Stream.keywords = property(lambda self: Keywords(self), doc="The keywords, a mutable mapping.")
Stream.metadata = property(lambda self: self.info(), doc="All metadata as a dict (racy snapshot).")
Stream.atime = property(lambda self: _datetime(self.atime_ns), doc="Acquisition time (UTC datetime).")
Stream.writetime = property(lambda self: _datetime(self.writetime_ns), doc="Write time (UTC datetime).")
Stream.creation_time = property(lambda self: _datetime(self.creation_time_ns), doc="Creation time (UTC datetime).")
Stream.newest = Stream.read
Stream.history = _history

Sample.origin_time = property(lambda self: _datetime(self.ts_origin), doc="ts_origin as a UTC datetime.")
Sample.received_time = property(lambda self: _datetime(self.ts_received), doc="ts_received as a UTC datetime.")
Queue.metadata = property(lambda self: self.info(), doc="The header as a dict (racy snapshot).")
