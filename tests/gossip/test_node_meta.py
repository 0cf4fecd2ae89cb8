"""Node meta: our records round-trip, other members' meta is told apart, nothing raises."""

from __future__ import annotations

import random

import pytest

from gossip.errors import LocalError
from gossip.messages import META_MAX_SIZE
from gossip.node_meta import (
    KeyAdvert,
    MetaProblem,
    NodeMeta,
    decode_meta,
    encode_meta,
)

A, B, C = b"A" * 8, b"B" * 8, b"C" * 8


def test_keys_record_round_trips_and_is_deterministic() -> None:
    meta = NodeMeta(keys=KeyAdvert(primary=A, target=B, installed=frozenset({C, B, A})))
    data = encode_meta(meta)
    # magic, version 1, KEYS record of 24 bytes: primary, target, the rest sorted
    assert data == b"L2\x01" + b"\x01\x18" + A + B + C
    assert decode_meta(data) == meta
    assert encode_meta(decode_meta(data)) == data  # type: ignore[arg-type]


def test_meta_without_records_is_ours_and_says_nothing() -> None:
    assert encode_meta(NodeMeta()) == b"L2\x01"
    assert decode_meta(b"L2\x01") == NodeMeta(keys=None)


def test_unknown_records_are_skipped_forward_compatibly() -> None:
    """A newer speaker adds record types; this reader keeps what it knows."""
    keys = b"\x01\x10" + A + A
    data = b"L2\x01" + b"\x07\x03xyz" + keys + b"\xfe\x00"
    assert decode_meta(data) == NodeMeta(
        keys=KeyAdvert(primary=A, target=A, installed=frozenset({A}))
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", MetaProblem.EMPTY),  # MetalLB's speakers, Go memberlist peers
        (b"zone=a", MetaProblem.FOREIGN),  # some other application's meta
        (b"L2", MetaProblem.FOREIGN),  # too short for a version
        (b"L2\x00", MetaProblem.FOREIGN),
        (b"L2\x02\x01\x10" + A + A, MetaProblem.NEWER_VERSION),
        (b"L2\x01\x01", MetaProblem.MALFORMED),  # record header cut
        (b"L2\x01\x01\x10" + A, MetaProblem.MALFORMED),  # value shorter than its length
        (b"L2\x01\x01\x08" + A, MetaProblem.MALFORMED),  # one fingerprint: no target
        (b"L2\x01\x01\x11" + A + A + b"x", MetaProblem.MALFORMED),  # not a multiple of 8
        (b"L2\x01\x01\x10" + A + A + b"\x01\x10" + A + A, MetaProblem.MALFORMED),  # twice
        (b"L2\x01" + b"\x09\xff" + b"x" * 255 + b"\x09\xff" + b"y" * 255, MetaProblem.MALFORMED),
    ],
)
def test_meta_we_cannot_use_says_why(data: bytes, problem: MetaProblem) -> None:
    assert decode_meta(data) is problem


def test_random_meta_never_raises() -> None:
    rng = random.Random(10)
    for _ in range(5000):
        n = rng.randrange(0, META_MAX_SIZE + 1)
        data = (b"L2\x01" if rng.random() < 0.7 else b"") + rng.randbytes(n)
        result = decode_meta(data[:META_MAX_SIZE])
        assert isinstance(result, (NodeMeta, MetaProblem))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"primary": b"short", "target": A, "installed": frozenset({A})},
        {"primary": A, "target": B, "installed": frozenset({A})},  # target not installed
        {"primary": A, "target": A, "installed": frozenset(bytes([i]) * 8 for i in range(31))},
    ],
)
def test_an_advert_checks_itself(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalError):
        KeyAdvert(**kwargs)  # type: ignore[arg-type]


def test_the_largest_advert_fits_memberlist_meta() -> None:
    fps = frozenset(bytes([i]) * 8 for i in range(30))
    first = min(fps)
    data = encode_meta(NodeMeta(keys=KeyAdvert(first, first, fps)))
    assert len(data) <= META_MAX_SIZE
    assert decode_meta(data) == NodeMeta(keys=KeyAdvert(first, first, fps))
