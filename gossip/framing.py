"""memberlist's wrappers around messages: compound, compress, CRC, encryption and label.

On UDP the layers are, outermost first: `[label] encrypt( [crc] ( [compress] ( compound |
message ) ) )`; `open_packet` undoes the label, encryption and CRC, `split_payload` undoes
compound and compress (which nest in any order) into single messages. On TCP a stream
carries one message each way: `[label] [encrypt] ( [compress] message )`; `seal_stream`
builds one and `StreamReader` parses one incrementally as bytes arrive.

Everything here is pure: nonces come from a caller's `random_bytes`, and every length read
from the wire is checked against a limit before it is trusted.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from gossip._lzw import lzw_compress, lzw_decompress
from gossip.codec import (
    MAX_PUSH_STATE_BYTES,
    encode_compress_body,
    message_type,
    unpack_one,
)
from gossip.errors import DecryptFailed, LocalError, MalformedMessage, MalformedReason
from gossip.keyring import RandomBytes, encrypted_length
from gossip.messages import CompressionAlgo, MessageType
from gossip.stream_parser import StreamLimits, StreamMessage, StreamParser
from gossip.wire_options import WireOptions, check_label

__all__ = [
    "COMPOUND_MAX_PARTS",
    "MAX_DECOMPRESSED_PACKET",
    "MAX_DECOMPRESSED_STREAM",
    "MAX_NESTING",
    "MAX_PACKET_LZW_INPUT",
    "MAX_PACKET_PARTS",
    "MAX_STREAM_BYTES",
    "SplitPayload",
    "StreamMessage",
    "StreamReader",
    "WireOptions",
    "add_crc",
    "add_label",
    "compress_message",
    "decompress_message",
    "make_compound",
    "open_packet",
    "packet_overhead",
    "seal_packet",
    "seal_stream",
    "split_compound",
    "split_payload",
    "strip_crc",
    "strip_label",
]

COMPOUND_MAX_PARTS = 127
"""Keep compounds under 128 parts: 0.2.x decoders mis-parse larger ones (spec §5.2)."""
MAX_NESTING = 4
"""How deep compound/compress wrappers may nest in one packet before we give up."""
MAX_DECOMPRESSED_PACKET = 64 * 1024
"""What all compress wrappers of one datagram may expand to, together (Go reads datagrams
of up to 64 KiB; a real peer compresses at most one UDP buffer, 1400 bytes by default)."""
MAX_PACKET_LZW_INPUT = 16 * 1024
"""Compressed bytes one datagram may make us decode, together (LZW costs ~0.25 us/byte)."""
MAX_PACKET_PARTS = 255
"""Parts (messages and bad parts) one datagram may carry through all its wrappers: a
compound holds at most 255, and a nest of wrappers must not multiply that."""
MAX_DECOMPRESSED_STREAM = 2 * MAX_PUSH_STATE_BYTES
"""memberlist HEAD's limit on decompressed stream messages (40 MiB)."""
MAX_STREAM_BYTES = MAX_PUSH_STATE_BYTES + 1024 * 1024
"""The most raw bytes a StreamReader buffers before it calls the stream too large."""
_CRC_HEADER = 5
_LABEL_MAX = 255


def _bad(reason: MalformedReason, detail: str) -> MalformedMessage:
    return MalformedMessage(reason, detail)


def packet_overhead(options: WireOptions) -> int:
    """Bytes the label and encryption add to a packet (subtracted from the 1400 budget).

    Like Go, the encryption overhead is charged whenever a key is installed.
    """
    overhead = 2 + len(options.label) if options.label else 0
    if options.keyring is not None:
        overhead += encrypted_length(options.encryption_version, 0)
    return overhead


# ---------------------------------------------------------------------------- compound


def make_compound(parts: list[bytes]) -> bytes:
    """`0x07 | count:u8 | count x len:u16 BE | parts...`"""
    if not 0 < len(parts) <= 255:
        raise LocalError(f"a compound holds 1..255 parts, not {len(parts)}")
    head = bytearray((MessageType.COMPOUND, len(parts)))
    for part in parts:
        if len(part) > 0xFFFF:
            raise LocalError("compound part longer than 65535 bytes")
        head += struct.pack(">H", len(part))
    return bytes(head) + b"".join(parts)


def split_compound(data: bytes) -> tuple[list[bytes], int]:
    """Parts of a compound (`data` starts with 0x07) and how many were cut off.

    Like Go, the parts that fit are returned and the rest counted as truncated.
    """
    if len(data) < 2:
        raise _bad(MalformedReason.TRUNCATED, "compound without a count")
    count = data[1]
    if count == 0:
        raise _bad(MalformedReason.BAD_COMPOUND, "compound of zero parts")
    lengths_end = 2 + 2 * count
    if len(data) < lengths_end:
        raise _bad(MalformedReason.TRUNCATED, f"compound of {count} parts has no room for lengths")
    lengths = struct.unpack(f">{count}H", data[2:lengths_end])
    parts: list[bytes] = []
    pos = lengths_end
    for i, length in enumerate(lengths):
        if pos + length > len(data):
            return parts, count - i
        parts.append(data[pos : pos + length])
        pos += length
    return parts, 0


