"""A set of watched resources kept as plain dicts, with one debounced change callback.

Shared by the speaker's source and the controller: one `Watcher` thread per resource feeds
deltas into an in-memory store; a publisher thread calls `on_change()` once the burst of
deltas has settled (`debounce` seconds) and never before every resource has been listed
once, so nobody plans from a half-loaded cluster. A relist replaces a resource's objects;
a broken watch changes nothing, so what was known stays known.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes import client

from l2agent.kube.events import ObjectRef
from l2agent.kube.heartbeat import Heartbeats
from l2agent.kube.watch import RESOURCES, Delta, DeltaKind, WatchConfig, Watcher

__all__ = ["WatchedObjects"]

log = logging.getLogger(__name__)

Key = tuple[str, str]


class WatchedObjects:
    """Watches `resources` (names from `watch.RESOURCES`); namespaced metallb.io kinds (and
    Secrets) are read from `namespace`, other core and discovery kinds across all
    namespaces."""

    def __init__(
        self,
        api: client.ApiClient,
        resources: Iterable[str],
        *,
        namespace: str,
        on_change: Callable[[], None],
        watch_config: WatchConfig | None = None,
        debounce: float = 0.05,
        rng: random.Random | None = None,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.heartbeats = heartbeats if heartbeats is not None else Heartbeats()
        """Each watch thread beats here (`watch/<resource>`); liveness reads `stuck()`."""
        self._watchers: dict[str, Watcher] = {}
        for name in resources:
            res = RESOURCES[name]
            ns = namespace if res.group == "metallb.io" or res.own_namespace else None
            self._watchers[name] = Watcher(
                api,
                res,
                namespace=ns,
                config=watch_config,
                rng=random.Random(rng.random()),
                heartbeat=self._beater(f"watch/{name}"),
            )
        self._store: dict[str, dict[Key, Mapping[str, Any]]] = {n: {} for n in self._watchers}
        self._versions: dict[str, str | None] = {n: None for n in self._watchers}
        self._on_change = on_change
        self._debounce = debounce
        self._lock = threading.Condition()
        self._dirty = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.generation = 0
        """Bumped on every applied delta; lets callers tell whether anything changed."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WatchedObjects:
        now = time.monotonic()
        for name, w in self._watchers.items():
            self.heartbeats.register(f"watch/{name}", w.config.stall_limit, now)
            t = threading.Thread(target=self._pump, args=(w,), name=f"watch-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._publish_loop, name="watch-publish", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for name, w in self._watchers.items():
            self.heartbeats.unregister(f"watch/{name}")
            w.stop()
        with self._lock:
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ views

    @property
    def synced(self) -> bool:
        """Every resource listed at least once."""
        return all(w.synced for w in self._watchers.values())

    @property
    def connected(self) -> bool:
        """Every watch currently connected (False during an API server outage)."""
        return all(w.connected for w in self._watchers.values())

    def absent(self) -> frozenset[str]:
        """Resources the API server does not serve (404: their CRD is not installed); each
        counts as empty meanwhile, so the rest keeps working."""
        return frozenset(n for n, w in self._watchers.items() if w.absent)

    @property
    def names(self) -> tuple[str, ...]:
        """The watched resources, in the order given."""
        return tuple(self._watchers)

    def _beater(self, name: str) -> Callable[[], None]:
        return lambda: self.heartbeats.beat(name, time.monotonic())

    def watcher(self, name: str) -> Watcher:
        return self._watchers[name]

    def objects(self, *names: str) -> list[Mapping[str, Any]]:
        """A copy of the current objects of the named resources (all when none named)."""
        with self._lock:
            chosen = names or tuple(self._store)
            return [obj for n in chosen for _, obj in sorted(self._store[n].items())]

    def find(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The cached object of `kind` (e.g. "Service") named `namespace/name`, if watched
        and known: Events need its uid, or `kubectl describe` never shows them."""
        for resource in self._watchers:
            if RESOURCES[resource].kind == kind:
                ns = namespace if RESOURCES[resource].namespaced else ""
                with self._lock:
                    return self._store[resource].get((ns, name))
        return None

    def ref(self, kind: str, namespace: str, name: str, api_version: str = "v1") -> ObjectRef:
        """What an Event about that object names: with its uid when the cache knows it."""
        obj = self.find(kind, namespace, name)
        if obj is not None:
            return ObjectRef.of(obj)
        return ObjectRef(kind, name, namespace, api_version)

    def snapshot_of(self, name: str) -> tuple[list[Mapping[str, Any]], str | None]:
        """One resource's objects and the resourceVersion the store has applied up to."""
        with self._lock:
            objs = [obj for _, obj in sorted(self._store[name].items())]
            return objs, self._versions[name]

    # ------------------------------------------------------------------ internals

    def _pump(self, w: Watcher) -> None:
        try:
            for delta in w.deltas():
                self._apply(delta)
        except Exception:  # a bug here must not kill the process silently
            log.exception("%s: watcher crashed", w.resource.name)

    def _apply(self, delta: Delta) -> None:
        with self._lock:
            table = self._store[delta.resource]
            if delta.kind is DeltaKind.REPLACED:
                table.clear()
                for obj in delta.objects:
                    table[_key(obj)] = obj
            elif delta.obj is not None:
                if delta.kind is DeltaKind.DELETED:
                    table.pop(_key(delta.obj), None)
                else:
                    table[_key(delta.obj)] = delta.obj
            # The watcher yields before reading on, so its version is this delta's.
            self._versions[delta.resource] = self._watchers[delta.resource].resource_version
            self.generation += 1
            self._dirty = True
            self._lock.notify_all()

    def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not (self._dirty and self.synced) and not self._stopping.is_set():
                    self._lock.wait(0.5)
                if self._stopping.is_set():
                    return
            # Let a burst settle: wait until no delta arrived for `debounce` seconds.
            while True:
                seen = self.generation
                self._stopping.wait(self._debounce)
                if self.generation == seen or self._stopping.is_set():
                    break
            with self._lock:
                self._dirty = False
            try:
                self._on_change()
            except Exception:
                log.exception("change callback failed")


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
