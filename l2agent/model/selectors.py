"""Kubernetes label selectors (matchLabels + matchExpressions), pure.

MetalLB resolves every selector in its configuration (node, pool, service and namespace
selectors) with `metav1.LabelSelectorAsSelector`; this module gives the same answers:
the requirements are ANDed, an empty selector matches everything, and a list of selectors
(the CRDs' `[]LabelSelector` fields) matches when any one of them does.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from l2agent.errors import ConfigError

__all__ = [
    "LabelSelector",
    "Operator",
    "Requirement",
    "any_matches",
    "parse_selectors",
    "selectors_disjoint",
]


class Operator(enum.Enum):
    """matchExpressions operators; `.value` is the spelling in YAML."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One matchExpressions entry; `values` is sorted so equal selectors compare equal."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            raise ConfigError("label selector requirement has an empty key")
        needs_values = self.operator in (Operator.IN, Operator.NOT_IN)
        if needs_values and not self.values:
            raise ConfigError(
                f"label selector operator {self.operator.value} on {self.key!r} needs values"
            )
        if not needs_values and self.values:
            raise ConfigError(
                f"label selector operator {self.operator.value} on {self.key!r} takes no values"
            )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: NotIn and DoesNotExist match when the key is absent."""
        present = self.key in labels
        if self.operator is Operator.EXISTS:
            return present
        if self.operator is Operator.DOES_NOT_EXIST:
            return not present
        if self.operator is Operator.IN:
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A `metav1.LabelSelector`; every requirement must hold (matchLabels included)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def from_dict(cls, obj: Any, *, where: str = "label selector") -> LabelSelector:
        """Build from the YAML shape; raises `ConfigError` naming `where` on bad input."""
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(obj).__name__}")
        unknown = set(obj) - {"matchLabels", "matchExpressions"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        raw_labels = obj.get("matchLabels") or {}
        if not isinstance(raw_labels, Mapping):
            raise ConfigError(f"{where}: matchLabels must be a mapping")
        labels = tuple(sorted((str(k), _label_value(v)) for k, v in raw_labels.items()))
        raw_exprs = obj.get("matchExpressions") or []
        if not isinstance(raw_exprs, list):
            raise ConfigError(f"{where}: matchExpressions must be a list")
        exprs = []
        for raw in raw_exprs:
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}: each matchExpressions entry must be a mapping")
            try:
                op = Operator(raw.get("operator"))
            except ValueError:
                raise ConfigError(
                    f"{where}: unknown operator {raw.get('operator')!r} "
                    f"(expected In, NotIn, Exists or DoesNotExist)"
                ) from None
            values = raw.get("values") or []
            if not isinstance(values, list):
                raise ConfigError(f"{where}: matchExpressions values must be a list")
            try:
                exprs.append(
                    Requirement(
                        key=str(raw.get("key") or ""),
                        operator=op,
                        values=tuple(sorted(_label_value(v) for v in values)),
                    )
                )
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc.message}") from None
        return cls(match_labels=labels, match_expressions=tuple(exprs))

    @property
    def empty(self) -> bool:
        """An empty selector selects everything."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every matchLabels pair and every expression holds for `labels`."""
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)


def _label_value(value: Any) -> str:
    """YAML may hand us `true` or `5` where Kubernetes has strings; compare as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_selectors(raw: Any, *, where: str) -> tuple[LabelSelector, ...]:
    """Parse a `[]LabelSelector` field, rejecting duplicates as MetalLB's webhooks do."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of label selectors")
    out: list[LabelSelector] = []
    for i, item in enumerate(raw):
        sel = LabelSelector.from_dict(item, where=f"{where}[{i}]")
        if sel in out:
            raise ConfigError(f"{where}: duplicate selector at index {i}")
        out.append(sel)
    return tuple(out)


def any_matches(selectors: Iterable[LabelSelector], labels: Mapping[str, str]) -> bool:
    """OR across a selector list (an empty list matches nothing: callers decide what it means)."""
    return any(sel.matches(labels) for sel in selectors)


@dataclass(frozen=True, slots=True)
class _KeyConstraint:
    """What one selector demands of one label key: presence and the values it allows."""

    present: bool | None = None
    allowed: frozenset[str] | None = None
    denied: frozenset[str] = frozenset()


def _constraints(sel: LabelSelector) -> dict[str, _KeyConstraint]:
    out: dict[str, _KeyConstraint] = {}

    def add(
        key: str, present: bool | None, allowed: frozenset[str] | None, denied: frozenset[str]
    ) -> None:
        c = out.get(key, _KeyConstraint())
        merged_present = c.present if present is None else present
        if c.present is not None and present is not None and c.present != present:
            merged_present = None  # contradictory inside one selector: never matches anyway
        merged_allowed = (
            c.allowed
            if allowed is None
            else (allowed if c.allowed is None else c.allowed & allowed)
        )
        out[key] = _KeyConstraint(merged_present, merged_allowed, c.denied | denied)

    for key, value in sel.match_labels:
        add(key, True, frozenset({value}), frozenset())
    for req in sel.match_expressions:
        if req.operator is Operator.IN:
            add(req.key, True, frozenset(req.values), frozenset())
        elif req.operator is Operator.NOT_IN:
            add(req.key, None, None, frozenset(req.values))
        elif req.operator is Operator.EXISTS:
            add(req.key, True, None, frozenset())
        else:
            add(req.key, False, None, frozenset())
    return out


def _pair_disjoint(a: LabelSelector, b: LabelSelector) -> bool:
    ca, cb = _constraints(a), _constraints(b)
    for key in ca.keys() & cb.keys():
        x, y = ca[key], cb[key]
        needs = x.present is True or y.present is True
        forbids = x.present is False or y.present is False
        if needs and forbids:
            return True
        if x.allowed is None:
            allowed = y.allowed
        elif y.allowed is None:
            allowed = x.allowed
        else:
            allowed = x.allowed & y.allowed
        if allowed is not None and not (allowed - x.denied - y.denied):
            return True
    return False


def selectors_disjoint(a: Iterable[LabelSelector], b: Iterable[LabelSelector]) -> bool:
    """True when no label set can match both selector lists (each an OR of selectors).

    An empty list matches everything, so it is never disjoint.  Used when no Node objects
    are known: two BGPPeers for `role: primary` and `role: secondary` provably never meet
    on one node.  False means "they may meet" (the check is sound, not complete).
    """
    la, lb = list(a), list(b)
    if not la or not lb:
        return False
    return all(_pair_disjoint(x, y) for x in la for y in lb)
