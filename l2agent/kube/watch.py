"""List-then-watch of one Kubernetes resource, as typed deltas.

The informer contract of client-go, kept small: list (a `Replaced` delta carrying every
object), then watch from the list's resourceVersion with bookmarks; a broken watch resumes
from the last resourceVersion seen (events or bookmarks) after a backoff; a 410 Gone (the
version was compacted away) relists. While the API server is unreachable nothing is
emitted, so consumers keep what they last knew: a broken watch never withdraws anything.

A kind the API server does not serve (its list answers 404: an upgrade that did not apply
a new CRD) counts as listed and empty, with a warning, and is listed again every
`absent_retry` seconds: one missing optional kind (the BGP kinds, ServiceBGPStatus) must
not keep the rest of the agent (layer 2 mode) from ever starting.

Objects are plain dicts in the API's JSON shape (camelCase), the same shape the static
YAML loader hands to `build_state`; no client model objects leave this module.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from l2agent.kube.convert import ApiFailure, api_failure, response_json

__all__ = [
    "RESOURCES",
    "Backoff",
    "Delta",
    "DeltaKind",
    "Resource",
    "WatchConfig",
    "Watcher",
]

log = logging.getLogger(__name__)


class DeltaKind(enum.Enum):
    """What happened to the watched set."""

    REPLACED = "replaced"  # a (re)list: `objects` is the whole set now
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Delta:
    kind: DeltaKind
    resource: str
    obj: Mapping[str, Any] | None = None
    objects: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    """One watchable collection. `namespaced` resources are read from `namespace` when the
    watcher is given one, else across all namespaces."""

    name: str
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    own_namespace: bool = False
    """Read only from our own namespace (Secrets: never cluster-wide)."""
    field_selector: str | None = None
    """A server-side filter (Secrets: only type kubernetes.io/basic-auth, the one type a
    BGPPeer's passwordSecret may name, so no other Secret ever reaches the speaker)."""


RESOURCES: Mapping[str, Resource] = {
    r.name: r
    for r in (
        Resource("services", "", "v1", "services", "Service", True),
        Resource("nodes", "", "v1", "nodes", "Node", False),
        Resource("namespaces", "", "v1", "namespaces", "Namespace", False),
        Resource(
            "endpointslices", "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True
        ),
        Resource(
            "ipaddresspools", "metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool", True
        ),
        Resource(
            "l2advertisements", "metallb.io", "v1beta1", "l2advertisements", "L2Advertisement", True
        ),
        Resource(
            "servicel2statuses",
            "metallb.io",
            "v1beta1",
            "servicel2statuses",
            "ServiceL2Status",
            True,
        ),
        Resource("bgppeers", "metallb.io", "v1beta2", "bgppeers", "BGPPeer", True),
        Resource(
            "bgpadvertisements",
            "metallb.io",
            "v1beta1",
            "bgpadvertisements",
            "BGPAdvertisement",
            True,
        ),
        Resource("bfdprofiles", "metallb.io", "v1beta1", "bfdprofiles", "BFDProfile", True),
        Resource("communities", "metallb.io", "v1beta1", "communities", "Community", True),
        Resource(
            "servicebgpstatuses",
            "metallb.io",
            "v1beta1",
            "servicebgpstatuses",
            "ServiceBGPStatus",
            True,
        ),
        Resource(
            "secrets",
            "",
            "v1",
            "secrets",
            "Secret",
            True,
            own_namespace=True,
            field_selector="type=kubernetes.io/basic-auth",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Timings of one watcher.

    A watch connection that died silently (no FIN, no RST: a dropped NAT or conntrack
    entry, a vanished peer, a hung API server) must be noticed within about a minute.
    Two things see to it: TCP keepalive on every client socket (`convert.new_api_client`:
    a dead peer is found in about 30 s), and a watch the server must end within
    `watch_timeout`..`2 * watch_timeout` seconds, read with a client-side timeout
    `read_slack` seconds longer (a server that keeps the connection but sends nothing is
    found within `max_silence`). Resuming from the last resourceVersion costs the API
    server's watch cache almost nothing."""

    watch_timeout: int = 30
    """Shortest time, seconds, the server keeps one watch open (timeoutSeconds); then we
    resume. Each watch asks for a random value in [watch_timeout, 2 * watch_timeout), as
    client-go does, so a fleet of speakers does not reconnect in step."""
    read_slack: float = 10.0
    """Extra seconds beyond the watch's timeoutSeconds before a silent connection counts
    as dead."""
    connect_timeout: float = 5.0
    list_timeout: float = 60.0
    """Seconds a list may stay silent before it counts as failed."""
    backoff_initial: float = 0.5
    """First retry delay after a failure, seconds; doubles up to backoff_max."""
    backoff_max: float = 30.0
    backoff_jitter: float = 0.2
    """Fraction of random spread added to each delay, so speakers do not retry in step."""
    absent_retry: float = 60.0
    """Seconds between lists of a kind the API server does not serve (404: its CRD is not
    installed); meanwhile it counts as empty. Spread by `backoff_jitter` like the backoff."""

    @property
    def max_silence(self) -> float:
        """The longest a dead watch connection can go unnoticed, seconds."""
        return 2 * self.watch_timeout + self.read_slack

    @property
    def stall_limit(self) -> float:
        """The longest a healthy watcher's loop can go without progress (one call at its
        timeout plus the longest backoff), with a margin: past it the loop is stuck."""
        longest_call = self.connect_timeout + max(self.max_silence, self.list_timeout)
        longest_wait = max(self.backoff_max, self.absent_retry) * (1 + self.backoff_jitter)
        return longest_call + longest_wait + 30.0


@dataclass
class Backoff:
    """Exponential backoff with jitter; pure (the caller sleeps)."""

    initial: float
    maximum: float
    jitter: float
    rng: random.Random = field(default_factory=random.Random)
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def delay(self) -> float:
        self._next = self.initial if self._next == 0.0 else min(self._next * 2, self.maximum)
        return self._next * (1.0 + self.jitter * self.rng.random())


class _Gone(Exception):
    """The resourceVersion we resume from was compacted away: relist."""


class Watcher:
    """Lists and watches one resource; `deltas()` yields until `stop()` is called.

    Thread model: `deltas()` blocks (it is the client's synchronous I/O) and is meant to run
    in its own thread; `stop()` may be called from any thread.
    """

    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        config: WatchConfig | None = None,
        rng: random.Random | None = None,
        on_error: Callable[[ApiFailure], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.label_selector = label_selector
        self.config = config or WatchConfig()
        self._backoff = Backoff(
            self.config.backoff_initial,
            self.config.backoff_max,
            self.config.backoff_jitter,
            rng or random.Random(),
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._on_error = on_error
        self._heartbeat = heartbeat or (lambda: None)
        self.resource_version: str | None = None
        self.synced = False
        """True after the first successful list; stays True through outages."""
        self.connected = False
        """True while a list or watch call last succeeded; False during an outage."""
        self.relists = 0
        self.failures = 0
        self.absent = False
        """True while the API server answers 404 for this kind (its CRD is not installed):
        it counts as listed and empty until a later list finds it."""
        self.absent_lists = 0
        """Lists answered 404."""

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            resp = self._response
        if resp is not None:
            try:
                resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
            except Exception:  # closing a half-dead connection may raise anything
                log.debug("closing watch response failed", exc_info=True)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ loop

    def deltas(self) -> Iterator[Delta]:
        """List, then watch, forever: yields Replaced, then Added/Modified/Deleted."""
        need_list = True
        while not self._stop.is_set():
            self._heartbeat()
            try:
                if need_list:
                    yield self._list()
                    need_list = False
                    self._backoff.reset()
                yield from self._watch()
            except _Gone:
                log.info(
                    "%s: resourceVersion %s expired; relisting",
                    self.resource.name,
                    self.resource_version,
                )
                need_list = True
                self.relists += 1
            except Exception as exc:  # any transport or API failure: back off, resume
                if self._stop.is_set():
                    break
                failure = api_failure(exc)
                if failure.status == 410:
                    need_list = True
                    self.relists += 1
                    continue
                if failure.not_found and need_list:
                    absent = self._absent(failure)
                    if absent is not None:
                        yield absent
                    self._heartbeat()
                    self._stop.wait(self._jittered(self.config.absent_retry))
                    continue
                if failure.not_found:
                    need_list = True  # the kind went away while watched: list to find out
                self.connected = False
                self.failures += 1
                if self._on_error is not None:
                    self._on_error(failure)
                delay = self._backoff.delay()
                log.warning(
                    "%s: %s; retrying in %.2fs (keeping last known state)",
                    self.resource.name,
                    failure.message,
                    delay,
                )
                self._stop.wait(delay)

    def _jittered(self, seconds: float) -> float:
        return seconds * (1.0 + self.config.backoff_jitter * self._backoff.rng.random())

    def _absent(self, failure: ApiFailure) -> Delta | None:
        """The list answered 404: the kind is not served. The first time, an empty
        `Replaced` (whatever was known of it is gone with its CRD) and a warning."""
        self.absent_lists += 1
        self.synced = True
        self.connected = True
        self.resource_version = None
        self._backoff.reset()
        if self.absent:
            return None
        self.absent = True
        log.warning(
            "%s: the API server does not serve %s/%s (%s; is its CRD installed?): counted "
            "as empty, listed again every %g s",
            self.resource.name,
            self.resource.group or "core",
            self.resource.version,
            failure.message,
            self.config.absent_retry,
        )
        return Delta(DeltaKind.REPLACED, self.resource.name, objects=())

    def _call(self, **kwargs: Any) -> Any:
        r = self.resource
        common: dict[str, Any] = {
            "label_selector": self.label_selector,
            "_preload_content": False,
            **kwargs,
        }
        if r.field_selector is not None:
            common["field_selector"] = r.field_selector
        if r.group == "":
            core = client.CoreV1Api(self.api)
            if not r.namespaced:
                return getattr(core, f"list_{r.kind.lower()}")(**common)
            if self.namespace is None:
                return getattr(core, f"list_{r.kind.lower()}_for_all_namespaces")(**common)
            return getattr(core, f"list_namespaced_{r.kind.lower()}")(self.namespace, **common)
        if r.group == "discovery.k8s.io":
            disc = client.DiscoveryV1Api(self.api)
            if self.namespace is None:
                return disc.list_endpoint_slice_for_all_namespaces(**common)
            return disc.list_namespaced_endpoint_slice(self.namespace, **common)
        custom = client.CustomObjectsApi(self.api)
        if self.namespace is None:
            return custom.list_cluster_custom_object(r.group, r.version, r.plural, **common)
        return custom.list_namespaced_custom_object(
            r.group, r.version, self.namespace, r.plural, **common
        )

    def _list(self) -> Delta:
        cfg = self.config
        resp = self._call(_request_timeout=(cfg.connect_timeout, cfg.list_timeout))
        body = response_json(resp)
        items = body.get("items") or []
        r = self.resource
        api_version = f"{r.group}/{r.version}" if r.group else r.version
        objects = []
        for item in items:
            if isinstance(item, dict):
                # Typed lists omit kind/apiVersion on items; build_state needs them.
                item.setdefault("kind", r.kind)
                item.setdefault("apiVersion", api_version)
                objects.append(item)
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        self.synced = True
        self.connected = True
        if self.absent:
            self.absent = False
            log.info("%s: the API server serves it now", r.name)
        log.debug("%s: listed %d at rv %s", r.name, len(objects), self.resource_version)
        return Delta(DeltaKind.REPLACED, r.name, objects=tuple(objects))

    def _watch(self) -> Iterator[Delta]:
        cfg = self.config
        timeout = int(cfg.watch_timeout * (1.0 + self._backoff.rng.random()))
        resp = self._call(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version or None,
            timeout_seconds=timeout,
            _request_timeout=(cfg.connect_timeout, timeout + cfg.read_slack),
        )
        with self._lock:
            self._response = resp
        try:
            if self._stop.is_set():
                return
            self.connected = True
            for line in _lines(resp):
                self._heartbeat()
                delta = self._event(line)
                if delta is not None:
                    self._backoff.reset()
                    yield delta
                if self._stop.is_set():
                    return
        finally:
            with self._lock:
                self._response = None
            resp.release_conn()

    def _event(self, line: str) -> Delta | None:
        try:
            event = json.loads(line)
            etype = event["type"]
            obj = event["object"]
        except (ValueError, KeyError, TypeError):
            log.warning("%s: malformed watch line ignored: %.200r", self.resource.name, line)
            return None
        if etype == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise _Gone()
            raise RuntimeError(f"watch error: {obj}")
        if not isinstance(obj, dict):
            return None
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = str(rv)
        if etype == "BOOKMARK":
            return None
        kind = {"ADDED": DeltaKind.ADDED, "MODIFIED": DeltaKind.MODIFIED}.get(etype)
        if etype == "DELETED":
            kind = DeltaKind.DELETED
        if kind is None:
            log.warning("%s: unknown watch event type %r", self.resource.name, etype)
            return None
        r = self.resource
        obj.setdefault("kind", r.kind)
        obj.setdefault("apiVersion", f"{r.group}/{r.version}" if r.group else r.version)
        return Delta(kind, r.name, obj=obj)


def _lines(resp: Any) -> Iterator[str]:
    """Newline-delimited JSON from a streaming urllib3 response."""
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buf.strip():
        yield buf.decode("utf-8", errors="replace")
