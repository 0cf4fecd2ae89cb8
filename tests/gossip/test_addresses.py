"""`gossip.addresses`: the one parser for HOST[:PORT] texts."""

from __future__ import annotations

import pytest

from gossip.addresses import GOSSIP_PORT, format_address, parse_address, split_list
from gossip.errors import BadAddress


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", GOSSIP_PORT)),
        ("192.0.2.1:8000", ("192.0.2.1", 8000)),
        ("node-1.example", ("node-1.example", GOSSIP_PORT)),
        ("node-1.example:1", ("node-1.example", 1)),
        ("2001:db8::1", ("2001:db8::1", GOSSIP_PORT)),  # bare IPv6: the port is separate
        ("[2001:db8::1]", ("2001:db8::1", GOSSIP_PORT)),
        ("[2001:db8::1]:7000", ("2001:db8::1", 7000)),
        ("fe80::1%eth0", ("fe80::1%eth0", GOSSIP_PORT)),
        (" 192.0.2.1 ", ("192.0.2.1", GOSSIP_PORT)),
    ],
)
def test_parses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, GOSSIP_PORT) == expected


@pytest.mark.parametrize(
    "text",
    ["", ":7946", "192.0.2.1:", "192.0.2.1:x", "192.0.2.1:0", "192.0.2.1:65536", "[192.0.2.1]",
     "[2001:db8::1", "[2001:db8::1]7000", "[2001:db8::1]:", "2001:db8::g", "a,b"],
)  # fmt: skip
def test_refuses(text: str) -> None:
    with pytest.raises(BadAddress):
        parse_address(text, GOSSIP_PORT)


def test_empty_host_only_when_allowed() -> None:
    assert parse_address(":9000", 1, allow_empty_host=True) == ("", 9000)
    assert parse_address("", 1, allow_empty_host=True) == ("", 1)


@pytest.mark.parametrize(("host", "port"), [("192.0.2.1", 7946), ("2001:db8::1", 1), ("name", 80)])
def test_format_round_trips(host: str, port: int) -> None:
    assert parse_address(format_address(host, port), 0) == (host, port)


def test_split_list() -> None:
    assert split_list(["a,b", " c ", "", "d,,"]) == ["a", "b", "c", "d"]
