"""Framing (compound, CRC, LZW, label, packets, streams) against Go-produced bytes."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from gossip._lzw import lzw_compress, lzw_decompress
from gossip.codec import decode_message, encode_message, encode_stream_message
from gossip.errors import DecryptFailed, LocalError, MalformedMessage, MalformedReason
from gossip.framing import (
    StreamReader,
    WireOptions,
    add_crc,
    add_label,
    compress_message,
    decompress_message,
    make_compound,
    open_packet,
    packet_overhead,
    seal_packet,
    seal_stream,
    split_compound,
    split_payload,
    strip_crc,
    strip_label,
)
from gossip.keyring import Keyring
from gossip.messages import (
    AckResp,
    ErrResp,
    Message,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "gossip" / "go_golden.json"
GOLDEN = {k: bytes.fromhex(v) for k, v in json.loads(GOLDEN_PATH.read_text()).items()}
KEY = bytes(range(32))


def _counter_nonce() -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def test_compound_matches_go() -> None:
    parts = [GOLDEN["ping"], GOLDEN["suspect"]]
    assert make_compound(parts) == GOLDEN["compound"]
    assert split_compound(GOLDEN["compound"]) == (parts, 0)


def test_compound_truncated_keeps_whole_parts() -> None:
    cut = GOLDEN["compound"][:-3]
    assert split_compound(cut) == ([GOLDEN["ping"]], 1)
    with pytest.raises(MalformedMessage) as info:
        split_compound(b"\x07\x00")
    assert info.value.reason is MalformedReason.BAD_COMPOUND
    with pytest.raises(MalformedMessage) as info:
        split_compound(b"\x07\xff\x00\x01")  # 255 parts promised, no room for lengths
    assert info.value.reason is MalformedReason.TRUNCATED


def test_crc_matches_go() -> None:
    assert add_crc(GOLDEN["compound"]) == GOLDEN["compound_crc"]
    assert add_crc(GOLDEN["ping"]) == GOLDEN["ping_crc"]
    assert strip_crc(GOLDEN["ping_crc"]) == GOLDEN["ping"]
    corrupt = bytearray(GOLDEN["ping_crc"])
    corrupt[-1] ^= 1
    with pytest.raises(MalformedMessage) as info:
        strip_crc(bytes(corrupt))
    assert info.value.reason is MalformedReason.BAD_CRC


@pytest.mark.parametrize("name", ["ping", "compound", "lzw_big_plain"])
def test_lzw_compress_is_byte_identical_to_go(name: str) -> None:
    go_name = {"ping": "compress_ping", "compound": "compress_compound"}.get(name, "compress_big")
    assert compress_message(GOLDEN[name]) == GOLDEN[go_name]
    assert decompress_message(GOLDEN[go_name], 10**7) == GOLDEN[name]


def test_lzw_roundtrip_random() -> None:
    rng = random.Random(7)
    for size in (0, 1, 2, 3, 255, 256, 4000, 20000):
        for alphabet in (2, 16, 256):
            data = bytes(rng.randrange(alphabet) for _ in range(size))
            assert lzw_decompress(lzw_compress(data), 1 << 20) == data


def test_lzw_limits_and_garbage() -> None:
    bomb = lzw_compress(b"\x00" * 200_000)
    with pytest.raises(MalformedMessage) as info:
        lzw_decompress(bomb, 100_000)
    assert info.value.reason is MalformedReason.TOO_LARGE
    with pytest.raises(MalformedMessage) as info:
        lzw_decompress(lzw_compress(b"abc")[:-2], 100)  # no end code
    assert info.value.reason is MalformedReason.BAD_COMPRESSION
    with pytest.raises(MalformedMessage) as info:
        lzw_decompress(b"\x00\xff\xff\xff", 100)  # a code far beyond the table
    assert info.value.reason is MalformedReason.BAD_COMPRESSION


def test_label_header() -> None:
    assert add_label(b"x", b"") == b"x"
    labeled = add_label(b"payload", b"cluster-a")
    assert labeled[:2] == b"\xf4\x09"
    assert strip_label(labeled) == (b"cluster-a", b"payload")
    assert strip_label(b"payload") == (b"", b"payload")
    for bad in (b"\xf4", b"\xf4\x00abc", b"\xf4\x05ab"):
        with pytest.raises(MalformedMessage) as info:
            strip_label(bad)
        assert info.value.reason is MalformedReason.BAD_LABEL
    with pytest.raises(LocalError):
        add_label(b"x", b"l" * 256)


@pytest.mark.parametrize("label", [b"", b"lab"])
@pytest.mark.parametrize("keyring", [None, Keyring((KEY,))])
@pytest.mark.parametrize("crc", [False, True])
def test_packet_roundtrip(label: bytes, keyring: Keyring | None, crc: bool) -> None:
    opts = WireOptions(label=label, keyring=keyring)
    parts = [encode_message(Ping(5, "b")), encode_message(Suspect(3, "b", "a"))] * 20
    payload = make_compound(parts)
    packet = seal_packet(payload, opts, _counter_nonce(), crc=crc, compress=True)
    assert len(packet) < len(payload)  # repetitive: LZW kept
    split = split_payload(open_packet(packet, opts))
    assert split.errors == ()
    assert list(split.messages) == parts


def test_packet_label_and_key_mismatch() -> None:
    nonce = _counter_nonce()
    ping = encode_message(Ping(1, "a"))
    labeled = seal_packet(ping, WireOptions(label=b"x"), nonce)
    with pytest.raises(MalformedMessage) as info:
        open_packet(labeled, WireOptions(label=b"y"))
    assert info.value.reason is MalformedReason.LABEL_MISMATCH
    with pytest.raises(MalformedMessage) as info:
        open_packet(labeled, WireOptions())
    assert info.value.reason is MalformedReason.LABEL_MISMATCH
    assert open_packet(ping, WireOptions(label=b"y", skip_inbound_label_check=True)) == ping
    encrypted = seal_packet(ping, WireOptions(keyring=Keyring((KEY,))), nonce)
    with pytest.raises(DecryptFailed):
        open_packet(encrypted, WireOptions(keyring=Keyring((b"k" * 32,))))
    with pytest.raises(DecryptFailed):
        open_packet(ping, WireOptions(keyring=Keyring((KEY,))))
    # verify_incoming=False: plaintext accepted next to encrypted traffic (key rollout)
    relaxed = WireOptions(keyring=Keyring((KEY,)), verify_incoming=False)
    assert open_packet(ping, relaxed) == ping
    assert open_packet(encrypted, relaxed) == ping


def test_packet_overhead() -> None:
    assert packet_overhead(WireOptions()) == 0
    assert packet_overhead(WireOptions(label=b"abc")) == 5
    assert packet_overhead(WireOptions(keyring=Keyring((KEY,)), verify_outgoing=False)) == 29


def test_split_payload_collects_bad_parts() -> None:
    good = encode_message(Ping(1, "a"))
    nested = make_compound([good, compress_message(make_compound([good, b"\x63junk"]))])
    split = split_payload(nested)
    assert split.messages == (good, good)
    assert [e.reason for e in split.errors] == [MalformedReason.UNKNOWN_TYPE]
    deep = good
    for _ in range(10):
        deep = compress_message(deep)
    split = split_payload(deep)
    assert split.messages == ()
    assert split.errors[0].reason is MalformedReason.NESTING_TOO_DEEP


STREAM_MESSAGES = [
    Ping(9, "x", source_addr=bytes(4), source_node="y", source_port=1),
    AckResp(9),
    ErrResp("no"),
    UserMsg(b"\x00" * 3000),
    PushPull(
        join=True,
        states=tuple(
            PushNodeState(f"n{i}", bytes([10, 0, 0, i]), 7946, b"", i + 1, NodeState.ALIVE)
            for i in range(50)
        ),
        user_state=b"state",
    ),
]


@pytest.mark.parametrize("msg", STREAM_MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("label", [b"", b"lab"])
@pytest.mark.parametrize("keyring", [None, Keyring((KEY,))])
@pytest.mark.parametrize("compress", [False, True])
def test_stream_roundtrip_bytewise(
    msg: Message, label: bytes, keyring: Keyring | None, compress: bool
) -> None:
    opts = WireOptions(label=label, keyring=keyring)
    data = seal_stream(
        encode_stream_message(msg),
        opts,
        _counter_nonce(),
        dialer=True,
        compress=compress,
    )
    reader = StreamReader(opts, expect_label=True)
    step = max(1, len(data) // 40)
    result = None
    for i in range(0, len(data), step):
        assert result is None
        result = reader.feed(data[i : i + step])
    assert result is not None
    assert result.message == msg
    assert (result.label, result.encrypted, result.compressed) == (
        label,
        keyring is not None,
        compress,
    )


def test_stream_reply_has_no_label_and_encryption_rules() -> None:
    keyed = WireOptions(label=b"lab", keyring=Keyring((KEY,)))
    reply = seal_stream(encode_stream_message(AckResp(1)), keyed, _counter_nonce(), dialer=False)
    assert reply[:1] == b"\x0a"
    got = StreamReader(keyed, expect_label=False).feed(reply)
    assert got is not None and got.message == AckResp(1)
    plain = seal_stream(
        encode_stream_message(AckResp(1)), WireOptions(), _counter_nonce(), dialer=False
    )
    with pytest.raises(MalformedMessage) as info:
        StreamReader(WireOptions(keyring=Keyring((KEY,))), expect_label=False).feed(plain)
    assert info.value.reason is MalformedReason.UNENCRYPTED
    with pytest.raises(DecryptFailed):
        StreamReader(WireOptions(keyring=Keyring((b"z" * 16,))), expect_label=False).feed(reply)
    with pytest.raises(MalformedMessage) as info:
        StreamReader(WireOptions(), expect_label=False).feed(reply)
    assert info.value.reason is MalformedReason.DECRYPT_FAILED


def test_stream_limits() -> None:
    reader = StreamReader(WireOptions(keyring=Keyring((KEY,))), expect_label=False)
    with pytest.raises(MalformedMessage) as info:
        reader.feed(b"\x0a\x7f\xff\xff\xff")
    assert info.value.reason is MalformedReason.TOO_LARGE
    reader = StreamReader(WireOptions(), expect_label=False)
    assert reader.feed(b"\x08") is None
    with pytest.raises(MalformedMessage) as info:
        reader.eof()
    assert info.value.reason is MalformedReason.TRUNCATED
    with pytest.raises(MalformedMessage) as info:
        StreamReader(WireOptions(), expect_label=False).feed(b"\x04\x80")  # alive: not on streams
    assert info.value.reason is MalformedReason.UNKNOWN_TYPE


def test_go_compressed_stream_message_decodes() -> None:
    # Go compresses every stream message; a compressed compound is a packet form it sends.
    split = split_payload(GOLDEN["compress_compound"])
    assert [decode_message(m) for m in split.messages] == [Ping(1, "a"), Suspect(2, "a", "b")]
