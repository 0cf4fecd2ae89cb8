"""Hostile bytes into every wire decoder: only MalformedMessage may come out, and fast.

Covers random bytes, truncated and corrupted real messages (from Go's golden vectors),
well-formed msgpack with wrong field types, unknown types, lying compound counts and
oversized lengths, through the codec, the packet path and the stream reader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip._lzw import lzw_decompress
from gossip.codec import decode_message, decode_stream_message
from gossip.errors import MalformedMessage
from gossip.framing import (
    StreamReader,
    WireOptions,
    open_packet,
    split_compound,
    split_payload,
)
from gossip.keyring import Keyring

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "gossip" / "go_golden.json"
SEEDS = [bytes.fromhex(v) for v in json.loads(GOLDEN_PATH.read_text()).values()]
FIELDS = [
    "SeqNo", "Node", "SourceAddr", "SourceNode", "SourcePort", "Target", "Port", "Nack",
    "Payload", "Incarnation", "From", "Addr", "Meta", "Vsn", "Join", "Nodes",
    "UserStateLen", "Name", "State", "UserMsgLen", "Error", "Algo", "Buf",
]  # fmt: skip
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYED = WireOptions(keyring=Keyring((b"k" * 32,)), verify_incoming=False)


def _all_paths(data: bytes) -> None:
    """Run `data` through every decoder; anything but MalformedMessage fails the test."""
    for decode in (decode_message, decode_stream_message):
        try:
            decode(data)
        except MalformedMessage:
            pass
    for options in (WireOptions(), KEYED, WireOptions(label=b"x")):
        try:
            split = split_payload(open_packet(data, options))
        except MalformedMessage:
            continue
        for part in split.messages:
            try:
                decode_message(part)
            except MalformedMessage:
                pass
    for expect_label in (False, True):
        reader = StreamReader(WireOptions(), expect_label=expect_label)
        try:
            for i in range(0, len(data), 7):
                if reader.feed(data[i : i + 7]) is not None:
                    break
            else:
                reader.eof()
        except MalformedMessage:
            pass
    try:
        lzw_decompress(data, 1 << 16)
    except MalformedMessage:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _all_paths(data)


@SETTINGS
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_and_corrupted_go_messages(seed: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(seed)))
    _all_paths(seed[:cut])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255))))
    corrupted = bytearray(seed)
    for pos, value in flips:
        corrupted[pos] = value
    _all_paths(bytes(corrupted))


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.binary(max_size=40)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=8)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), children, max_size=8)
    ),
    max_leaves=20,
)


@SETTINGS
@given(
    st.integers(0, 255),
    st.dictionaries(st.sampled_from(FIELDS), _msgpack_values, max_size=10),
    st.booleans(),
    st.binary(max_size=20),
)
def test_wrong_field_types(kind: int, fields: dict, bin_type: bool, tail: bytes) -> None:
    body = msgpack.packb(fields, use_bin_type=bin_type)
    _all_paths(bytes([kind]) + body + tail)
    _all_paths(bytes([kind]) + body + body + tail)  # push/pull: header then "states"


@SETTINGS
@given(
    st.integers(0, 255),
    st.lists(st.integers(0, 0xFFFF), max_size=300),
    st.binary(max_size=200),
)
def test_lying_compounds(count: int, lengths: list[int], rest: bytes) -> None:
    data = bytes([7, count]) + b"".join(struct.pack(">H", n) for n in lengths) + rest
    try:
        parts, _truncated = split_compound(data)
        assert sum(map(len, parts)) <= len(data)
    except MalformedMessage:
        pass
    _all_paths(data)


@SETTINGS
@given(st.sampled_from([0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xC6, 0xC5]), st.binary(max_size=8))
def test_oversized_lengths(prefix: int, rest: bytes) -> None:
    for kind in (0, 4, 6, 8, 9):
        _all_paths(
            bytes([kind, 0x81, 0xA3]) + b"Buf" + bytes([prefix]) + b"\xff\xff\xff\xff" + rest
        )
        _all_paths(bytes([kind, prefix, 0xFF, 0xFF, 0xFF, 0xFF]) + rest)
    _all_paths(b"\x0a\xff\xff\xff\xff" + rest)  # a 4 GiB encrypted stream
