"""Feeds a `Speaker` from Kubernetes: snapshots in, ServiceL2Status/ServiceBGPStatus and
Events out.

`attach_kube_source(speaker, ...)` is what `l2agent speaker --kubeconfig ...` calls. Each
snapshot from the `KubeSource` (watch threads) is handed to `speaker.offer` on the event
loop, where the one configuration policy applies (`l2agent.model.problems.cost`). After
every plan the speaker hands over a `PlanOutcome`: the Services this node announces are
mirrored into ServiceL2Status objects, with a `nodeAssigned` Event for each newly won
Service and an `announceFailed` Event where none of its interfaces exists here. Given the
speaker's `BgpLink` (`bgp=`), every BGP plan is mirrored into ServiceBGPStatus objects:
per Service this node advertises, the BGPPeers it advertises it to.
`l2agent.kube` keeps only the API adapters; this module is the speaker's side of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gossip.actions import Address
from gossip.addresses import GOSSIP_PORT
from l2agent.announce.defense import AddressConflict, ConflictPhase
from l2agent.bgp.plan import BgpPlan
from l2agent.kube.convert import new_api_client
from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.metrics import register_kube_resources
from l2agent.model.crds import InterfaceSelection
from l2agent.model.problems import ObjectProblem
from l2agent.model.snapshot import BuildResult
from l2agent.model.types import IPAddress, format_mac
from l2agent.plan import Plan
from l2agent.speaker.placement import runs_speaker
from l2agent.speaker.run import PlanOutcome, Speaker

if TYPE_CHECKING:
    from l2agent.speaker.bgp import BgpLink

__all__ = ["KubeSpeakerLink", "attach_kube_source", "owned_services", "peer_addresses"]

log = logging.getLogger(__name__)

SetPeers = Callable[[Sequence[Address]], None]


def peer_addresses(
    nodes: Iterable[Mapping[str, Any]], me: str, port: int = GOSSIP_PORT
) -> list[Address]:
    """Gossip peers from the Node objects: each other node's first InternalIP (speakers
    run on the host network, so that is where their memberlist listens), for the nodes
    the speaker DaemonSet can run on (`placement.runs_speaker`: no Windows nodes, no
    nodes with taints it does not tolerate). Sorted."""
    out = []
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        if not name or name == me or not runs_speaker(node):
            continue
        addresses = (node.get("status") or {}).get("addresses") or []
        ip = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
        if ip:
            out.append((str(ip), port))
    return sorted(out)


def owned_services(plan: Plan, node: str) -> dict[str, InterfaceSelection]:
    """Service key -> interfaces, for the Services `node` announces in `plan`."""
    out: dict[str, InterfaceSelection] = {}
    for svc in plan.services:
        if svc.owner == node and svc.interfaces is not None:
            out[svc.key] = InterfaceSelection(svc.interfaces.all, frozenset(svc.interfaces.names))
    return out


class KubeSpeakerLink:
    """The loop-side half: offers snapshots and mirrors each plan outcome to the cluster.

    `offer`: the speaker's `offer`. `set_peers`: the membership's join-list setter when it
    gossips (Kubernetes mode learns peers from the Node objects), else None."""

    def __init__(
        self,
        source: KubeSource,
        node: str,
        offer: Callable[[BuildResult], bool],
        *,
        set_peers: SetPeers | None = None,
        gossip_port: int = GOSSIP_PORT,
    ) -> None:
        self.source = source
        self.node = node
        self._offer = offer
        self._set_peers = set_peers
        self.gossip_port = gossip_port
        self.peers: list[Address] = []
        self._announced: set[str] = set()
        self._failed: set[str] = set()
        self._services_of: dict[IPAddress, list[str]] = {}
        self._posted: frozenset[ObjectProblem] = frozenset()
        self.complete = 0
        """Snapshots applied whole."""
        self.partial = 0
        """Snapshots applied with configuration objects left out."""

    def on_snapshot(self, result: BuildResult) -> None:
        """A snapshot from the watch threads (runs on the event loop)."""
        self._update_peers()
        if self._offer(result):
            self.complete += 1
        else:
            self.partial += 1
        self._report_left_out(result)

    def _report_left_out(self, result: BuildResult) -> None:
        """An InvalidConfig Warning on each configuration object this speaker leaves out,
        once per object and problem (the speaker is the only judge of the BGP kinds, which
        the controller does not read)."""
        current = frozenset(result.stale)
        for problem in sorted(current - self._posted, key=lambda p: p.ref):
            self.source.invalid_config(problem)
        self._posted = current

    def _update_peers(self) -> None:
        """Hand the Node-derived peer list to the membership (MetalLB finds its peers from
        the speaker pods instead, which would need RBAC on Pods)."""
        if self._set_peers is None:
            return
        peers = peer_addresses(self.source.watched.objects("nodes"), self.node, self.gossip_port)
        if peers != self.peers:
            self.peers = peers
            self._set_peers(peers)

    def address_conflict(self, conflict: AddressConflict) -> None:
        """An addressConflict Warning on each Service this node announces the claimed IP
        for (a `Speaker.conflict_listeners` entry; reports come at most every 10 s)."""
        who = format_mac(conflict.mac)
        if conflict.phase is ConflictPhase.STARTED:
            message = (
                f"{who} claims {conflict.ip} on {conflict.ifname}, announced by node "
                f'"{self.node}": re-announcing it at most once a second while the claims go on'
            )
        else:
            message = (
                f"conflict for {conflict.ip} on {conflict.ifname} {conflict.phase.value} "
                f"(last claimed by {who}): {conflict.claims} claims, {conflict.defenses} "
                "re-announcements since the last report"
            )
        for key in self._services_of.get(conflict.ip, ()):
            self.source.address_conflict(key, message)

    def bgp_plan_applied(self, plan: BgpPlan) -> None:
        """Mirror what this node advertises in BGP mode into ServiceBGPStatus (a `BgpLink`
        plan listener)."""
        self.source.report_bgp_announcements(plan.service_peers())

    def plan_applied(self, outcome: PlanOutcome) -> None:
        """Mirror what this node announces into ServiceL2Status, with MetalLB's Events."""
        owned = owned_services(outcome.plan, self.node)
        self.source.report_announcements(owned)
        self._services_of = {}
        for svc in outcome.plan.services:
            if svc.key in owned:
                for ip in svc.ips:
                    self._services_of.setdefault(ip, []).append(svc.key)
        for key in sorted(set(owned) - self._announced):
            self.source.node_assigned(key)
        self._announced = set(owned)
        failed = {
            svc.key: ip
            for svc in outcome.plan.services
            if svc.key in owned
            for ip in svc.ips
            if ip in outcome.announce_failed
        }
        for key in sorted(set(failed) - self._failed):
            self.source.announce_failed(
                key,
                f'the interfaces specified by LB IP "{failed[key]}" doesn\'t exist in assigned '
                f'node "{self.node}" with protocol "layer2"',
            )
        self._failed = set(failed)


