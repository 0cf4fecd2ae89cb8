"""A protocol-level fake Kubernetes API server over HTTP, for driving the real `kubernetes`
client in tests.

It speaks the parts of the API that l2agent uses, with the server-side semantics that matter
to a correct client: one global resourceVersion, list + watch from a resourceVersion
(replaying the event log), BOOKMARK events when asked for, 410 Gone for compacted versions,
the status subresource (the main resource ignores status, /status changes only status),
optimistic concurrency (409 on a stale resourceVersion), generateName, merge patches,
label selectors (equality only). Test-side knobs: `compact()`, `drop_watches()`,
`send_bookmarks()`, `outage()` (the listening socket closes: connections are refused),
`fail_next()` (inject an error status), `missing` kinds (not served, as when their CRD is
not installed: 404 and absent from discovery, until `install()`), and direct `put()` /
`remove()` / `get()`.
"""

from __future__ import annotations

import copy
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# plural -> (group, version, kind, namespaced, has status subresource)
RESOURCES: dict[str, tuple[str, str, str, bool, bool]] = {
    "services": ("", "v1", "Service", True, True),
    "nodes": ("", "v1", "Node", False, True),
    "namespaces": ("", "v1", "Namespace", False, True),
    "events": ("", "v1", "Event", True, False),
    "pods": ("", "v1", "Pod", True, True),
    "secrets": ("", "v1", "Secret", True, False),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, False),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, False),
    "ipaddresspools": ("metallb.io", "v1beta1", "IPAddressPool", True, True),
    "l2advertisements": ("metallb.io", "v1beta1", "L2Advertisement", True, True),
    "servicel2statuses": ("metallb.io", "v1beta1", "ServiceL2Status", True, True),
    "bgppeers": ("metallb.io", "v1beta2", "BGPPeer", True, True),
    "bgpadvertisements": ("metallb.io", "v1beta1", "BGPAdvertisement", True, True),
    "bfdprofiles": ("metallb.io", "v1beta1", "BFDProfile", True, True),
    "communities": ("metallb.io", "v1beta1", "Community", True, True),
    "servicebgpstatuses": ("metallb.io", "v1beta1", "ServiceBGPStatus", True, True),
}
KIND_TO_PLURAL = {v[2]: k for k, v in RESOURCES.items()}

Key = tuple[str, str]  # (namespace or "", name)


def api_version(plural: str) -> str:
    group, version = RESOURCES[plural][0], RESOURCES[plural][1]
    return f"{group}/{version}" if group else version


@dataclass(eq=False)
class _Watch:
    plural: str
    namespace: str | None
    selector: dict[str, str]
    bookmarks: bool
    cursor: int
    dropped: bool = False
    pending_bookmark: bool = False
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None


@dataclass
class _State:
    objects: dict[str, dict[Key, dict[str, Any]]] = field(default_factory=dict)
    # (resourceVersion, type, plural, object copy)
    log: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    rv: int = 1000
    compacted: int = 0


