"""Codec against bytes produced by the real Go memberlist (tests/data/gossip/go_golden.json).

The golden file was written by tests/gopeer/golden (memberlist v0.2.2's own encode(),
compiled from Debian's sources); test_interop_go.py regenerates it and checks it is current.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossip.codec import (
    IntStyle,
    decode_message,
    decode_push_node_state,
    decode_push_pull_header,
    decode_stream_message,
    decode_user_msg_header,
    encode_message,
    encode_push_node_state,
    encode_stream_message,
    pack_map,
)
from gossip.errors import MalformedMessage, MalformedReason
from gossip.messages import (
    DEFAULT_VSN,
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    Message,
    NackResp,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
    addr_from_bytes,
)

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "gossip" / "go_golden.json"
GOLDEN = {k: bytes.fromhex(v) for k, v in json.loads(GOLDEN_PATH.read_text()).items()}
LO = bytes([127, 0, 0, 1])
LONG = "n" * 36

# name in the golden file -> the message it must encode from / decode to
MESSAGES: dict[str, Message] = {
    "ping": Ping(seq_no=1, node="a"),
    "ping_source": Ping(seq_no=1, node="a", source_addr=LO, source_node="b", source_port=7946),
    "ping_long_name": Ping(seq_no=0xFFFF_FFFF, node=LONG),
    "indirect": IndirectPingReq(
        seq_no=7,
        target=bytes([10, 0, 0, 3]),
        port=7946,
        node="c",
        nack=True,
        source_addr=bytes([10, 0, 0, 1]),
        source_node="a",
        source_port=7946,
    ),
    "ack_nil": AckResp(seq_no=1),
    "ack_payload": AckResp(seq_no=70000, payload=b"pong"),
    "nack": NackResp(seq_no=7),
    "err": ErrResp(error="boom"),
    "suspect": Suspect(incarnation=2, node="a", from_node="b"),
    "dead_leave": Dead(incarnation=2, node="a", from_node="a"),
    "alive": Alive(incarnation=1, node="a", addr=LO, port=7946, meta=b"hi"),
    "alive_nil_meta": Alive(incarnation=65536, node="node-1", addr=LO, port=80),
    "alive_v4_mapped": Alive(incarnation=1, node="a", addr=bytes(10) + b"\xff\xff" + LO, port=7946),
    "alive_meta_512": Alive(
        incarnation=3,
        node=LONG,
        addr=bytes.fromhex("20010db8000000000000000000000001"),
        port=7946,
        meta=b"\xfe" * 512,
    ),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encode_matches_go(name: str) -> None:
    assert encode_message(MESSAGES[name]).hex() == GOLDEN[name].hex()


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_decode_go_bytes(name: str) -> None:
    assert decode_message(GOLDEN[name]) == MESSAGES[name]


def test_spec_examples() -> None:
    # §3.5 of the wire spec, printed by the Go encoder when the spec was written.
    assert encode_message(Ping(1, "a")).hex() == "0082a44e6f6465a161a55365714e6f01"
    assert encode_message(NackResp(7)).hex() == "0b81a55365714e6f07"
    assert encode_message(ErrResp("boom")).hex() == "0d81a54572726f72a4626f6f6d"


def test_nil_and_empty_payload_both_decode_to_empty() -> None:
    # Go sends nil (c0) without a delegate and a0 for an empty non-nil slice.
    assert decode_message(GOLDEN["ack_empty_300"]) == AckResp(seq_no=300)


def test_push_pull_header_both_int_styles() -> None:
    pp = PushPull(join=True, states=())
    # go-msgpack 0.5.x (Debian, memberlist <= 0.5.0): Nodes 200 -> cc c8
    header05, _ = decode_push_pull_header(GOLDEN["push_pull_header_200"], 1)
    assert (header05.nodes, header05.user_state_len, header05.join) == (200, 0, True)
    # go-msgpack v2 (memberlist >= 0.5.1): Nodes 200 -> d1 00 c8 (spec §3.5)
    v2 = bytes.fromhex("0683a44a6f696ec3a54e6f646573d100c8ac5573657253746174654c656e00")
    header_v2, _ = decode_push_pull_header(v2, 1)
    assert header_v2 == header05
    big = decode_push_pull_header(GOLDEN["push_pull_header_70000"], 1)[0]
    assert (big.nodes, big.user_state_len, big.join) == (3, 70000, False)
    assert encode_stream_message(pp)[:1] == b"\x06"


def test_int_style_v2_encoding() -> None:
    from gossip.codec import _Int

    assert pack_map({"Nodes": _Int(200)}, IntStyle.GO_MSGPACK_V2).hex().endswith("d100c8")
    assert pack_map({"Nodes": _Int(200)}, IntStyle.GO_MSGPACK_05).hex().endswith("ccc8")
    assert pack_map({"Nodes": _Int(70000)}, IntStyle.GO_MSGPACK_V2).hex().endswith("d200011170")
    assert pack_map({"Nodes": _Int(5)}, IntStyle.GO_MSGPACK_V2).hex().endswith("05")


def test_push_node_state_golden() -> None:
    alive = PushNodeState("a", LO, 7946, b"", 1, NodeState.ALIVE)
    left = PushNodeState("b", LO, 7947, b"m", 9, NodeState.LEFT)
    assert encode_push_node_state(alive) == GOLDEN["push_node_state"]
    assert encode_push_node_state(left) == GOLDEN["push_node_state_left"]
    assert decode_push_node_state(GOLDEN["push_node_state_left"])[0] == left


def test_push_pull_roundtrip_with_user_state() -> None:
    states = tuple(
        PushNodeState(f"n{i}", LO, 7946 + i, b"meta" * i, i + 1, NodeState(i % 4))
        for i in range(40)
    )
    pp = PushPull(join=False, states=states, user_state=b"\x00user\xff" * 30)
    for style in IntStyle:
        data = encode_stream_message(pp, style) + b"trailing"
        decoded, end = decode_stream_message(data)
        assert decoded == pp
        assert data[end:] == b"trailing"


def test_user_msg_forms() -> None:
    msg = UserMsg(payload=b"hello")
    assert encode_message(msg) == b"\x08hello"
    stream = encode_stream_message(msg)
    assert stream[: len(GOLDEN["user_msg_header"])] == GOLDEN["user_msg_header"]
    assert decode_user_msg_header(stream, 1)[0].user_msg_len == 5
    assert decode_stream_message(stream)[0] == msg
    assert decode_message(b"\x08hello") == msg


def test_go_leniency_is_accepted() -> None:
    # Unknown keys skipped, bin instead of str, Vsn as an int array, bool as 0/1, keys unsorted.
    import msgpack

    body = msgpack.packb(
        {
            "Zzz": [1, 2],
            "Vsn": [1, 5, 2, 0, 0, 0],
            "Node": b"a",
            "Port": 7946,
            "Addr": LO,
            "Incarnation": 3,
            "Meta": None,
        },
        use_bin_type=True,
    )
    alive = decode_message(b"\x04" + body)
    assert alive == Alive(incarnation=3, node="a", addr=LO, port=7946, vsn=DEFAULT_VSN)
    nack_req = msgpack.packb(
        {"SeqNo": 1, "Target": LO, "Port": 1, "Node": "x", "Nack": 1}, use_bin_type=False
    )
    assert isinstance(decode_message(b"\x01" + nack_req), IndirectPingReq)
    # Missing keys are zero values, like Go.
    assert decode_message(b"\x00\x80") == Ping(seq_no=0, node="")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", MalformedReason.EMPTY),
        (b"\x63", MalformedReason.UNKNOWN_TYPE),
        (b"\x07", MalformedReason.UNKNOWN_TYPE),  # a wrapper is not a message
        (b"\x00", MalformedReason.TRUNCATED),
        (b"\x00\x82\xa4Node", MalformedReason.TRUNCATED),
        (b"\x00\x91\x01", MalformedReason.BAD_FIELD_TYPE),  # array, not a map
        (b"\x00\x81\xa5SeqNo\xa1x", MalformedReason.BAD_FIELD_TYPE),
        (b"\x00\x81\xa5SeqNo\xcf" + b"\xff" * 8, MalformedReason.BAD_FIELD_VALUE),
        (b"\x00\x81\xa5SeqNo\xff", MalformedReason.BAD_FIELD_VALUE),  # -1
        (b"\x00\x81\xa4Node\xa2\xff\xfe", MalformedReason.BAD_FIELD_VALUE),  # not UTF-8
        (b"\x00\x81\x01\x02", MalformedReason.BAD_FIELD_TYPE),  # int key
        (b"\x04\x81\xa3Vsn\xa3\x01\x05\x02", MalformedReason.BAD_FIELD_VALUE),
        (b"\x00\xc1", MalformedReason.BAD_MSGPACK),  # reserved byte
        (b"\x00\xdb\xff\xff\xff\xff", MalformedReason.TRUNCATED),  # 4 GiB claimed, none read
        (b"\x00\xdf\xff\xff\xff\xff", MalformedReason.TOO_LARGE),
    ],
)
def test_bad_input_raises_malformed(data: bytes, reason: MalformedReason) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_message(data)
    assert info.value.reason is reason


def test_push_pull_limits() -> None:
    from gossip.codec import _Int

    lying = b"\x06" + pack_map({"Nodes": _Int(1 << 21), "UserStateLen": _Int(0), "Join": True})
    with pytest.raises(MalformedMessage) as info:
        decode_stream_message(lying)
    assert info.value.reason is MalformedReason.TOO_LARGE
    short = b"\x06" + pack_map({"Nodes": _Int(50), "UserStateLen": _Int(0), "Join": True})
    with pytest.raises(MalformedMessage) as info:
        decode_stream_message(short)
    assert info.value.reason is MalformedReason.TRUNCATED
    bad_state = b"\x06" + pack_map({"Nodes": _Int(1), "UserStateLen": _Int(0), "Join": True})
    bad_state += pack_map({"Name": "a", "Addr": LO, "State": _Int(9), "Vsn": DEFAULT_VSN})
    with pytest.raises(MalformedMessage) as info:
        decode_stream_message(bad_state)
    assert info.value.reason is MalformedReason.BAD_FIELD_VALUE


def test_addresses() -> None:
    assert str(addr_from_bytes(LO)) == "127.0.0.1"
    assert str(addr_from_bytes(bytes(10) + b"\xff\xff" + LO)) == "127.0.0.1"
    assert str(addr_from_bytes(bytes.fromhex("20010db8000000000000000000000001"))) == "2001:db8::1"
    with pytest.raises(MalformedMessage):
        addr_from_bytes(b"\x01\x02")
