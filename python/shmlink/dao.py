# SPDX-License-Identifier: MIT
"""DAO compatibility: ``from shmlink.dao import shm`` runs Durham AO (daoBase) Python code.

``shm(fname, data)`` creates (replacing any old file atomically: readers re-attach instead of
crashing, unlike DAO's in-place truncation), ``shm(fname)`` opens. Files are ImageStreamIO 2.00
(milk can open them), not DAO's legacy layout; ``fname`` may be a path ("/tmp/x.im.shm") or a
stream name.

Where DAO returned a code, printed, or silently copied the wrong number of bytes, this raises an
exception from :mod:`shmlink.errors` instead:

* ``set_data`` with another dtype or shape: ``shmlink.ArgumentError`` (a ``ValueError``) naming
  the stream, the expected and the given dtype/shape. (DAO copied ``data.size`` elements.)
* opening a missing file: ``shmlink.NotFoundError`` (a ``FileNotFoundError``). (DAO exited.)
* ``get_data(check=True, timeout=t)`` that times out returns ``None``, as DAO does.
* ``pubPort``, ``subPort``, ``subHost``: ZeroMQ mirroring arrives with the bridge; passing any of
  them raises ``NotImplementedError`` instead of being ignored.
* waits release the GIL and Ctrl-C interrupts them (``KeyboardInterrupt``); DAO's spin waits
  could not be interrupted.
"""

import datetime as _dt
from typing import Optional as _Optional

import numpy as _np

from . import Stream as _Stream
from .errors import OverwrittenError

DAO_SUCCESS = 0
DAO_ERROR = 1
DAO_TIMEOUT = -1
DAO_OVERWRITE = -2
DAO_NOTREADY = -3

_log_level = 0


def setLogLevel(level: int) -> None:  # noqa: N802 (DAO's name)
    """DAO's log level (kept for compatibility; shmlink raises instead of logging)."""
    global _log_level
    _log_level = int(level)


def getLogLevel() -> int:  # noqa: N802
    """DAO's log level."""
    return _log_level


class shm:  # noqa: N801 (DAO's name)
    """DAO's ``daoShm.shm``: one stream, numpy in and out (copies)."""

    def __init__(self, fname: _Optional[str] = None, data: _Optional[_np.ndarray] = None, nbkw: int = 0,
                 pubPort: _Optional[int] = None, subPort: _Optional[int] = None,  # noqa: N803
                 subHost: _Optional[str] = None, logLevel: int = 0, depth: int = 1) -> None:  # noqa: N803
        if pubPort is not None or subPort is not None or subHost is not None:
            raise NotImplementedError(
                "shmlink.dao.shm: ZeroMQ mirroring (pubPort/subPort/subHost) arrives with the shmlink "
                "bridge; use 'shmlink bridge' then, or leave these arguments out")
        if fname is None:
            raise ValueError("shmlink.dao.shm: a file name is required")
        setLogLevel(logLevel)
        self.fname = fname
        self._stream: _Optional[_Stream] = None
        if data is not None:
            data = _np.asarray(data)
            self._stream = _Stream.create(fname, data.shape, data.dtype, depth=depth if depth > 1 else 0,
                                          keywords=nbkw, mode="purge")
            self._stream.write(_np.ascontiguousarray(data))
        else:
            self._stream = _Stream.open(fname)

    @property
    def stream(self) -> _Stream:
        """The underlying :class:`shmlink.Stream` (raises ClosedError after close())."""
        if self._stream is None:
            from .errors import ClosedError
            raise ClosedError(f"stream '{self.fname}' is closed")
        return self._stream

    # ---- writing ----
    def set_data(self, data: _np.ndarray) -> None:
        """Publishes ``data`` (exactly the stream's dtype and shape; C order is made if needed)."""
        self.stream.write(_np.ascontiguousarray(data))

    # ---- reading ----
    def get_data(self, check: bool = False, reform: bool = True, semNb: int = 0,  # noqa: N803
                 timeout: float = 0, spin: bool = False) -> _Optional[_np.ndarray]:
        """A copy of the newest frame. ``check``: first wait for a new one, by spinning on cnt0
        (``spin``), else on semaphore ``semNb`` (forever when ``timeout`` is 0, else at most
        ``timeout`` seconds, returning None when it passes). ``reform=False`` returns it flat."""
        s = self.stream
        if check:
            if spin:
                s.wait(spin=True)
            elif timeout == 0:
                s.wait(sem=semNb)
            elif not s.wait(timeout=timeout, sem=semNb):
                return None
        frame = s.read()
        return frame if reform else frame.ravel()

    def get_data_next(self, wait: bool = False, reform: bool = True):
        """FIFO sequential read: ``(status, array or None)`` with DAO_SUCCESS (the next frame),
        DAO_OVERWRITE (lapped: the newest frame) or DAO_NOTREADY (nothing new; None)."""
        got = self.stream.read_next(timeout=1e12 if wait else 0.0)
        if got is None:
            return DAO_NOTREADY, None
        frame, _cnt0, skipped = got
        return (DAO_OVERWRITE if skipped else DAO_SUCCESS), (frame if reform else frame.ravel())

    def get_data_arbitrary(self, index: int, reform: bool = True) -> _np.ndarray:
        """The frame in FIFO slot ``index % depth`` (validated copy)."""
        frame = self.stream.read_slice(index)
        return frame if reform else frame.ravel()

    def get_history(self, num_items: int = 1, check: bool = False, semNb: int = 0,  # noqa: N803
                    timeout: float = 0, spin: bool = False, buffer: bool = False) -> _np.ndarray:
        """The last ``num_items`` frames, oldest first, stacked: shape ``(n,) + frame shape``
        (after the optional wait of get_data). ``buffer=True`` returns the whole FIFO."""
        s = self.stream
        if check and self.get_data(check=True, semNb=semNb, timeout=timeout, spin=spin) is None:
            return _np.empty((0,) + tuple(s.shape), s.dtype)
        return s.history(s.depth if buffer else num_items)

    def reset_tail(self) -> None:
        """Moves the FIFO reader's tail to the newest frame."""
        self.stream.reset_tail()

    # ---- counters and metadata ----
    def get_counter(self) -> int:
        """cnt0 of the newest frame."""
        return self.stream.cnt0

    def get_frame_id(self) -> int:
        """cnt2, the frame id set by the writer."""
        return self.stream.cnt2

    def get_timestamp(self) -> _dt.datetime:
        """Acquisition time of the newest frame (UTC datetime)."""
        return self.stream.atime

    def get_meta_data(self, index: _Optional[int] = None) -> dict:
        """The metadata as a dict; with ``index``, cnt0 and times are those of FIFO slot index."""
        md = self.stream.info()
        if index is not None:
            sl = self.stream.slice_info(index)
            md.update(cnt0=sl["cnt0"], cnt1=sl["slice"], atime_ns=sl["atime_ns"], writetime_ns=sl["writetime_ns"])
        return md

    # ---- life cycle ----
    def close(self) -> None:
        """Unmaps the stream (the file stays, as in DAO)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (never raise from __del__; views may still exist)
            pass

    def __enter__(self) -> "shm":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["shm", "setLogLevel", "getLogLevel", "DAO_SUCCESS", "DAO_ERROR", "DAO_TIMEOUT",
           "DAO_OVERWRITE", "DAO_NOTREADY", "OverwrittenError"]
