# SPDX-License-Identifier: MIT
"""shmlink's exceptions.

Every error raised by shmlink is a :class:`shmlink.Error` with a ``code`` attribute (the C/C++
``Errc`` value, e.g. -2 for not found) and a message naming the stream, queue or interface and
what was wrong. Each class also derives from the built-in exception Python code already catches
for that case:

=======================  ===========================  ======================================
class                    also a                       when
=======================  ===========================  ======================================
``NotFoundError``        ``FileNotFoundError``        the stream does not exist
``ExistsError``          ``FileExistsError``          exclusive creation of an existing stream
``AccessError``          ``PermissionError``          the OS refused access
``ArgumentError``        ``ValueError``               bad shape, dtype, size, name, index
``LayoutError``          ``ValueError``               the file is not a valid 2.00 stream or queue, or a
                                                      queue or peer differs from what was expected
``ClosedError``          ``ValueError``               the handle was closed (like a closed file)
``ShutDownError``        ``ClosedError``              the queue was shut down (pushes refused; pops once
                                                      drained), an interface's peer closed cleanly
``WaitTimeout``          ``TimeoutError``             a wait reached its deadline
``Interrupted``          ``InterruptedError``         a wait was interrupted by a signal
``NoSpaceError``         ``OSError``                  the shm file system is full
``SystemFailure``        ``OSError``                  another OS error
``PeerExitedError``      ``ConnectionError``          an interface's peer process died or exited
``WriterActiveError``    ``shmlink.Error``            the write flag stayed set (writer died mid-write)
``TornReadError``        ``shmlink.Error``            a validated read kept colliding with the writer
``ReplacedError``        ``shmlink.Error``            the stream was re-created: open it again
``OverwrittenError``     ``shmlink.Error``            a rolling-buffer frame is no longer there
``NotReadyError``        ``shmlink.Error``            a frame asked for is not written yet
``BusyError``            ``shmlink.Error``            no free slot
=======================  ===========================  ======================================
"""

__all__ = [
    "Error", "NotFoundError", "ExistsError", "AccessError", "ArgumentError", "LayoutError",
    "ClosedError", "ShutDownError", "WaitTimeout", "Interrupted", "NoSpaceError", "SystemFailure", "PeerExitedError",
    "WriterActiveError", "TornReadError", "ReplacedError", "OverwrittenError", "NotReadyError",
    "BusyError", "codes", "from_code",
]


class Error(Exception):
    """Base of shmlink's exceptions; ``code`` is the C/C++ error code."""

    code: int = 0


class NotFoundError(Error, FileNotFoundError):
    """The named stream does not exist."""


class ExistsError(Error, FileExistsError):
    """The stream exists and exclusive creation was asked for."""


class AccessError(Error, PermissionError):
    """The operating system refused access."""


class ArgumentError(Error, ValueError):
    """A caller-supplied argument is malformed (shape, dtype, size, name, index)."""


class LayoutError(Error, ValueError):
    """A file has the wrong layout, version or size."""


class ClosedError(Error, ValueError):
    """The handle (stream, queue, interface) is closed, or not open yet."""


class ShutDownError(ClosedError):
    """The queue was shut down (no more samples will come), or an interface's peer closed cleanly
    and everything it sent was read. A :class:`ClosedError`, so code that caught ClosedError for a
    shut queue keeps working; catch ShutDownError to tell it from a closed handle."""


class WaitTimeout(Error, TimeoutError):
    """A wait reached its deadline."""


class Interrupted(Error, InterruptedError):
    """A wait was interrupted by a signal."""


class NoSpaceError(Error, OSError):
    """The backing file system is full."""


class SystemFailure(Error, OSError):
    """Another operating-system error."""


class PeerExitedError(Error, ConnectionError):
    """The peer process of an interface died or exited (after everything it sent was read).

    The message says what became of it ("peer 'sim' (pid 4242) was killed by signal 9 (Killed)");
    ``peer``, when set, is the :class:`shmlink.PeerStatus` at the time.
    """

    peer = None


class WriterActiveError(Error):
    """The write flag stayed set: the writer may have died in the middle of a write."""


class TornReadError(Error):
    """A validated read kept colliding with the writer and gave up."""


class ReplacedError(Error):
    """The channel (its file or region entry) was re-created or removed: open it again by name."""


class OverwrittenError(Error):
    """A rolling-buffer frame was overwritten before it could be read."""


class NotReadyError(Error):
    """The frame asked for has not been written yet."""


class BusyError(Error):
    """Every slot of a bounded resource is taken."""


# Every code of the C API (include/shmlink.h's SHMLINK_E_*), and only those: a test pins this
# table to the header both ways (tests/python/test_errors.py).
_BY_CODE: dict[int, type[Error]] = {
    -1: ArgumentError, -2: NotFoundError, -3: ExistsError, -4: AccessError, -5: LayoutError,
    -6: NoSpaceError, -7: SystemFailure, -8: WaitTimeout, -9: Interrupted, -10: NotReadyError,
    -11: ArgumentError, -12: ClosedError, -13: ArgumentError, -14: ArgumentError, -15: ArgumentError,
    -16: BusyError, -17: PeerExitedError, -18: ShutDownError, -100: TornReadError, -101: WriterActiveError, -102: ReplacedError,
    -103: OverwrittenError, -104: Error, -150: Error, -151: Error, -152: Error,
}


def codes() -> dict[int, type[Error]]:
    """Every C/C++ error code and the class :func:`from_code` raises for it (a copy)."""
    return dict(_BY_CODE)


def from_code(code: int, message: str) -> Error:
    """The exception instance for C/C++ error ``code`` with ``message`` (used by the core)."""
    exc = _BY_CODE.get(code, Error)(message)
    exc.code = code
    return exc
