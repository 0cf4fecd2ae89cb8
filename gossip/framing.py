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
    IntStyle,
    decode_stream_message,
    encode_compress_body,
    message_type,
    unpack_one,
)
from gossip.errors import DecryptFailed, LocalError, MalformedMessage, MalformedReason
from gossip.keyring import EncryptionVersion, Keyring, RandomBytes, encrypted_length
from gossip.messages import CompressionAlgo, Message, MessageType

__all__ = [
    "COMPOUND_MAX_PARTS",
    "MAX_DECOMPRESSED_PACKET",
    "MAX_DECOMPRESSED_STREAM",
    "MAX_NESTING",
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
MAX_DECOMPRESSED_PACKET = 1024 * 1024
"""A UDP payload is at most 64 KiB; this bounds what its LZW may expand to."""
MAX_DECOMPRESSED_STREAM = 2 * MAX_PUSH_STATE_BYTES
"""memberlist HEAD's limit on decompressed stream messages (40 MiB)."""
MAX_STREAM_BYTES = MAX_PUSH_STATE_BYTES + 1024 * 1024
"""The most raw bytes a StreamReader buffers before it calls the stream too large."""
_CRC_HEADER = 5
_LABEL_MAX = 255


def _bad(reason: MalformedReason, detail: str) -> MalformedMessage:
    return MalformedMessage(reason, detail)


@dataclass(frozen=True, slots=True)
class WireOptions:
    """The settings that shape bytes on the wire (memberlist Config fields in brackets)."""

    label: bytes = b""
    """[Label] sent before every packet and at the start of every dialled stream; also the
    AES-GCM additional data. Empty: no label header (the only form 0.2.x peers accept)."""
    keyring: Keyring | None = None
    """[Keyring/SecretKey] None: no encryption."""
    verify_incoming: bool = True
    """[GossipVerifyIncoming] False accepts plaintext alongside encrypted traffic (rollout)."""
    verify_outgoing: bool = True
    """[GossipVerifyOutgoing] False sends plaintext although a key is installed (rollout)."""
    skip_inbound_label_check: bool = False
    """[SkipInboundLabelCheck] accept unlabeled traffic as if it carried our label."""
    encryption_version: EncryptionVersion = EncryptionVersion.PLAIN
    """0 only when our ProtocolVersion is 1; otherwise 1."""
    int_style: IntStyle = IntStyle.GO_MSGPACK_05
    """How Go `int` fields are encoded (both are accepted by every Go version)."""

    def __post_init__(self) -> None:
        if len(self.label) > _LABEL_MAX:
            raise LocalError(f"label is {len(self.label)} bytes, at most 255")

    @property
    def encrypts(self) -> bool:
        return self.keyring is not None and self.verify_outgoing


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


def _check_label(got: bytes, options: WireOptions) -> None:
    if options.skip_inbound_label_check:
        if got:
            raise _bad(MalformedReason.LABEL_MISMATCH, "labeled traffic while skipping checks")
        return
    if got != options.label:
        raise _bad(MalformedReason.LABEL_MISMATCH, f"label {got!r}, want {options.label!r}")


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
    _check_label(label, options)
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
    """The single messages of a packet payload, and what was wrong with the rest."""

    messages: tuple[bytes, ...]
    errors: tuple[MalformedMessage, ...]


def split_payload(payload: bytes, max_depth: int = MAX_NESTING) -> SplitPayload:
    """Flatten compound and compress wrappers into single messages (each with its type byte).

    A bad part does not spoil its siblings, as in Go: its error is collected instead.
    """
    messages: list[bytes] = []
    errors: list[MalformedMessage] = []
    budget = [MAX_DECOMPRESSED_PACKET]
    _split(payload, max_depth, messages, errors, budget)
    return SplitPayload(tuple(messages), tuple(errors))


def _split(
    data: bytes,
    depth: int,
    messages: list[bytes],
    errors: list[MalformedMessage],
    budget: list[int],
) -> None:
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
                inner = decompress_message(data, budget[0])
                budget[0] -= len(inner)  # the whole packet shares one decompression budget
                parts = [inner]
            for part in parts:
                _split(part, depth - 1, messages, errors, budget)
            return
    except MalformedMessage as exc:
        errors.append(exc)
        return
    messages.append(data)


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


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message read from a stream, with how it arrived."""

    message: Message
    label: bytes
    encrypted: bool
    compressed: bool


class StreamReader:
    """Parse one stream message as its bytes arrive.

    `feed` returns None while more bytes are needed, the message once it is complete, and
    raises MalformedMessage as soon as the bytes cannot become a valid message. `eof` says
    the peer closed; it raises TRUNCATED if a message was under way. `expect_label` is true
    on the accepting side (the dialer's label header comes first); replies carry none.
    """

    __slots__ = ("_buf", "_expect_label", "_options")

    def __init__(self, options: WireOptions, *, expect_label: bool) -> None:
        self._options = options
        self._expect_label = expect_label
        self._buf = bytearray()

    def feed(self, data: bytes) -> StreamMessage | None:
        self._buf += data
        if len(self._buf) > MAX_STREAM_BYTES:
            raise _bad(MalformedReason.TOO_LARGE, "stream passes the size limit")
        return self._try()

    def eof(self) -> None:
        """The peer closed its side; a partial message is an error."""
        if self._buf:
            raise _bad(MalformedReason.TRUNCATED, "stream closed mid-message")
        raise _bad(MalformedReason.EMPTY, "stream closed without a message")

    def _try(self) -> StreamMessage | None:
        buf = bytes(self._buf)
        pos = 0
        label = b""
        options = self._options
        if self._expect_label and buf[:1] == bytes([MessageType.HAS_LABEL]):
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return None
            label, rest = strip_label(buf)
            pos = len(buf) - len(rest)
        if self._expect_label:
            _check_label(label, options)
        if len(buf) <= pos:
            return None
        if buf[pos] == MessageType.ENCRYPT:
            if options.keyring is None:
                raise _bad(MalformedReason.DECRYPT_FAILED, "encrypted stream but no key")
            if len(buf) < pos + 5:
                return None
            (size,) = struct.unpack_from(">I", buf, pos + 1)
            if size > MAX_PUSH_STATE_BYTES:
                raise _bad(MalformedReason.TOO_LARGE, f"encrypted stream of {size} bytes")
            end = pos + 5 + size
            if len(buf) < end:
                return None
            plain = options.keyring.decrypt(buf[pos + 5 : end], buf[pos : pos + 5] + options.label)
            message, compressed = _decode_inner(plain)
            return StreamMessage(message, label, encrypted=True, compressed=compressed)
        if options.keyring is not None and options.verify_incoming:
            raise _bad(MalformedReason.UNENCRYPTED, "plaintext stream while encryption is on")
        try:
            if buf[pos] == MessageType.COMPRESS:
                value, _ = unpack_one(buf, pos + 1)
            else:
                message, _ = decode_stream_message(buf[pos:])
                return StreamMessage(message, label, encrypted=False, compressed=False)
        except MalformedMessage as exc:
            if exc.reason is MalformedReason.TRUNCATED:
                return None
            raise
        inner = _decompress_value(value, MAX_DECOMPRESSED_STREAM)
        message = _decode_complete(inner)
        return StreamMessage(message, label, encrypted=False, compressed=True)


def _decode_inner(data: bytes) -> tuple[Message, bool]:
    """A decrypted stream message: optionally compressed, and it must be complete."""
    if data[:1] == bytes([MessageType.COMPRESS]):
        return _decode_complete(decompress_message(data, MAX_DECOMPRESSED_STREAM)), True
    return _decode_complete(data), False


def _decode_complete(data: bytes) -> Message:
    message, _ = decode_stream_message(data)
    return message
