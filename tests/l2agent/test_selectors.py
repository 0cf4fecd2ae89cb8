"""Label selectors: Kubernetes' matchLabels/matchExpressions semantics."""

from __future__ import annotations

import pytest

from l2agent.errors import ConfigError
from l2agent.model.selectors import LabelSelector, any_matches, parse_selectors

LABELS = {"zone": "a", "tier": "web", "flag": "true"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        (None, True),
        ({"matchLabels": {"zone": "a"}}, True),
        ({"matchLabels": {"zone": "b"}}, False),
        ({"matchLabels": {"zone": "a", "tier": "db"}}, False),
        ({"matchLabels": {"flag": True}}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["c"]}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"zone": "a"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}],
            },
            False,
        ),
    ],
)
def test_matches(selector: object, expected: bool) -> None:
    assert LabelSelector.from_dict(selector).matches(LABELS) is expected


@pytest.mark.parametrize(
    "bad",
    [
        {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"operator": "Exists"}]},
        {"matchLabels": ["a"]},
        {"matchLable": {"a": "b"}},
        "zone=a",
    ],
)
def test_bad_selectors_raise_config_error(bad: object) -> None:
    with pytest.raises(ConfigError):
        LabelSelector.from_dict(bad, where="test")


def test_list_is_or_and_duplicates_rejected() -> None:
    sels = parse_selectors(
        [{"matchLabels": {"zone": "b"}}, {"matchLabels": {"tier": "web"}}], where="x"
    )
    assert any_matches(sels, LABELS)
    assert not any_matches(sels[:1], LABELS)
    assert not any_matches((), LABELS)
    with pytest.raises(ConfigError, match="duplicate"):
        parse_selectors([{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}], where="x")
