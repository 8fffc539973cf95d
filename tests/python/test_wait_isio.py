# SPDX-License-Identifier: MIT
"""Stream.wait() against a writer that only posts the in-file semaphores, as ImageStreamIO's
UpdateIm (milk) does: the handle claims a semaphore slot of its own to be woken by those posts,
and close() gives it back.

The re-check slice of a wait nothing wakes (10 ms) and wait()'s own slice between looks at
signals (50 ms) are raised to 30 s here through the private testing knobs of shmlink._shmlink
(docs/testing.md), so that only the post can end the wait within its bound: a lost wake-up makes
wait() time out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import shmlink


@pytest.fixture
def only_real_wakeups():
    """Raises the re-check slices of waits nothing wakes to 30 s for one test."""
    poll = shmlink._shmlink._set_foreign_writer_poll_ns(30_000_000_000)
    slice_ns = shmlink._shmlink._set_wait_slice_ns(30_000_000_000)
    yield
    shmlink._shmlink._set_wait_slice_ns(slice_ns)
    shmlink._shmlink._set_foreign_writer_poll_ns(poll)

# A writer in another process that follows ImageStreamIO's UpdateIm order on the file's bytes:
# write = 1, copy, cnt0 += 1, write = 0, then glibc's sem_post on every slot whose sem_getvalue is
# below 10. No futex wake. It first waits (bounded) until a reader is registered as a waiter on the
# last slot (the high half of glibc's 64-bit data word), so that the post is what must wake it, and
# after the post it waits (bounded, 5 s) until the reader has left that slot's waiters: a reader that
# the post did not wake stays registered until its wait's bound (15 s), and the writer exits 4.
ISIO_WRITER = textwrap.dedent(
    """
    import ctypes, mmap, struct, sys, time
    path, data_off, nbytes, sem_off, nsem = sys.argv[1], *map(int, sys.argv[2:6])
    libc = ctypes.CDLL(None)
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
    base = ctypes.addressof((ctypes.c_char * len(mm)).from_buffer(mm))
    last = sem_off + 32 * (nsem - 1)
    end = time.monotonic() + 10
    while struct.unpack_from("<I", mm, last + 4)[0] == 0:
        if time.monotonic() > end:
            sys.exit(3)
        time.sleep(0.001)
    cnt0 = struct.unpack_from("<Q", mm, 264)[0] + 1
    mm[288] = 1
    mm[data_off:data_off + nbytes] = bytes([cnt0 & 0xFF]) * nbytes
    struct.pack_into("<Q", mm, 264, cnt0)
    mm[288] = 0
    for i in range(nsem):
        sem = ctypes.c_void_p(base + sem_off + 32 * i)
        value = ctypes.c_int(0)
        if libc.sem_getvalue(sem, ctypes.byref(value)) == 0 and value.value < 10:
            libc.sem_post(sem)
    end = time.monotonic() + 5
    while struct.unpack_from("<I", mm, last + 4)[0] != 0:
        if time.monotonic() > end:
            sys.exit(4)
        time.sleep(0.001)
    """
)


def test_wait_claims_a_slot_for_a_semaphore_only_writer_and_close_gives_it_back(streamdir, only_real_wakeups):
    s = shmlink.Stream.create("isio", shape=(16,), dtype="uint8")
    info = s.info()
    nsem = info["semaphores"]
    data_off = 384
    sem_off = data_off + (info["data_bytes"] + 7) // 8 * 8 + 128 * info["keyword_slots"]
    r = shmlink.Stream.open("isio")
    writer = subprocess.Popen(
        [sys.executable, "-c", ISIO_WRITER, s.path, str(data_off), str(info["data_bytes"]), str(sem_off), str(nsem)]
    )
    try:
        assert r.wait(timeout=15.0)  # nothing written yet: waits on a slot too, woken by the post
    finally:
        # 3: the reader never registered on the last slot; 4: the post did not wake it
        assert writer.wait(timeout=30) == 0, "the writer exited %d" % writer.returncode
    assert r.cnt0 == 1
    assert r.read().tolist() == [1] * 16
    pids = s.info()["sem_read_pids"]
    assert pids[nsem - 1] == os.getpid()  # the wait's slot: the last one
    assert pids[: nsem - 1] == [-1] * (nsem - 1)
    r.close()
    assert s.info()["sem_read_pids"] == [-1] * nsem
