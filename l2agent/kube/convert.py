"""Between the `kubernetes` client and plain dicts: the only module that touches client models.

Everything else in l2agent handles API objects as plain dicts in the API's JSON shape
(camelCase), exactly what `kubectl get -o yaml` prints and what `build_state` reads. The
client is called with `_preload_content=False`, so responses are parsed here as JSON instead
of being turned into model objects; model objects a caller already holds go through
`to_plain`. API and transport failures are folded into one `ApiFailure` value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.models import CoreV1Event

__all__ = [
    "ApiFailure",
    "api_failure",
    "call",
    "call_json",
    "event_model",
    "format_micro_time",
    "keepalive_socket_options",
    "new_api_client",
    "parse_time",
    "response_json",
    "to_plain",
]

_SERIALIZER = client.ApiClient()


def to_plain(obj: Any) -> Any:
    """A client model object (or dict/list of them) as plain JSON-shaped data."""
    return _SERIALIZER.sanitize_for_serialization(obj)


def response_json(resp: Any) -> dict[str, Any]:
    """The JSON body of a `_preload_content=False` response (a urllib3 response)."""
    data = resp.data if hasattr(resp, "data") else resp
    try:
        body = json.loads(data) if data else {}
    finally:
        if hasattr(resp, "release_conn"):
            resp.release_conn()
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object from the API server, got {type(body).__name__}")
    return body


def call_json(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a client API method without model deserialization; the JSON body as a dict."""
    return response_json(fn(*args, _preload_content=False, **kwargs))


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a client API method for its effect only (the body is read and discarded)."""
    resp = fn(*args, _preload_content=False, **kwargs)
    try:
        resp.read()  # drain the body, or the kept-alive connection is poisoned
    finally:
        resp.release_conn()


def event_model(body: dict[str, Any]) -> CoreV1Event:
    model = CoreV1Event.from_dict(body)
    if model is None:
        raise ValueError("not an Event")
    return model


@dataclass(frozen=True, slots=True)
class ApiFailure:
    """What went wrong talking to the API server: `status` is the HTTP status, or None when
    the server could not be reached at all (refused, reset, timed out)."""

    status: int | None
    reason: str
    message: str

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404


def api_failure(exc: BaseException) -> ApiFailure:
    """Classify an exception raised by a client call."""
    if isinstance(exc, ApiException):
        status = int(exc.status) if exc.status else None
        message = str(exc.reason or "")
        body = getattr(exc, "body", None)
        if body:
            try:
                decoded = json.loads(body)
                message = str(decoded.get("message") or message)
            except (ValueError, AttributeError):
                pass
        return ApiFailure(status, str(exc.reason or ""), f"HTTP {status}: {message}")
    return ApiFailure(None, type(exc).__name__, f"API server unreachable: {exc}")


#: HTTP connections kept per API client: each watched resource holds one open watch (the
#: speaker watches 12 kinds) beside the status and Event writers; urllib3's default of 10
#: would drop and re-dial connections on every watch cycle.
CONNECTION_POOL_SIZE = 32


KEEPALIVE_IDLE = 15
"""Seconds a connection may be idle before the kernel probes the peer."""
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 30_000
"""Sent data unacknowledged this long (ms) kills the connection (TCP_USER_TIMEOUT)."""


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """urllib3's default options (TCP_NODELAY) plus TCP keepalive and a user timeout, so a
    connection whose peer vanished silently fails within ~30 s instead of the kernel's
    two hours (client-go asks for 30 s idle, then 9 probes 15 s apart)."""
    import socket

    import urllib3

    options = list(urllib3.connection.HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def new_api_client(kubeconfig: str | None, *, host: str | None = None) -> client.ApiClient:
    """An ApiClient: `host` (tests), in-cluster when kubeconfig is '-' or running in a pod
    without one, else the kubeconfig file (None: the default ~/.kube/config). Its sockets
    use TCP keepalive (`keepalive_socket_options`); it never retries on its own."""
    from kubernetes import config as kconfig

    cfg = client.Configuration()
    if host is not None:
        cfg.host = host
    elif kubeconfig == "-":
        kconfig.load_incluster_config(client_configuration=cfg)
    else:
        try:
            kconfig.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        except kconfig.ConfigException:
            if kubeconfig is not None:
                raise
            kconfig.load_incluster_config(client_configuration=cfg)
    cfg.retries = False
    cfg.connection_pool_maxsize = CONNECTION_POOL_SIZE
    cfg.socket_options = keepalive_socket_options()
    return client.ApiClient(cfg)


def format_micro_time(t: datetime) -> str:
    """RFC 3339 with microseconds, as Kubernetes' MicroTime (Lease renewTime) is written."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(t: datetime) -> str:
    """RFC 3339 to the second, as Kubernetes' Time (Event timestamps) is written."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    """Parse Time/MicroTime text; None for missing or unreadable values."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