# ---------------------------------------------------------------------------- compress


def compress_message(message: bytes) -> bytes:
    """`0x09 | compress{Algo: 0, Buf: lzw(message)}`."""
    return bytes([MessageType.COMPRESS]) + encode_compress_body(lzw_compress(message))


def decompress_message(data: bytes, max_size: int = MAX_DECOMPRESSED_PACKET) -> bytes:
    """The message inside a compress wrapper (`data` starts with 0x09)."""
    value, _ = unpack_one(data, 1)
    return _decompress_value(value, max_size)


def _decompress_value(value: object, max_size: int) -> bytes:
    if not isinstance(value, dict):
        raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress is not a map")
    algo = value.get(b"Algo", 0)
    buf = value.get(b"Buf")
    if isinstance(algo, bool) or not isinstance(algo, int):
        raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress.Algo is not an integer")
    if algo != CompressionAlgo.LZW:
        raise _bad(MalformedReason.BAD_COMPRESSION, f"unknown compression algorithm {algo}")
    if not isinstance(buf, bytes):
        raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress.Buf is not bytes")
    inner = lzw_decompress(buf, max_size)
    if not inner:
        raise _bad(MalformedReason.BAD_COMPRESSION, "decompressed to nothing")
    return inner


# ---------------------------------------------------------------------------- CRC, label


def add_crc(payload: bytes) -> bytes:
    """`0x0c | crc32:u32 BE | payload` (IEEE CRC-32 over the payload)."""
    return struct.pack(">BI", MessageType.HAS_CRC, binascii.crc32(payload)) + payload


def strip_crc(data: bytes) -> bytes:
    """The payload of a CRC wrapper, if `data` is one (5+ bytes starting 0x0c); else `data`."""
    if len(data) < _CRC_HEADER or data[0] != MessageType.HAS_CRC:
        return data
    (expected,) = struct.unpack_from(">I", data, 1)
    payload = data[_CRC_HEADER:]
    if binascii.crc32(payload) != expected:
        raise _bad(MalformedReason.BAD_CRC, "checksum mismatch")
    return payload


def add_label(data: bytes, label: bytes) -> bytes:
    """`0xf4 | len:u8 | label | data`; nothing added for an empty label."""
    if not label:
        return data
    if len(label) > _LABEL_MAX:
        raise LocalError("label longer than 255 bytes")
    return bytes((MessageType.HAS_LABEL, len(label))) + label + data


def strip_label(data: bytes) -> tuple[bytes, bytes]:
    """(label, rest); the label is b"" when there is no label header."""
    if not data or data[0] != MessageType.HAS_LABEL:
        return b"", data
    if len(data) < 2:
        raise _bad(MalformedReason.BAD_LABEL, "label header without a length")
    size = data[1]
    if size == 0:
        raise _bad(MalformedReason.BAD_LABEL, "zero-length label header")
    if len(data) < 2 + size:
        raise _bad(MalformedReason.BAD_LABEL, "label cut short")
    return data[2 : 2 + size], data[2 + size :]


# ---------------------------------------------------------------------------- packets


def seal_packet(
    payload: bytes,
    options: WireOptions,
    random_bytes: RandomBytes,
    *,
    crc: bool = False,
    compress: bool = False,
) -> bytes:
    """Wrap a message or compound for UDP, as memberlist's rawSendMsgPacket does.

    `compress` keeps the compressed form only if it is strictly shorter; `crc` should be set
    when the recipient is known to advertise pmax >= 5.
    """
    if compress:
        squeezed = compress_message(payload)
        if len(squeezed) < len(payload):
            payload = squeezed
    if crc:
        payload = add_crc(payload)
    if options.encrypts:
        assert options.keyring is not None
        payload = options.keyring.encrypt(
            payload, options.label, random_bytes, options.encryption_version
        )
    return add_label(payload, options.label)


def open_packet(data: bytes, options: WireOptions) -> bytes:
    """Undo label, encryption and CRC; the result still holds compound/compress wrappers."""
    label, data = strip_label(data)
    check_label(label, options)
    if options.keyring is not None:
        try:
            data = options.keyring.decrypt(data, options.label)
        except DecryptFailed:
            if options.verify_incoming:
                raise
    if not data:
        raise _bad(MalformedReason.EMPTY, "empty packet")
    return strip_crc(data)