class FakeApiServer:
    """Start with `with FakeApiServer() as api:`; `api.url` is the host for the client."""

    def __init__(
        self, bookmark_interval: float | None = None, missing: tuple[str, ...] = ()
    ) -> None:
        self._state = _State()
        self.missing = set(missing)
        """Plurals not served (their CRD is not installed): every request gets 404."""
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._failures: list[tuple[str, str, int]] = []
        self._down = False
        self.requests: list[Request] = []
        self.bookmark_interval = bookmark_interval
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._open_sockets: set[socket.socket] = set()
        # (plural, key) -> the uid that object has (or last had: Events may trail a delete)
        self._uids: dict[tuple[str, Key], str] = {}
        # every Event posted: (involvedObject, the uid the server knows for that object)
        self._event_refs: list[tuple[dict[str, Any], str | None]] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeApiServer:
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.drop_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._cond:
            for s in list(self._open_sockets):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The API server goes away: watches break, new connections are refused."""
        self._down = True
        self.stop()
        try:
            yield
        finally:
            self._down = False
            self.start()

    # ---------------------------------------------------------------- test knobs

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._state.rv

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as-is (status included), emitting a watch event."""
        plural = KIND_TO_PLURAL[obj["kind"]]
        with self._cond:
            return copy.deepcopy(self._store(plural, copy.deepcopy(obj)))

    def remove(self, kind: str, namespace: str, name: str) -> None:
        plural = KIND_TO_PLURAL[kind]
        with self._cond:
            self._delete(plural, (namespace, name))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        plural = KIND_TO_PLURAL[kind]
        with self._cond:
            obj = self._state.objects.get(plural, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def items(self, kind: str) -> list[dict[str, Any]]:
        plural = KIND_TO_PLURAL[kind]
        with self._cond:
            return [copy.deepcopy(o) for o in self._state.objects.get(plural, {}).values()]

    def compact(self) -> None:
        """Forget the event log: resuming from any older resourceVersion now gets 410 Gone."""
        with self._cond:
            # Compaction takes a revision of its own, so every version a client holds is older.
            self._state.compacted = self._next_rv()
            self._state.log.clear()

    def drop_watches(self) -> None:
        with self._cond:
            for w in self._watches:
                w.dropped = True
            self._cond.notify_all()

    def send_bookmarks(self) -> None:
        with self._cond:
            for w in self._watches:
                w.pending_bookmark = True
            self._cond.notify_all()

    def active_watches(self, plural: str | None = None) -> int:
        with self._cond:
            return sum(1 for w in self._watches if plural is None or w.plural == plural)

    def wait_for_watches(self, plural: str, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for w in self._watches if w.plural == plural) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {count} watches on {plural}")
                self._cond.wait(left)

    def install(self, plural: str) -> None:
        """Serve a `missing` kind from now on (its CRD was applied)."""
        with self._cond:
            self.missing.discard(plural)

    def fail_next(self, method: str, path_part: str, status: int) -> None:
        """The next request with this method whose path contains path_part gets `status`."""
        with self._cond:
            self._failures.append((method, path_part, status))

    def requests_for(self, method: str, path_part: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    def events_with_wrong_uid(self, *, clear: bool = False) -> list[tuple[dict[str, Any], Any]]:
        """Events whose involvedObject.uid is not the uid of the object they name (so
        `kubectl describe` would not show them): (involvedObject, the object's real uid,
        None when the server never held such an object). `clear`: forget them afterwards."""
        with self._cond:
            wrong = [(i, u) for i, u in self._event_refs if u is None or i.get("uid") != u]
            if clear:
                self._event_refs.clear()
            return wrong

    # ---------------------------------------------------------------- storage (lock held)

    def _next_rv(self) -> int:
        self._state.rv += 1
        return self._state.rv

    def _store(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        namespaced = RESOURCES[plural][3]
        ns = meta.get("namespace", "") if namespaced else ""
        if namespaced and not ns:
            ns = meta["namespace"] = "default"
        key = (ns, meta["name"])
        table = self._state.objects.setdefault(plural, {})
        old = table.get(key)
        obj["apiVersion"] = api_version(plural)
        obj["kind"] = RESOURCES[plural][2]
        meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
        rv = self._next_rv()
        # Creation times as a real server keeps them: set once, later objects later (one
        # "second" per write here), so "the older object wins" has a meaning in tests.
        meta.setdefault(
            "creationTimestamp",
            old["metadata"]["creationTimestamp"] if old else _stamp(rv - 1000),
        )
        meta["resourceVersion"] = str(rv)
        table[key] = obj
        self._uids[(plural, key)] = meta["uid"]
        self._record("MODIFIED" if old else "ADDED", plural, obj)
        return obj

    def _delete(self, plural: str, key: Key) -> dict[str, Any] | None:
        obj = self._state.objects.get(plural, {}).pop(key, None)
        if obj is not None:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._record("DELETED", plural, obj)
        return obj

    def _note_event(self, body: dict[str, Any]) -> None:
        inv = dict(body.get("involvedObject") or {})
        plural = KIND_TO_PLURAL.get(str(inv.get("kind")))
        uid = None
        if plural is not None:
            ns = str(inv.get("namespace") or "") if RESOURCES[plural][3] else ""
            uid = self._uids.get((plural, (ns, str(inv.get("name") or ""))))
        self._event_refs.append((inv, uid))

    def _record(self, kind: str, plural: str, obj: dict[str, Any]) -> None:
        self._state.log.append((self._state.rv, kind, plural, copy.deepcopy(obj)))
        self._cond.notify_all()

    # ---------------------------------------------------------------- request handling

    def _take_failure(self, method: str, path: str) -> int | None:
        for i, (m, part, status) in enumerate(self._failures):
            if m == method and part in path:
                del self._failures[i]
                return status
        return None


def _stamp(seconds: int) -> str:
    """RFC 3339 time `seconds` after 2026-01-01T00:00:00Z."""
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class _HttpError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or _REASONS.get(code, "Unknown")


@dataclass(frozen=True)
class _Route:
    plural: str
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str | None
    subresource: str | None


def _parse_path(path: str) -> _Route:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts and parts[0] == "apis" and len(parts) >= 3:
        rest = parts[3:]
    else:
        raise _HttpError(404, f"unknown path {path}")
    if not rest:
        raise _HttpError(404, f"unknown path {path}")
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, plural, tail = rest[1], rest[2], rest[3:]
    else:
        ns, plural, tail = None, rest[0], rest[1:]
    if plural not in RESOURCES:
        raise _HttpError(404, f"the server could not find the requested resource ({plural})")
    if not RESOURCES[plural][3]:
        ns = None
    name = tail[0] if tail else None
    sub = tail[1] if len(tail) > 1 else None
    return _Route(plural, ns, name, sub)


def _discovery(path: str, missing: set[str]) -> dict[str, Any] | None:
    """Legacy (unaggregated) discovery, enough for kubectl and client-go to find resources."""
    served = {k: v for k, v in RESOURCES.items() if k not in missing}
    groups: dict[str, set[str]] = {}
    for group, version, *_ in served.values():
        groups.setdefault(group, set()).add(version)
    if path == "/version":
        return {
            "major": "1",
            "minor": "30",
            "gitVersion": "v1.30.0-fake",
            "platform": "linux/amd64",
        }
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in sorted(vs)],
                    "preferredVersion": {
                        "groupVersion": f"{g}/{max(vs)}",
                        "version": max(vs),
                    },
                }
                for g, vs in sorted(groups.items())
                if g
            ],
        }
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    resources: list[dict[str, Any]] = []
    for plural, (g, v, kind, namespaced, status) in served.items():
        if (g, v) != (group, version):
            continue
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        resources.append(
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            }
        )
        if status:
            resources.append(
                {
                    "name": f"{plural}/status",
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _parse_selector(text: str) -> dict[str, str]:
    out = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "==" in term:
            k, v = term.split("==", 1)
        elif "=" in term:
            k, v = term.split("=", 1)
        else:
            raise _HttpError(400, f"unsupported label selector term {term!r}")
        out[k.strip()] = v.strip()
    return out


def _matches(
    obj: dict[str, Any],
    ns: str | None,
    selector: dict[str, str],
    fields: dict[str, str] | None = None,
) -> bool:
    meta = obj.get("metadata", {})
    if ns is not None and meta.get("namespace", "") != ns:
        return False
    labels = meta.get("labels") or {}
    if not all(labels.get(k) == v for k, v in selector.items()):
        return False
    return all(_field(obj, path) == v for path, v in (fields or {}).items())


def _field(obj: dict[str, Any], path: str) -> str:
    """A field selector's dotted path (`type`, `metadata.name`) as text, "" when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge is treated the same: enough for our use)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _merge_patch(result.get(k), v)
    return result


_counter = itertools.count(1)


def _make_handler(api: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with api._cond:
                api._open_sockets.add(self.connection)

        def finish(self) -> None:
            with api._cond:
                api._open_sockets.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else None

        def _send(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            try:
                body = self._body() if method in ("POST", "PUT", "PATCH") else None
            except json.JSONDecodeError:
                self._send(400, _status(400, "BadRequest", "invalid JSON body"))
                return
            with api._cond:
                api.requests.append(Request(method, split.path, query, body))
                injected = api._take_failure(method, split.path)
            if injected is not None:
                reason = _REASONS.get(injected, "Unknown")
                self._send(injected, _status(injected, reason, f"injected {injected}"))
                return
            with api._cond:
                missing = set(api.missing)
            discovery = _discovery(split.path.rstrip("/"), missing) if method == "GET" else None
            if discovery is not None:
                self._send(200, discovery)
                return
            try:
                route = _parse_path(split.path)
                if route.plural in missing:
                    raise _HttpError(404, "the server could not find the requested resource")
                if method == "GET" and route.name is None:
                    if query.get("watch") in ("1", "true", "True"):
                        self._watch(route, query)
                        return
                    self._send(200, self._list(route, query))
                elif method == "GET":
                    self._send(200, self._get(route))
                elif method == "POST":
                    self._send(201, self._create(route, body))
                elif method == "PUT":
                    self._send(200, self._update(route, body))
                elif method == "PATCH":
                    ctype = self.headers.get("Content-Type", "")
                    self._send(200, self._patch(route, body, ctype))
                elif method == "DELETE":
                    self._send(200, self._delete(route))
                else:
                    raise _HttpError(405, method)
            except _HttpError as e:
                self._send(e.code, _status(e.code, e.reason, str(e)))

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        # ------------------------------------------------------------ verbs

        def _key(self, route: _Route, name: str | None = None) -> Key:
            return (route.namespace or "", name or route.name or "")

        def _list(self, route: _Route, query: dict[str, str]) -> dict[str, Any]:
            selector = _parse_selector(query.get("labelSelector", ""))
            fields = _parse_selector(query.get("fieldSelector", ""))
            with api._cond:
                rv = query.get("resourceVersion")
                if rv not in (None, "", "0") and int(rv) < api._state.compacted:
                    raise _HttpError(410, f"too old resource version: {rv}", "Expired")
                table = api._state.objects.get(route.plural, {})
                items = [
                    copy.deepcopy(o)
                    for _, o in sorted(table.items())
                    if _matches(o, route.namespace, selector, fields)
                ]
                current = api._state.rv
            return {
                "apiVersion": api_version(route.plural),
                "kind": RESOURCES[route.plural][2] + "List",
                "metadata": {"resourceVersion": str(current)},
                "items": items,
            }

        def _get(self, route: _Route) -> dict[str, Any]:
            with api._cond:
                obj = api._state.objects.get(route.plural, {}).get(self._key(route))
                if obj is None:
                    raise _HttpError(404, f'{route.plural} "{route.name}" not found', "NotFound")
                return copy.deepcopy(obj)

        def _create(self, route: _Route, body: Any) -> dict[str, Any]:
            if not isinstance(body, dict) or route.name is not None:
                raise _HttpError(400, "bad create")
            meta = body.setdefault("metadata", {})
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise _HttpError(422, "name or generateName is required", "Invalid")
                meta["name"] = f"{meta['generateName']}{next(_counter):05x}"
            if route.namespace is not None:
                if meta.get("namespace", route.namespace) != route.namespace:
                    raise _HttpError(400, "namespace in body does not match the path")
                meta["namespace"] = route.namespace
            for k in ("resourceVersion", "uid"):
                meta.pop(k, None)
            with api._cond:
                if self._key(route, meta["name"]) in api._state.objects.get(route.plural, {}):
                    raise _HttpError(
                        409, f'{route.plural} "{meta["name"]}" already exists', "AlreadyExists"
                    )
                if RESOURCES[route.plural][4]:
                    body.pop("status", None)  # status subresource: create ignores status
                if route.plural == "events":
                    api._note_event(body)
                return copy.deepcopy(api._store(route.plural, body))

        def _current(self, route: _Route) -> dict[str, Any]:
            obj = api._state.objects.get(route.plural, {}).get(self._key(route))
            if obj is None:
                raise _HttpError(404, f'{route.plural} "{route.name}" not found', "NotFound")
            return obj

        def _write(self, route: _Route, old: dict[str, Any], new: dict[str, Any]) -> Any:
            has_status = RESOURCES[route.plural][4]
            if route.subresource == "status":
                merged = copy.deepcopy(old)
                merged["status"] = new.get("status")
                if RESOURCES[route.plural][0] == "":
                    # Core kinds' status strategies (Service, Node, Pod) reset only the
                    # spec: labels and annotations sent to /status land (MetalLB's
                    # controller writes its pool annotation so). A CRD's /status takes
                    # the status alone.
                    for part in ("labels", "annotations"):
                        value = (new.get("metadata") or {}).get(part)
                        if value is None:
                            merged["metadata"].pop(part, None)
                        else:
                            merged["metadata"][part] = copy.deepcopy(value)
                merged["metadata"]["resourceVersion"] = new.get("metadata", {}).get(
                    "resourceVersion", old["metadata"]["resourceVersion"]
                )
                new = merged
            elif has_status:
                new = copy.deepcopy(new)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            elif route.subresource is not None:
                raise _HttpError(404, f"no subresource {route.subresource}")
            meta = new.setdefault("metadata", {})
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise _HttpError(
                    409,
                    f'Operation cannot be fulfilled on {route.plural} "{route.name}": the '
                    "object has been modified; please apply your changes to the latest version",
                    "Conflict",
                )
            meta["name"] = old["metadata"]["name"]
            if route.namespace is not None:
                meta["namespace"] = route.namespace
            meta["uid"] = old["metadata"]["uid"]
            meta.pop("resourceVersion", None)
            unchanged = {**old, "metadata": {**old["metadata"]}}
            unchanged["metadata"].pop("resourceVersion", None)
            if new == unchanged:  # a no-op write does not bump resourceVersion
                return copy.deepcopy(old)
            return copy.deepcopy(api._store(route.plural, new))

        def _update(self, route: _Route, body: Any) -> dict[str, Any]:
            if not isinstance(body, dict):
                raise _HttpError(400, "bad update")
            with api._cond:
                return self._write(route, self._current(route), body)

        def _patch(self, route: _Route, body: Any, ctype: str) -> dict[str, Any]:
            if "merge-patch" not in ctype:
                raise _HttpError(415, f"unsupported patch type {ctype}")
            with api._cond:
                old = self._current(route)
                patched = _merge_patch(old, body)
                if route.subresource != "status" and RESOURCES[route.plural][4]:
                    patched["status"] = copy.deepcopy(old.get("status"))
                    if patched["status"] is None:
                        patched.pop("status")
                # A patch carries a resourceVersion only when the client wants a precondition.
                sent = (body or {}).get("metadata", {}).get("resourceVersion")
                patched["metadata"]["resourceVersion"] = sent or old["metadata"]["resourceVersion"]
                return self._write(route, old, patched)

        def _delete(self, route: _Route) -> dict[str, Any]:
            with api._cond:
                obj = api._delete(route.plural, self._key(route))
            if obj is None:
                raise _HttpError(404, f'{route.plural} "{route.name}" not found', "NotFound")
            return _status(200, "", "deleted") | {"status": "Success", "details": {}}

        # ------------------------------------------------------------ watch

        def _write_chunk(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, route: _Route, query: dict[str, str]) -> None:
            selector = _parse_selector(query.get("labelSelector", ""))
            fields = _parse_selector(query.get("fieldSelector", ""))
            timeout = float(query.get("timeoutSeconds", "300"))
            rv_text = query.get("resourceVersion", "")
            with api._cond:
                initial: list[tuple[str, dict[str, Any]]] = []
                if rv_text in ("", "0"):
                    cursor = api._state.rv
                    table = api._state.objects.get(route.plural, {})
                    initial = [
                        ("ADDED", copy.deepcopy(o))
                        for _, o in sorted(table.items())
                        if _matches(o, route.namespace, selector, fields)
                    ]
                    expired = False
                else:
                    cursor = int(rv_text)
                    expired = cursor < api._state.compacted
                w = _Watch(
                    route.plural,
                    route.namespace,
                    selector,
                    query.get("allowWatchBookmarks") in ("true", "1", "True"),
                    cursor,
                    fields=fields,
                )
                if not expired:
                    api._watches.add(w)
                    api._cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            # Said, not only done: a client must not reuse the connection we are closing.
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                if expired:
                    msg = f"too old resource version: {rv_text} ({api._state.compacted})"
                    self._write_chunk({"type": "ERROR", "object": _status(410, "Expired", msg)})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                for kind, obj in initial:
                    self._write_chunk({"type": kind, "object": obj})
                self._stream(w, timeout)
            except OSError:
                pass
            finally:
                with api._cond:
                    api._watches.discard(w)
                    api._cond.notify_all()

        def _stream(self, w: _Watch, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            next_bookmark = (
                time.monotonic() + api.bookmark_interval if api.bookmark_interval else None
            )
            while True:
                with api._cond:
                    while True:
                        if w.dropped:
                            # Abrupt: no terminating chunk, the way a broken connection looks.
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        events = [
                            (rv, t, o)
                            for rv, t, p, o in api._state.log
                            if rv > w.cursor
                            and p == w.plural
                            and _matches(o, w.namespace, w.selector, w.fields)
                        ]
                        now = time.monotonic()
                        if w.bookmarks and next_bookmark is not None and now >= next_bookmark:
                            w.pending_bookmark = True
                            next_bookmark = now + (api.bookmark_interval or 0)
                        if events or w.pending_bookmark or now >= deadline:
                            break
                        wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
                        api._cond.wait(max(0.0, min(wake - now, 0.5)))
                    bookmark = w.pending_bookmark and w.bookmarks
                    w.pending_bookmark = False
                    if events:
                        w.cursor = events[-1][0]
                    rv_now = api._state.rv
                for _rv, t, o in events:
                    self._write_chunk({"type": t, "object": copy.deepcopy(o)})
                if bookmark:
                    w.cursor = max(w.cursor, rv_now)
                    self._write_chunk(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "apiVersion": api_version(w.plural),
                                "kind": RESOURCES[w.plural][2],
                                "metadata": {"resourceVersion": str(w.cursor)},
                            },
                        }
                    )
                if time.monotonic() >= deadline:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return

    return Handler
