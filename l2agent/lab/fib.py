"""A router's kernel FIB as the judge of BGP mode: which nodes a service IP's route goes to.

``nexthops`` reads one route (``ip -j route show PREFIX``, exact match). ``FibWatch`` follows
``ip monitor route`` in the router's namespace and stamps each change to a prefix with the
shared monotonic clock the moment it arrives, so a benchmark learns when the kernel changed
the route, not when a poll happened to look.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from l2agent.lab.netns import Lab


def parse_routes(text: str) -> frozenset[str]:
    """The gateways of ``ip -j route show PREFIX`` output (one route, one or more nexthops)."""
    gateways: set[str] = set()
    for route in json.loads(text or "[]"):
        if route.get("type", "unicast") != "unicast":
            continue
        if "gateway" in route:
            gateways.add(str(ipaddress.ip_address(route["gateway"])))
        for hop in route.get("nexthops", ()):
            if "gateway" in hop:
                gateways.add(str(ipaddress.ip_address(hop["gateway"])))
    return frozenset(gateways)


def nexthops(lab: Lab, role: str, prefix: str) -> frozenset[str]:
    """The gateways ``role``'s kernel uses for exactly ``prefix`` (empty: no such route)."""
    net = ipaddress.ip_network(prefix)
    family = "-4" if net.version == 4 else "-6"
    return parse_routes(lab.ip(role, family, "-j", "route", "show", "exact", str(net)))


class FibWatch:
    """Follow route changes in ``role``'s namespace; ``wait_for`` returns when the kernel first
    showed a state of ``prefix`` that satisfies a predicate (stamped at the change's arrival)."""

    def __init__(self, lab: Lab, role: str) -> None:
        self.lab = lab
        self.role = role
        self._cond = threading.Condition()
        self._events: list[tuple[float, str]] = []
        self._proc: subprocess.Popen[Any] = lab.spawn(
            role,
            ["ip", "monitor", "route"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._thread = threading.Thread(target=self._read, name=f"fibwatch-{role}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.monotonic()
            with self._cond:
                self._events.append((now, line))
                if len(self._events) > 100_000:  # bounded: a runaway route flap
                    del self._events[:50_000]
                self._cond.notify_all()

    def mark(self) -> int:
        """A position in the event stream (events after it are what ``wait_for`` looks at)."""
        with self._cond:
            return len(self._events)

    def wait_for(
        self,
        prefix: str,
        predicate: Callable[[frozenset[str]], bool],
        since: int,
        timeout: float,
    ) -> float | None:
        """The arrival time of the first change to ``prefix`` after ``since`` after which the
        kernel's nexthops satisfy ``predicate``; None if that did not happen in ``timeout``."""
        net = ipaddress.ip_network(prefix)
        key = str(net.network_address)
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            with self._cond:
                while len(self._events) <= seen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                batch = self._events[seen:]
                seen = len(self._events)
            stamps = [t for t, line in batch if key in line.split()]
            if stamps and predicate(nexthops(self.lab, self.role, prefix)):
                # Several changes in one batch: the last one produced the state checked.
                return stamps[-1]

    def close(self) -> None:
        self.lab.stop(self._proc)
        self._thread.join(timeout=5)
