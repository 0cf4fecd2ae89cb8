"""Configuration problems as values, and the one rule that says what a problem costs.

`build_state` reports every object it could not use as an `ObjectProblem` (which object,
why, and a sentence for people). The static speaker, the Kubernetes speaker and the
controller all hand those problems to `cost()`, so the three apply one policy. Today's
policy: a bad object costs only itself (`Cost.OBJECT`): it is left out, everything else is
served, and what depended on it alone goes without it (an advertisement that names only a
left-out pool announces nothing; a Service holding IPs from a left-out pool keeps them,
see `l2agent.model.held`). Kinds l2agent does not act on cost nothing (`Cost.NOTHING`):
they are only reported. No problem refuses the whole configuration any more: with a
history-free rule every node, a freshly started one included, reaches the same state from
the same objects. Changing the policy means changing `cost()`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CONFIG_KINDS", "Cost", "ObjectProblem", "ProblemReason", "cost", "stale"]

#: Configuration kinds (what shapes where IPs go, as opposed to Services, Nodes, ...): while
#: one of them is left out, the configuration in force is not the one asked for, which the
#: stale-config metric (MetalLB's `metallb_k8s_client_config_stale_bool`) reports.
CONFIG_KINDS = frozenset(
    {"IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"}
)


class ProblemReason(enum.Enum):
    """Why an object was not used. The value is the metric label and Event wording."""

    INVALID = "invalid"  # a field does not parse or breaks a rule of its own
    DUPLICATE = "duplicate"  # a second object with the same name; the first one wins
    OVERLAP = "overlap"  # a pool whose CIDRs overlap an earlier pool's
    NOT_AN_OBJECT = "notAnObject"  # a document that is not a Kubernetes object at all
    CONFLICT = "conflict"  # clashes with an earlier object (peers on one node, LOCAL_PREF)
    MISSING_REFERENCE = "missingReference"  # names a Secret/BFDProfile/alias not there (yet)
    UNSUPPORTED_KIND = "unsupportedKind"  # a MetalLB kind this build does not act on
    UNKNOWN_KIND = "unknownKind"  # a kind l2agent does not read (ConfigMaps, ...)


class Cost(enum.Enum):
    """What a problem costs the rest of the configuration."""

    NOTHING = "nothing"  # reported; nothing is dropped
    OBJECT = "object"  # that object is left out; everything else is served


@dataclass(frozen=True, slots=True)
class ObjectProblem:
    """One object that was not used: which (kind, namespace, name), why, and a sentence.

    `message` is the full sentence for logs and Events (it names the object already);
    `namespace` is "" for cluster-scoped objects or when the object did not say.
    """

    kind: str
    namespace: str
    name: str
    reason: ProblemReason
    message: str

    @classmethod
    def about(cls, obj: Any, reason: ProblemReason, message: str) -> ObjectProblem:
        """A problem about a (possibly broken) plain-dict object."""
        kind = obj.get("kind") if isinstance(obj, Mapping) else None
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        name, namespace = meta.get("name"), meta.get("namespace")
        return cls(
            kind=kind if isinstance(kind, str) else "",
            namespace=namespace if isinstance(namespace, str) else "",
            name=name if isinstance(name, str) else "",
            reason=reason,
            message=message,
        )

    @property
    def ref(self) -> str:
        """`Kind ns/name` (or `Kind name`), for log lines."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '?'} {where or '<unnamed>'}"


def cost(problem: ObjectProblem) -> Cost:
    """The policy: what `problem` costs everything else (the only place that decides)."""
    if problem.reason in (ProblemReason.UNSUPPORTED_KIND, ProblemReason.UNKNOWN_KIND):
        return Cost.NOTHING
    # Anything else, a pool or an advertisement included, costs only its own object.
    # (MISSING_REFERENCE, MetalLB's transient error, is the same: the object waits for
    # what it names, a Secret that arrives after its BGPPeer.)
    return Cost.OBJECT


def stale(problems: Iterable[ObjectProblem]) -> tuple[ObjectProblem, ...]:
    """The configuration objects left out: while there are any, the configuration in force
    is not all that was asked for (the stale-config metric)."""
    return tuple(p for p in problems if p.kind in CONFIG_KINDS and cost(p) is Cost.OBJECT)
