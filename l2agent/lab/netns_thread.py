"""Run Python calls inside a lab namespace from the test process: one thread, moved there.

``setns(CLONE_NEWNET)`` switches only the calling thread, so a dedicated worker thread can
open sockets in a node or client namespace (an HTTP query to a speaker, to a Prometheus
running in the client) while the rest of the process stays in the host namespace.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsThread:
    """A one-thread executor living in network namespace ``netns`` (an ``ip netns`` name)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._pool = ThreadPoolExecutor(
            1, thread_name_prefix=f"netns-{netns}", initializer=_enter, initargs=(netns,)
        )

    def call(self, fn: Callable[..., _T], *args: object, timeout: float | None = 30.0) -> _T:
        """Run ``fn(*args)`` in the namespace and return its result (or raise its error)."""
        return self._pool.submit(fn, *args).result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
