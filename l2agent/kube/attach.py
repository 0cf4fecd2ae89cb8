"""Feeds a running `Speaker` from Kubernetes: snapshots in, ServiceL2Status and Events out.

`attach_kube_source(speaker, args)` is what `l2agent speaker --kubeconfig ...` calls. Each
snapshot from the `KubeSource` is handed to `speaker.set_state` on the event loop (the
speaker replans at once). A snapshot whose IPAddressPools or L2Advertisements are invalid is
rejected and the last good one stays in force (MetalLB's speaker does the same, so an
overlapping pool never withdraws a running VIP); a bad Service only drops that Service.
After every plan the set of Services this node announces is mirrored into ServiceL2Status
objects, with a `nodeAssigned` Event for each newly won Service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from l2agent.kube.convert import new_api_client
from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.model.crds import InterfaceSelection
from l2agent.model.snapshot import BuildResult, ClusterState
from l2agent.plan import Plan

__all__ = [
    "GOSSIP_PORT",
    "PLAN_CHECK_INTERVAL",
    "KubeSpeakerLink",
    "attach_kube_source",
    "gossip_port",
    "owned_services",
    "peer_addresses",
]

log = logging.getLogger(__name__)

PLAN_CHECK_INTERVAL = 0.5
"""Seconds between looks at the speaker's plan (membership changes replan without us)."""
GOSSIP_PORT = 7946


class _SpeakerLike(Protocol):
    plan: Plan | None
    metrics: Any
    dataplane: Any

    def set_state(self, state: ClusterState) -> None: ...


def peer_addresses(
    nodes: Iterable[Mapping[str, Any]], me: str, port: int = GOSSIP_PORT
) -> list[tuple[str, int]]:
    """Gossip peers from the Node objects: each other node's first InternalIP (speakers
    run on the host network, so that is where their memberlist listens). Sorted."""
    out = []
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        if not name or name == me:
            continue
        addresses = (node.get("status") or {}).get("addresses") or []
        ip = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
        if ip:
            out.append((str(ip), port))
    return sorted(out)


def gossip_port(bind_addr: str | None) -> int:
    """The port of `--bind-addr` (IP, IP:PORT or [v6]:PORT); 7946 when none is given."""
    if not bind_addr:
        return GOSSIP_PORT
    if bind_addr.startswith("["):
        _, _, rest = bind_addr.partition("]")
        return int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else GOSSIP_PORT
    if bind_addr.count(":") == 1:
        port = bind_addr.rsplit(":", 1)[1]
        return int(port) if port.isdigit() else GOSSIP_PORT
    return GOSSIP_PORT


def owned_services(plan: Plan | None, node: str) -> dict[str, InterfaceSelection]:
    """Service key -> interfaces, for the Services `node` announces in `plan`."""
    if plan is None:
        return {}
    out: dict[str, InterfaceSelection] = {}
    for svc in plan.services:
        if svc.owner == node and svc.interfaces is not None:
            out[svc.key] = InterfaceSelection(svc.interfaces.all, frozenset(svc.interfaces.names))
    return out


class KubeSpeakerLink:
    """The loop-side half: applies snapshots and mirrors the plan back to the cluster."""

    def __init__(
        self, speaker: _SpeakerLike, source: KubeSource, node: str, gossip_port: int = GOSSIP_PORT
    ) -> None:
        self.speaker = speaker
        self.source = source
        self.node = node
        self.gossip_port = gossip_port
        self.peers: list[tuple[str, int]] = []
        self._last_plan: Plan | None = None
        self._announced: set[str] = set()
        self.accepted = 0
        self.rejected = 0
        self.task: asyncio.Task[None] | None = None

    def on_snapshot(self, result: BuildResult) -> None:
        """Runs on the event loop."""
        blocking = result.blocking
        for problem in result.problems:
            if problem not in blocking:
                log.warning("ignored: %s", problem.message)
        if blocking:
            self.rejected += 1
            for problem in blocking:
                log.error("config rejected, keeping the last good one: %s", problem.message)
            self._metric("config_rejected")
            return
        self.accepted += 1
        self._metric("config_reloaded")
        self._update_peers()
        self.speaker.set_state(result.state)
        self.check_plan()

    def _update_peers(self) -> None:
        """Hand the Node-derived peer list to the membership, if it takes one
        (`set_peers(addresses)`); MetalLB finds its peers from the speaker pods instead,
        which would need RBAC on Pods."""
        nodes = self.source.watched.objects("nodes")
        peers = peer_addresses(nodes, self.node, self.gossip_port)
        if peers == self.peers:
            return
        self.peers = peers
        set_peers = getattr(getattr(self.speaker, "membership", None), "set_peers", None)
        if set_peers is not None:
            set_peers(peers)

    def check_plan(self) -> None:
        """Report what this node announces, if the plan changed since the last look."""
        current = self.speaker.plan
        if current is self._last_plan:
            return
        self._last_plan = current
        owned = owned_services(current, self.node)
        self.source.report_announcements(owned)
        for key in sorted(set(owned) - self._announced):
            self.source.node_assigned(key)
        self._announced = set(owned)
        self._check_interfaces(current, owned)

    def _check_interfaces(self, plan: Plan | None, owned: dict[str, InterfaceSelection]) -> None:
        """MetalLB's announceFailed: none of the requested interfaces exists on this node."""
        dataplane = getattr(self.speaker, "dataplane", None)
        if plan is None or dataplane is None:
            return
        for svc in plan.services:
            sel = owned.get(svc.key)
            if sel is None or sel.all or not sel.names:
                continue
            for ip in svc.ips:
                if dataplane.missing_interfaces(ip) >= sel.names:
                    self.source.announce_failed(
                        svc.key,
                        f'the interfaces specified by LB IP "{ip}" doesn\'t exist in assigned '
                        f'node "{self.node}" with protocol "layer2"',
                    )

    async def watch_plan(self, interval: float = PLAN_CHECK_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check_plan()
            except Exception:
                log.exception("could not report announcements")

    def _metric(self, name: str) -> None:
        metrics = getattr(self.speaker, "metrics", None)
        fn = getattr(metrics, name, None)
        if fn is not None:
            fn()


async def attach_kube_source(
    speaker: Any,
    args: Any,
    *,
    config: SourceConfig | None = None,
    host: str | None = None,
) -> KubeSpeakerLink:
    """Start watching the cluster for `speaker`. Reads `args.kubeconfig` ('-': in-cluster),
    `args.namespace`, `args.node_name`; the pod's name and uid (for ServiceL2Status owner
    references) from $POD_NAME / $POD_UID. `host` points at an API server directly (tests).
    The watch threads are daemons; the returned link's `source.stop()` ends them."""
    loop = asyncio.get_running_loop()
    api = new_api_client(getattr(args, "kubeconfig", None), host=host)
    node = str(args.node_name)
    holder: dict[str, KubeSpeakerLink] = {}

    def from_thread(result: BuildResult) -> None:
        loop.call_soon_threadsafe(holder["link"].on_snapshot, result)

    source = KubeSource(
        api,
        namespace=args.namespace,
        node_name=node,
        on_snapshot=from_thread,
        pod_name=os.environ.get("POD_NAME"),
        pod_uid=os.environ.get("POD_UID"),
        config=config,
    )
    link = KubeSpeakerLink(speaker, source, node, gossip_port(getattr(args, "bind_addr", None)))
    holder["link"] = link
    source.start()
    link.task = loop.create_task(link.watch_plan())
    return link
