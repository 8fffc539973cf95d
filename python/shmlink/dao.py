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
* waits release the GIL and Ctrl-C interrupts them (``KeyboardInterrupt``); DAO's spin waits
  could not be interrupted.

ZeroMQ mirroring as DAO documents it, carried by the shmlink bridge (:mod:`shmlink.bridge`):
``shm(fname, data, pubPort=5555)`` then ``s.pubEnable = True; s.pubThread.start()`` serves the
stream on ``tcp://*:pubPort`` (all interfaces, as DAO; ``pubHost=`` binds one address, ``pubPort=0``
an ephemeral port, read back from ``s.pubPort``). ``shm(fname, subPort=5555, subHost='rtc1')`` then
``s.subEnable = True; s.subThread.start()`` keeps ``fname`` here a replica of the stream of the same
name (``subName=`` another) published there; the file need not exist here yet (the first read
waits for the first frame, at most ``subTimeout`` seconds, then raises ``WaitTimeout``). Unlike
DAO: no pickle (a fixed little-endian header plus the raw frame), one frame in flight per credit
(latest value, frames skipped are counted in the keyword BR_SKIPPED), the source's cnt0 and write
time travel (BR_SRC_CNT0, BR_SRC_WTIME, BR_ORIGIN, BR_LINK), a shape or dtype change re-creates
the replica, writes made on the replica go back to the publisher, and no Python thread polls:
``pubThread`` / ``subThread`` only look like threads (start, join, is_alive); the bridge's C++
threads do the work. ``pubEnable = False`` / ``subEnable = False`` stop the bridge (the port is
free again), ``True`` starts it again; ``pubEvent.set()`` / ``subEvent.set()``, ``close()``,
deleting the object or the interpreter's exit end it.
"""

import datetime as _dt
import threading as _threading
import weakref as _weakref
from typing import Optional as _Optional

import numpy as _np

from . import Stream as _Stream
from . import bridge as _bridge
from .errors import OverwrittenError
from .errors import from_code as _from_code

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
    """DAO's ``daoShm.shm``: one stream, numpy in and out (copies), optionally mirrored over
    the network as DAO's ``pubPort`` / ``subPort`` / ``subHost`` do (module docstring).

    shmlink's own keyword arguments: ``pubHost`` ('*': the address the publisher binds),
    ``subName`` (the publisher's stream name when it is not this one's), ``subTimeout`` (seconds
    the first read of a subscriber whose stream did not exist here waits for the first frame),
    ``heartbeat`` (seconds between the bridge's heartbeats; a link is down after four silent
    ones). ``publisher`` / ``replica``: the :mod:`shmlink.bridge` object while it runs.
    """

    def __init__(self, fname: _Optional[str] = None, data: _Optional[_np.ndarray] = None, nbkw: int = 0,
                 pubPort: _Optional[int] = None, subPort: _Optional[int] = None,  # noqa: N803
                 subHost: _Optional[str] = None, logLevel: int = 0, depth: int = 1, *,  # noqa: N803
                 pubHost: str = "*", subName: _Optional[str] = None, subTimeout: float = 5.0,  # noqa: N803
                 heartbeat: float = 1.0) -> None:
        if fname is None:
            raise ValueError("shmlink.dao.shm: a file name is required")
        setLogLevel(logLevel)
        self.fname = fname
        self._stream: _Optional[_Stream] = None
        self._closed = False
        subscribing = subPort is not None or subHost is not None
        if data is not None:
            data = _np.asarray(data)
            self._stream = _Stream.create(fname, data.shape, data.dtype, depth=depth if depth > 1 else 0,
                                          keywords=nbkw, mode="purge")
            self._stream.write(_np.ascontiguousarray(data))
        else:
            try:
                self._stream = _Stream.open(fname)
            except FileNotFoundError:
                if not subscribing:
                    raise
                # a replica made here by subThread: opened at the first read (see stream)
        # ZeroMQ mirroring (DAO's defaults: 5555, 5555, 'localhost'), over the shmlink bridge.
        if heartbeat <= 0:
            raise _from_code(-1, f"shmlink.dao.shm '{fname}': heartbeat {heartbeat!r} s is not positive")
        self._heartbeat_ms = max(int(heartbeat * 1000), 1)
        self.pubPort = 5555 if pubPort is None else int(pubPort)
        self.pubHost = pubHost
        self.subPort = 5555 if subPort is None else int(subPort)
        self.subHost = "localhost" if subHost is None else subHost
        self.subName = subName
        self.subTimeout = subTimeout
        self.publisher: _Optional[_bridge.Publisher] = None  #: the bridge Publisher while publishing
        self.replica: _Optional[_bridge.Replica] = None      #: the bridge Replica while subscribing
        self._pub_enable = False
        self._sub_enable = False
        self._mirror_lock = _threading.RLock()
        me = _weakref.ref(self)
        self.pubEvent = _EndEvent(me, "pub")
        self.pubThread = _MirrorThread(me, "pub")
        self.subEvent = _EndEvent(me, "sub")
        self.subThread = _MirrorThread(me, "sub")

    # ---- ZeroMQ mirroring (DAO's pubEnable / pubThread, subEnable / subThread) ----
    @property
    def pubEnable(self) -> bool:  # noqa: N802
        """Publish while True and pubThread is started: False stops the bridge Publisher."""
        return self._pub_enable

    @pubEnable.setter
    def pubEnable(self, on: bool) -> None:  # noqa: N802
        self._pub_enable = bool(on)
        self._mirror_sync("pub")

    @property
    def subEnable(self) -> bool:  # noqa: N802
        """Subscribe while True and subThread is started: False stops the bridge Replica."""
        return self._sub_enable

    @subEnable.setter
    def subEnable(self, on: bool) -> None:  # noqa: N802
        self._sub_enable = bool(on)
        self._mirror_sync("sub")

    def _endpoint(self, which: str) -> str:
        host = self.pubHost if which == "pub" else self.subHost
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        return f"tcp://{host}:{self.pubPort if which == 'pub' else self.subPort}"

    def _mirror_sync(self, which: str) -> None:
        """Starts or stops the bridge object of `which` ('pub', 'sub') to match its thread and flag."""
        with self._mirror_lock:
            thread = self.pubThread if which == "pub" else self.subThread
            want = thread.is_alive() and (self._pub_enable if which == "pub" else self._sub_enable)
            timing = dict(heartbeat_ms=self._heartbeat_ms, link_timeout_ms=4 * self._heartbeat_ms)
            if which == "pub":
                if want and self.publisher is None:
                    self.publisher = _bridge.Publisher(self.fname, self._endpoint("pub"), **timing)
                    self.pubPort = self.publisher.port
                elif not want and self.publisher is not None:
                    self.publisher.stop()
                    self.publisher = None
            elif want and self.replica is None:
                self.replica = _bridge.Replica(self.subName or self.fname, self._endpoint("sub"),
                                               local_name=self.fname, take_over_local=True, **timing)
            elif not want and self.replica is not None:
                self.replica.stop()
                self.replica = None

    def _mirror_start(self, which: str) -> None:
        other = self.subThread if which == "pub" else self.pubThread
        if other.is_alive():
            raise _from_code(-1, (
                f"stream '{self.fname}': pubThread and subThread both started on one shm: a stream "
                "mirrored both ways would send each frame back and forth for ever; writes made on a "
                "subscriber's replica already go back to the publisher"))

    def _mirror_end(self, which: str) -> None:
        with self._mirror_lock:
            (self.pubThread if which == "pub" else self.subThread)._ended.set()
            self._mirror_sync(which)

    @property
    def stream(self) -> _Stream:
        """The underlying :class:`shmlink.Stream` (raises ClosedError after close()). On a
        subscriber whose stream did not exist here, the first use waits for the replica's first
        frame, at most ``subTimeout`` seconds (``WaitTimeout`` naming the publisher's endpoint)."""
        if self._closed:
            from .errors import ClosedError
            raise ClosedError(f"stream '{self.fname}' is closed")
        rep = self.replica
        if self._stream is None:
            if rep is None:
                raise _from_code(-2, (
                    f"stream '{self.fname}' does not exist here: start the subscriber (subEnable = True; "
                    f"subThread.start()) to make it a replica of the one published at {self._endpoint('sub')}"))
            if not rep.wait_first_frame(self.subTimeout):
                why = rep.last_error
                raise _from_code(-8, (
                    f"stream '{self.fname}': no frame from a publisher at {rep.endpoint} within "
                    f"{self.subTimeout} s (is one running there, on that port?)" + (f"; {why}" if why else "")))
            self._stream = _Stream.open(rep.path)
        elif rep is not None and self._stream.replaced():
            self._stream.close()  # the replica was re-created (new shape or dtype at the source)
            self._stream = _Stream.open(rep.path)
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
        """Ends the mirroring threads and unmaps the stream (the file stays, as in DAO)."""
        if getattr(self, "pubThread", None) is not None:
            self._mirror_end("pub")
            self._mirror_end("sub")
        self._closed = True
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


class _MirrorThread:
    """DAO's ``pubThread`` / ``subThread``: ``start()``, ``join()``, ``is_alive()`` as a
    threading.Thread has them. No Python thread runs: start() starts the bridge's Publisher or
    Replica (when enabled), whose C++ threads do the work; it ends at the matching event's set(),
    at close(), when the shm is deleted, or at the interpreter's exit."""

    def __init__(self, owner: "_weakref.ref[shm]", which: str) -> None:
        self._owner = owner
        self._which = which
        self._started = False
        self._ended = _threading.Event()
        self.name = f"shmlink-dao-{which}"
        self.daemon = True

    def start(self) -> None:
        """Starts mirroring (RuntimeError the second time, as threading.Thread)."""
        if self._started:
            raise RuntimeError("threads can only be started once")
        s = self._owner()
        if s is None or self._ended.is_set():
            raise RuntimeError(f"{self.name}: its shm was closed")
        with s._mirror_lock:
            s._mirror_start(self._which)
            self._started = True
            try:
                s._mirror_sync(self._which)
            except BaseException:
                self._ended.set()
                raise

    def is_alive(self) -> bool:
        """True from start() until its end."""
        return self._started and not self._ended.is_set()

    def join(self, timeout: _Optional[float] = None) -> None:
        """Waits until it ends (the event's set(), close()), at most ``timeout`` seconds."""
        if not self._started:
            raise RuntimeError("cannot join thread before it is started")
        self._ended.wait(timeout)


class _EndEvent(_threading.Event):
    """DAO's ``pubEvent`` / ``subEvent``: set() ends the matching mirroring thread."""

    def __init__(self, owner: "_weakref.ref[shm]", which: str) -> None:
        super().__init__()
        self._owner = owner
        self._which = which

    def set(self) -> None:
        super().set()
        s = self._owner()
        if s is not None:
            s._mirror_end(self._which)


__all__ = ["shm", "setLogLevel", "getLogLevel", "DAO_SUCCESS", "DAO_ERROR", "DAO_TIMEOUT",
           "DAO_OVERWRITE", "DAO_NOTREADY", "OverwrittenError"]