def attach_kube_source(
    speaker: Speaker,
    *,
    kubeconfig: str | None,
    namespace: str,
    set_peers: SetPeers | None = None,
    gossip_port: int = GOSSIP_PORT,
    config: SourceConfig | None = None,
    host: str | None = None,
    bgp: BgpLink | None = None,
) -> KubeSpeakerLink:
    """Start watching the cluster for `speaker` (call on its event loop). `kubeconfig`
    ('-': in-cluster); the pod's name and uid (for the status objects' owner references)
    come from $POD_NAME / $POD_UID. `host` points at an API server directly (tests). `bgp`:
    the speaker's BGP link, whose plans become ServiceBGPStatus objects. The watch threads
    are daemons; `link.source.stop()` ends them (the speaker does at shutdown)."""
    loop = asyncio.get_running_loop()
    api = new_api_client(kubeconfig, host=host)
    node = speaker.options.node
    holder: list[KubeSpeakerLink] = []

    def from_thread(result: BuildResult) -> None:
        loop.call_soon_threadsafe(holder[0].on_snapshot, result)

    source = KubeSource(
        api,
        namespace=namespace,
        node_name=node,
        on_snapshot=from_thread,
        pod_name=os.environ.get("POD_NAME"),
        pod_uid=os.environ.get("POD_UID"),
        config=config,
    )
    link = KubeSpeakerLink(
        source, node, speaker.offer, set_peers=set_peers, gossip_port=gossip_port
    )
    holder.append(link)
    register_kube_resources(speaker.registry, source.watched.names, source.watched.absent)
    speaker.plan_listeners.append(link.plan_applied)
    speaker.conflict_listeners.append(link.address_conflict)
    if bgp is not None:
        bgp.plan_listeners.append(link.bgp_plan_applied)
    speaker.ready_checks.append(lambda: bool(source.synced))
    speaker.liveness_checks.append(source.stuck)
    speaker.on_shutdown.append(source.stop)
    source.start()
    return link
