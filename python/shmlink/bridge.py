# SPDX-License-Identifier: MIT
"""Streams across machines over ZeroMQ: the bridge's latest-value replication.

>>> from shmlink import bridge
>>> pub = bridge.Publisher("wfs", "tcp://*:5555")              # doctest: +SKIP  (owner's host)
>>> rep = bridge.Replica("wfs", "tcp://rtc1:5555")              # doctest: +SKIP  (another host)
>>> rep.wait_first_frame(5.0)                                   # doctest: +SKIP
True

``Publisher(stream, endpoint, ...)`` serves a local stream on a ZeroMQ socket it binds;
``Replica(stream, endpoint, local_name=None, origin=None, ...)`` connects to one and keeps a local
stream file of the same shape and dtype up to date: an ordinary stream (``shmlink.Stream.open``,
milk tools and DAO's ``shm`` read it), with keywords ``BR_ORIGIN``, ``BR_LINK``, ``BR_AGE_US``,
``BR_SKIPPED``, ``BR_SRC_CNT0``, ``BR_SRC_WTIME`` saying where it comes from and how fresh it is.
Latest value: a slow link or reader skips frames (counted) and never queues them; each source
frame is published at most once on a replica, and never torn. A frame written on a replica goes
back to the owner (unless the publisher is ``read_only``). Messages are a fixed little-endian
header plus the raw frame (never pickle). Both objects run C++ threads that never hold the GIL,
from construction until ``stop()``, the end of a ``with`` block, destruction, or the
interpreter's exit. ``Replica(..., every_frame=True, window=64)`` asks for every source frame in
order instead (recorders: the replica is a rolling buffer; frames lost at the owner are counted in
``BR_LOST``). ``want(name, every_frame=False, window=64, keep=False, timeout=None)`` asks the bridge
service of this host for a replica (``"HOST:NAME"`` or ``"NAME"``) and returns its path. See
docs/python.md "Bridge" and docs/design/bridge.md.
"""

from ._shmlink import Publisher, Replica
from ._shmlink import bridge_want as want

__all__ = ["Publisher", "Replica", "want"]

Publisher.__module__ = __name__
Replica.__module__ = __name__
