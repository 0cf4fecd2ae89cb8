"""Kubernetes Events with the reasons MetalLB users grep for.

`build_event()` is pure (the body of a core/v1 Event). `EventRecorder` posts them from a
worker thread, so callers (the controller loop, the speaker's asyncio loop) never block on
the API server; identical events are not repeated within `dedupe_window` seconds, and a
full queue or a failed post is logged and counted, never raised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from l2agent.kube.convert import api_failure, call, event_model, format_time
from l2agent.model.events import EventType, Reason

__all__ = [
    "EventRecorder",
    "EventType",
    "ObjectRef",
    "Reason",
    "build_event",
]

log = logging.getLogger(__name__)

CONTROLLER_COMPONENT = "metallb-controller"
SPEAKER_COMPONENT = "metallb-speaker"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = "v1"
    uid: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            kind=str(obj.get("kind") or ""),
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            api_version=str(obj.get("apiVersion") or "v1"),
            uid=str(meta["uid"]) if meta.get("uid") else None,
        )

    @classmethod
    def service(cls, key: str, uid: str | None = None) -> ObjectRef:
        namespace, _, name = key.partition("/")
        return cls("Service", name, namespace, "v1", uid)


def build_event(
    ref: ObjectRef,
    type_: EventType,
    reason: Reason,
    message: str,
    *,
    component: str,
    host: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A core/v1 Event body. Cluster-scoped objects get their Events in `default`."""
    stamp = format_time(now)
    involved: dict[str, Any] = {"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}
    if ref.namespace:
        involved["namespace"] = ref.namespace
    if ref.uid:
        involved["uid"] = ref.uid
    source: dict[str, Any] = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{ref.name}.",
            "namespace": ref.namespace or "default",
        },
        "involvedObject": involved,
        "reason": reason.value,
        "message": message,
        "type": type_.value,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }


class EventRecorder:
    """Posts Events in the background. `emit()` is thread-safe and never blocks."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        component: str,
        host: str | None = None,
        dedupe_window: float = 60.0,
        max_queue: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.component = component
        self.host = host
        self.dedupe_window = dedupe_window
        self._clock = clock
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self._recent: dict[tuple[ObjectRef, Reason, str], float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> EventRecorder:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (bounded by timeout), then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was posted (or failed). For tests and exit."""
        deadline = self._clock() + timeout
        while self._queue.unfinished_tasks:
            if self._clock() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def emit(self, ref: ObjectRef, type_: EventType, reason: Reason, message: str) -> None:
        now = self._clock()
        key = (ref, reason, message)
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < self.dedupe_window:
                return
            self._recent[key] = now
            if len(self._recent) > 10_000:
                cutoff = now - self.dedupe_window
                self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
        body = build_event(
            ref,
            type_,
            reason,
            message,
            component=self.component,
            host=self.host,
            now=datetime.now(UTC),
        )
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1
            log.warning("event queue full; dropped %s %s", reason.value, message)

    def normal(self, ref: ObjectRef, reason: Reason, message: str) -> None:
        self.emit(ref, EventType.NORMAL, reason, message)

    def warning(self, ref: ObjectRef, reason: Reason, message: str) -> None:
        self.emit(ref, EventType.WARNING, reason, message)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._post(body)
            finally:
                self._queue.task_done()

    def _post(self, body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        try:
            call(self.core.create_namespaced_event, ns, event_model(body), _request_timeout=10.0)
            self.sent += 1
        except Exception as exc:
            self.failed += 1
            log.warning(
                "could not post event %s for %s/%s: %s",
                body["reason"],
                ns,
                body["involvedObject"]["name"],
                api_failure(exc).message,
            )
