"""`with_settings`: command-line FIELD=VALUE texts parsed by each field's type."""

from __future__ import annotations

import pytest

from gossip.config import fast, with_settings
from gossip.errors import LocalError


def test_values_are_parsed_by_field_type() -> None:
    cfg = with_settings(
        fast("n1"),
        [
            "probe_interval=0.05",
            "probe_copies=2",
            "refute_directly=off",
            "label=prod",
            "cidrs_allowed=192.0.2.0/24, 2001:db8::/32",
        ],
    )
    assert cfg.probe_interval == 0.05
    assert cfg.probe_copies == 2
    assert cfg.refute_directly is False
    assert cfg.label == "prod"
    assert cfg.cidrs_allowed == ("192.0.2.0/24", "2001:db8::/32")


@pytest.mark.parametrize("word", ["1", "true", "Yes", "ON"])
def test_true_words(word: str) -> None:
    assert with_settings(fast("n1"), [f"disable_tcp_pings={word}"]).disable_tcp_pings is True


@pytest.mark.parametrize(
    "item",
    [
        "refute_directly=flase",  # a typo is refused, not read as False
        "probe_copies=two",
        "probe_interval=fast",
        "no_such_field=1",
        "probe_interval",
        "cidrs_allowed=10.0.0.0/33",  # the config checks itself when built
    ],
)
def test_bad_values_are_refused(item: str) -> None:
    with pytest.raises(LocalError):
        with_settings(fast("n1"), [item])
