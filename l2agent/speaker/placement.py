"""Which nodes run a speaker: the DaemonSet's nodeSelector and tolerations, as values.

The speaker's gossip join list comes from the Node objects (MetalLB reads the speaker pods
instead, which would need RBAC on Pods). A node the DaemonSet cannot run on (a Windows
node, a node tainted for other work) has no speaker: joining it only costs connection
timeouts and log lines. `runs_speaker` answers from what a Node object says, with the
selector and tolerations of `deploy/speaker.yaml` (a test keeps the two equal) plus the
tolerations the DaemonSet controller adds to every DaemonSet pod. A node wrongly left out
costs little: its speaker joins us (its own list has us) and gossip spreads the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTOMATIC_TOLERATIONS",
    "SPEAKER_NODE_SELECTOR",
    "SPEAKER_TOLERATIONS",
    "Toleration",
    "runs_speaker",
]

SPEAKER_NODE_SELECTOR: Mapping[str, str] = {"kubernetes.io/os": "linux"}
"""deploy/speaker.yaml's nodeSelector."""

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration (operator Exists when `value` is None, else Equal)."""

    key: str
    effect: str | None = None
    value: str | None = None

    def tolerates(self, taint: Mapping[str, Any]) -> bool:
        if self.key != taint.get("key"):
            return False
        if self.effect is not None and self.effect != taint.get("effect"):
            return False
        return self.value is None or self.value == taint.get("value")

    def manifest(self) -> dict[str, str]:
        """As written in a pod spec."""
        out = {"key": self.key, "operator": "Exists" if self.value is None else "Equal"}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


SPEAKER_TOLERATIONS = (
    Toleration("node-role.kubernetes.io/master", "NoSchedule"),
    Toleration("node-role.kubernetes.io/control-plane", "NoSchedule"),
)
"""deploy/speaker.yaml's tolerations."""

AUTOMATIC_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    Toleration("node.kubernetes.io/network-unavailable", "NoSchedule"),
)
"""What the DaemonSet controller adds to every DaemonSet pod (network-unavailable: to
hostNetwork pods), so cordoned, pressured or not-ready nodes keep their speaker."""


def runs_speaker(
    node: Mapping[str, Any],
    node_selector: Mapping[str, str] = SPEAKER_NODE_SELECTOR,
    tolerations: tuple[Toleration, ...] = SPEAKER_TOLERATIONS + AUTOMATIC_TOLERATIONS,
) -> bool:
    """Can the speaker DaemonSet place a pod on this Node object?"""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in node_selector.items()):
        return False
    for taint in (node.get("spec") or {}).get("taints") or []:
        if not isinstance(taint, Mapping) or taint.get("effect") not in _BLOCKING_EFFECTS:
            continue
        if not any(t.tolerates(taint) for t in tolerations):
            return False
    return True
