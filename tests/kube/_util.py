"""Small helpers for the kube tests: run a watcher in a thread, wait for a condition."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from l2agent.kube.watch import Delta, Watcher

WAIT = 10.0  # generous bound for a condition that normally holds within milliseconds


def wait_until(pred: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Pump:
    """Runs `watcher.deltas()` in a thread; `next()` returns the next delta."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.q: queue.Queue[Delta] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Pump:
        """Starts on first use, so a test can set the server up before the first list."""
        if not self.thread.is_alive() and self.thread.ident is None:
            self.thread.start()
        return self

    def _run(self) -> None:
        for d in self.watcher.deltas():
            self.q.put(d)

    def next(self, timeout: float = WAIT) -> Delta:
        self.start()
        return self.q.get(timeout=timeout)

    def empty_for(self, seconds: float) -> bool:
        try:
            d = self.q.get(timeout=seconds)
        except queue.Empty:
            return True
        self.q.put(d)
        return False

    def stop(self) -> None:
        self.watcher.stop()
        if self.thread.ident is None:
            return
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
