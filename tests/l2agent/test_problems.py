"""The one rule that says what a configuration problem costs (`l2agent.model.problems`)."""

from __future__ import annotations

import pytest

from l2agent.model.problems import Cost, ObjectProblem, ProblemReason, cost
from l2agent.model.snapshot import build_state


def _problem(kind: str, reason: ProblemReason = ProblemReason.INVALID) -> ObjectProblem:
    return ObjectProblem(kind, "metallb-system", "x", reason, f"{kind} x: bad")


@pytest.mark.parametrize(
    ("kind", "reason", "expected"),
    [
        # a bad pool or advertisement costs only itself (it used to refuse everything)
        ("IPAddressPool", ProblemReason.INVALID, Cost.OBJECT),
        ("IPAddressPool", ProblemReason.OVERLAP, Cost.OBJECT),
        ("L2Advertisement", ProblemReason.DUPLICATE, Cost.OBJECT),
        ("L2Advertisement", ProblemReason.INVALID, Cost.OBJECT),
        ("BGPPeer", ProblemReason.CONFLICT, Cost.OBJECT),
        ("BGPAdvertisement", ProblemReason.MISSING_REFERENCE, Cost.OBJECT),
        ("Service", ProblemReason.INVALID, Cost.OBJECT),
        ("Node", ProblemReason.INVALID, Cost.OBJECT),
        ("Namespace", ProblemReason.INVALID, Cost.OBJECT),
        ("EndpointSlice", ProblemReason.DUPLICATE, Cost.OBJECT),
        ("", ProblemReason.NOT_AN_OBJECT, Cost.OBJECT),
        ("ConfigMap", ProblemReason.UNKNOWN_KIND, Cost.NOTHING),
        ("BGPPeer", ProblemReason.UNSUPPORTED_KIND, Cost.NOTHING),
    ],
)
def test_cost_table(kind: str, reason: ProblemReason, expected: Cost) -> None:
    assert cost(_problem(kind, reason)) is expected


def test_problems_name_their_object() -> None:
    result = build_state(
        [
            {
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"type": "LoadBalancer", "ports": "not a list"},
            },
            {"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "shop"}},
        ]
    )
    service, configmap = result.problems
    assert (service.kind, service.namespace, service.name) == ("Service", "shop", "web")
    assert service.reason is ProblemReason.INVALID
    assert service.ref == "Service shop/web"
    assert configmap.reason is ProblemReason.UNKNOWN_KIND
    assert result.dropped == (service,)
    assert result.stale == ()  # a bad Service is no configuration object