@dataclass(frozen=True, slots=True)
class SplitPayload:
    """The single messages of a packet payload, what was wrong with the rest, and what
    it cost: `skipped` parts beyond the limit, `decompressed` bytes produced."""

    messages: tuple[bytes, ...]
    errors: tuple[MalformedMessage, ...]
    skipped: int = 0
    decompressed: int = 0


@dataclass(slots=True)
class _SplitBudget:
    parts: int
    decompressed: int
    lzw_input: int
    skipped: int = 0


def split_payload(
    payload: bytes, max_depth: int = MAX_NESTING, max_parts: int = MAX_PACKET_PARTS
) -> SplitPayload:
    """Flatten compound and compress wrappers into single messages (each with its type byte).

    A bad part does not spoil its siblings, as in Go: its error is collected instead. The
    work is bounded whatever the nesting: at most `max_parts` parts (messages and bad
    parts) are visited, and the packet shares one decompression budget
    (`MAX_DECOMPRESSED_PACKET` out, `MAX_PACKET_LZW_INPUT` in).
    """
    messages: list[bytes] = []
    errors: list[MalformedMessage] = []
    budget = _SplitBudget(max_parts, MAX_DECOMPRESSED_PACKET, MAX_PACKET_LZW_INPUT)
    _split(payload, max_depth, messages, errors, budget)
    used = MAX_DECOMPRESSED_PACKET - budget.decompressed
    return SplitPayload(tuple(messages), tuple(errors), budget.skipped, used)


def _split(
    data: bytes,
    depth: int,
    messages: list[bytes],
    errors: list[MalformedMessage],
    budget: _SplitBudget,
) -> None:
    if budget.parts <= 0:
        budget.skipped += 1
        return
    try:
        kind = message_type(data)
        if kind in (MessageType.COMPOUND, MessageType.COMPRESS):
            if depth <= 0:
                raise _bad(MalformedReason.NESTING_TOO_DEEP, "wrappers nested too deep")
            if kind is MessageType.COMPOUND:
                parts, truncated = split_compound(data)
                if truncated:
                    errors.append(_bad(MalformedReason.TRUNCATED, f"{truncated} parts cut off"))
            else:
                parts = [_decompress_part(data, budget)]
            for part in parts:
                _split(part, depth - 1, messages, errors, budget)
            return
    except MalformedMessage as exc:
        budget.parts -= 1
        errors.append(exc)
        return
    budget.parts -= 1
    messages.append(data)


def _decompress_part(data: bytes, budget: _SplitBudget) -> bytes:
    """One compress wrapper of a packet, charged to the packet's shared budget."""
    value, _ = unpack_one(data, 1)
    buf = value.get(b"Buf") if isinstance(value, dict) else None
    if isinstance(buf, bytes):
        if len(buf) > budget.lzw_input:
            raise _bad(MalformedReason.TOO_LARGE, "compressed data past the packet's budget")
        budget.lzw_input -= len(buf)
    inner = _decompress_value(value, budget.decompressed)
    budget.decompressed -= len(inner)
    return inner


# ---------------------------------------------------------------------------- streams


def seal_stream(
    message: bytes,
    options: WireOptions,
    random_bytes: RandomBytes,
    *,
    dialer: bool,
    compress: bool = True,
) -> bytes:
    """Wrap one stream message (type byte + stream-form body) for TCP.

    Go compresses every stream message when compression is on, whatever the size. Only the
    dialer writes the label header; both sides use the label as additional data.
    """
    if compress:
        message = compress_message(message)
    if options.encrypts:
        assert options.keyring is not None
        size = encrypted_length(options.encryption_version, len(message))
        prefix = struct.pack(">BI", MessageType.ENCRYPT, size)
        sealed = options.keyring.encrypt(
            message, prefix + options.label, random_bytes, options.encryption_version
        )
        message = prefix + sealed
    return add_label(message, options.label) if dialer else message


class StreamReader:
    """Parse one stream message as its bytes arrive (a whole-message convenience over
    `gossip.stream_parser.StreamParser`, with no work budget).

    `feed` returns None while more bytes are needed, the message once it is complete, and
    raises MalformedMessage as soon as the bytes cannot become a valid message. `eof` says
    the peer closed; it raises TRUNCATED if a message was under way. `expect_label` is true
    on the accepting side (the dialer's label header comes first); replies carry none.
    """

    __slots__ = ("_parser",)

    def __init__(self, options: WireOptions, *, expect_label: bool) -> None:
        limits = StreamLimits(max_bytes=MAX_PUSH_STATE_BYTES)
        self._parser = StreamParser(options, expect_label=expect_label, limits=limits)

    def feed(self, data: bytes) -> StreamMessage | None:
        self._parser.feed(data)
        return self._parser.step(1 << 62)

    def eof(self) -> None:
        """The peer closed its side; a partial message is an error."""
        self._parser.eof()
