"""One stream message parsed incrementally, with bounded work per step (spec §6).

A stream is `[label] [0x0a len envelope] [0x09 compress] message`. `feed` appends bytes
(no parsing there) and `step(budget)` does about `budget` units of work at most: it never
re-reads what it already parsed, opens an envelope a slice at a time once it is whole,
decodes LZW a slice at a time, and turns push/pull states into values one by one. So a
push/pull trickled byte by byte costs what its bytes cost, and a large one is spread over
several calls instead of stalling the caller once.

Memory is the caller's to bound through `held` (bytes buffered, plus an estimate for
parsed states); the parser refuses what its `StreamLimits` forbid as soon as a header
declares it. Only `MalformedMessage` escapes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import msgpack

from gossip._lzw import LzwDecoder
from gossip.codec import (
    MAX_PUSH_STATE_BYTES,
    body_from_value,
    message_type,
    push_node_state_from_value,
    push_pull_header_from_value,
    unpack_one,
    user_msg_header_from_value,
)
from gossip.errors import MalformedMessage, MalformedReason
from gossip.keyring import EncryptionVersion, EnvelopeOpener, encrypted_length
from gossip.messages import CompressionAlgo, Message, MessageType, PushNodeState, PushPull, UserMsg
from gossip.wire_options import WireOptions, check_label

__all__ = ["STATE_COST", "StreamLimits", "StreamMessage", "StreamParser"]

STATE_COST = 400
"""Bytes of memory one parsed pushNodeState holds (the estimate charged to `held`)."""
WORK_LZW_IN = 8
"""Work units (about 30 ns each) per compressed byte (LZW decodes ~4 MB/s)."""
WORK_STATE = 128
"""Work units per pushNodeState turned into a value (~4 us)."""
WORK_DECRYPT = 32
"""Ciphertext bytes AES-GCM opens per work unit."""
_MAX_MAP_VALUE = 1 << 20
"""Largest string inside a stream message's maps (names, meta, ack payloads, errors)."""
_MAX_SMALL = 4096
"""Largest compress-map entry buffered whole before it must parse."""


def _bad(reason: MalformedReason, detail: str) -> MalformedMessage:
    return MalformedMessage(reason, detail)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one stream may declare or carry before it is refused."""

    max_bytes: int = MAX_PUSH_STATE_BYTES
    """Largest encrypted envelope (memberlist: 20 MiB), and largest raw stream."""
    max_decompressed: int = 2 * MAX_PUSH_STATE_BYTES
    """Largest decompressed message (memberlist HEAD: 40 MiB)."""
    max_states: int = 1 << 20
    """Most pushNodeStates one push/pull may carry (memberlist 0.6.0: 1 Mi)."""


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message read from a stream, with how it arrived."""

    message: Message
    label: bytes
    encrypted: bool
    compressed: bool


class _Buffer:
    """Bytes not yet consumed: an offset moves instead of copying on every read."""

    __slots__ = ("_data", "_pos", "final")

    def __init__(self) -> None:
        self._data = bytearray()
        self._pos = 0
        self.final = False
        """No more bytes will come (a decrypted plaintext is whole)."""

    def __len__(self) -> int:
        return len(self._data) - self._pos

    def append(self, data: bytes | memoryview) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._data):
            del self._data[: self._pos]
            self._pos = 0
        self._data += data

    def peek(self, n: int) -> bytes:
        return bytes(self._data[self._pos : self._pos + n])

    def take(self, n: int) -> bytes:
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def skip(self, n: int) -> None:
        self._pos += min(n, len(self))


class _Stage(IntEnum):
    LABEL = 0  # the dialer's optional label header
    FRAME = 1  # encryption envelope header, or the plaintext body begins
    ENVELOPE = 2  # collecting the envelope's bytes
    OPENING = 3  # decrypting it, a slice per step
    BODY = 4  # compress wrapper and message
    DONE = 5


class StreamParser:
    """Parse one stream message; see the module docstring. `expect_label` on the accepting
    side (the dialer's label header comes first); replies carry none."""

    __slots__ = (
        "_body",
        "_label",
        "_limits",
        "_more",
        "_opener",
        "_options",
        "_raw",
        "_size",
        "_stage",
        "encrypted",
        "expect_label",
        "received",
        "spent",
    )

    def __init__(
        self, options: WireOptions, *, expect_label: bool, limits: StreamLimits | None = None
    ) -> None:
        self._options = options
        self._limits = limits or StreamLimits()
        self._raw = _Buffer()
        self._stage = _Stage.LABEL
        self._label = b""
        self._size = 0
        self._opener: EnvelopeOpener | None = None
        self._body = _Body(self._limits)
        self.expect_label = expect_label
        self.encrypted = False
        self.received = 0
        self._more = False
        self.spent = 0
        """Work units the last `step` used."""

    @property
    def held(self) -> int:
        """Bytes this stream holds: unread input, envelope, plaintext, parsed states."""
        opener = self._opener.held if self._opener is not None else 0
        return len(self._raw) + opener + self._body.held

    @property
    def done(self) -> bool:
        return self._stage is _Stage.DONE

    @property
    def has_work(self) -> bool:
        """Whether the last `step` ran out of budget with work left (call it again)."""
        return self._more

    def feed(self, data: bytes) -> None:
        """Append received bytes; no parsing happens here."""
        if self._stage is _Stage.DONE:
            return  # Go reads one message per stream and ignores the rest
        self.received += len(data)
        if self.received > self._limits.max_bytes + 1024:
            raise _bad(MalformedReason.TOO_LARGE, "stream passes the size limit")
        self._raw.append(data)

    def eof(self) -> None:
        """The peer closed its side; a partial message is an error."""
        if self.received:
            raise _bad(MalformedReason.TRUNCATED, "stream closed mid-message")
        raise _bad(MalformedReason.EMPTY, "stream closed without a message")

    def step(self, budget: int) -> StreamMessage | None:
        """Work for about `budget` units; the message once it is complete, else None."""
        self._more = False
        self.spent = 0
        while self._stage is not _Stage.DONE:
            if self.spent >= budget:
                self._more = True
                return None
            used = self._advance(budget - self.spent)
            self.spent += used
            if self._body.message is not None:
                self._stage = _Stage.DONE
                return StreamMessage(
                    self._body.message, self._label, self.encrypted, self._body.compressed
                )
            if used == 0:
                return None
        return None

    def _advance(self, budget: int) -> int:
        """One piece of work; its cost, or 0 when waiting for input."""
        stage = self._stage
        if stage is _Stage.LABEL:
            return self._read_label()
        if stage is _Stage.FRAME:
            return self._read_frame()
        if stage is _Stage.ENVELOPE:
            return self._read_envelope()
        if stage is _Stage.OPENING:
            return self._open(budget)
        moved = 0
        if not self.encrypted and self._raw:
            moved = min(len(self._raw), budget)
            self._body.feed(self._raw.take(moved))
        return moved + self._body.step(max(budget - moved, 1))

    def _read_label(self) -> int:
        if not self._raw:
            return 0
        if self.expect_label and self._raw.peek(1)[0] == MessageType.HAS_LABEL:
            head = self._raw.peek(2)
            if len(head) < 2 or len(self._raw) < 2 + head[1]:
                return 0
            if head[1] == 0:
                raise _bad(MalformedReason.BAD_LABEL, "zero-length label header")
            self._raw.skip(2)
            self._label = self._raw.take(head[1])
        if self.expect_label:
            check_label(self._label, self._options)
        self._stage = _Stage.FRAME
        return 1

    def _read_frame(self) -> int:
        if not self._raw:
            return 0
        keyring = self._options.keyring
        if self._raw.peek(1)[0] != MessageType.ENCRYPT:
            if keyring is not None and self._options.verify_incoming:
                raise _bad(MalformedReason.UNENCRYPTED, "plaintext stream while encryption is on")
            self._stage = _Stage.BODY
            return 1
        if keyring is None:
            raise _bad(MalformedReason.DECRYPT_FAILED, "encrypted stream but no key")
        if len(self._raw) < 5:
            return 0
        head = self._raw.take(5)
        (size,) = struct.unpack_from(">I", head, 1)
        if size > self._limits.max_bytes:
            raise _bad(MalformedReason.TOO_LARGE, f"encrypted stream of {size} bytes")
        if size < encrypted_length(EncryptionVersion.PLAIN, 0):
            raise _bad(MalformedReason.DECRYPT_FAILED, f"envelope of {size} bytes is too short")
        self._size = size
        self.encrypted = True
        self._opener = EnvelopeOpener(keyring, head + self._options.label)
        self._stage = _Stage.ENVELOPE
        return 1

    def _read_envelope(self) -> int:
        assert self._opener is not None
        n = min(len(self._raw), self._size - self._opener.received)
        if n <= 0:
            return 0
        self._opener.add(self._raw.take(n))
        if self._opener.received >= self._size:
            self._stage = _Stage.OPENING
        return 1 + n // 1024

    def _open(self, budget: int) -> int:
        assert self._opener is not None
        done = self._opener.work(budget * WORK_DECRYPT)
        plain = self._opener.plaintext
        if plain is not None:
            self._opener = None
            self._body.feed(plain)
            self._body.close_input()
            self._stage = _Stage.BODY
        return max(1, done // WORK_DECRYPT)


# ---------------------------------------------------------------------------- body


class _BodyStage(IntEnum):
    TYPE = 0  # first byte: compress wrapper or the message itself
    PLAIN = 1  # bytes go straight to the message parser
    MAP = 2  # compress map header
    ENTRY = 3  # compress map entries (Algo, Buf, unknown keys)
    INFLATE = 4  # Buf's bytes through the LZW decoder
    END = 5  # wrapper complete: the message must be too


class _Body:
    """The (decrypted) body: `[0x09 compress{Algo, Buf: lzw(message)}] message`."""

    __slots__ = (
        "_algo",
        "_entries",
        "_in",
        "_lzw",
        "_lzw_left",
        "_msg",
        "_stage",
        "compressed",
        "message",
    )

    def __init__(self, limits: StreamLimits) -> None:
        self._in = _Buffer()
        self._msg = _MessageParser(limits)
        self._stage = _BodyStage.TYPE
        self._entries = 0
        self._algo = 0
        self._lzw: LzwDecoder | None = None
        self._lzw_left = 0
        self.compressed = False
        self.message: Message | None = None

    @property
    def held(self) -> int:
        return len(self._in) + self._msg.held

    def feed(self, data: bytes) -> None:
        self._in.append(data)

    def close_input(self) -> None:
        self._in.final = True

    def step(self, budget: int) -> int:
        """Work on the body; the cost (0 when waiting). Sets `message` when complete."""
        stage = self._stage
        if stage is _BodyStage.TYPE:
            return self._read_type()
        if stage is _BodyStage.PLAIN:
            return self._plain(budget)
        if stage is _BodyStage.MAP:
            return self._read_map()
        if stage is _BodyStage.ENTRY:
            return self._read_entry()
        if stage is _BodyStage.INFLATE:
            return self._inflate(budget)
        return self._end(budget)

    def _read_type(self) -> int:
        if not self._in:
            if self._in.final:
                raise _bad(MalformedReason.EMPTY, "stream message without a type byte")
            return 0
        if self._in.peek(1)[0] == MessageType.COMPRESS:
            self._in.skip(1)
            self.compressed = True
            self._stage = _BodyStage.MAP
        else:
            self._stage = _BodyStage.PLAIN
        return 1

    def _plain(self, budget: int) -> int:
        moved = min(len(self._in), budget)
        if moved:
            self._msg.feed(self._in.take(moved))
        if self._in.final and not self._in:
            self._msg.close_input()
        return moved + self._parse(max(budget - moved, 1))

    def _parse(self, budget: int) -> int:
        used = self._msg.step(budget)
        if self._msg.message is not None and self._stage is _BodyStage.PLAIN:
            self.message = self._msg.message
        return used

    def _wait(self, what: str) -> int:
        if self._in.final:
            raise _bad(MalformedReason.TRUNCATED, f"{what} cut short")
        if len(self._in) > _MAX_SMALL:
            raise _bad(MalformedReason.BAD_FIELD_VALUE, f"{what} too large")
        return 0

    def _read_map(self) -> int:
        head = self._in.peek(3)
        if not head:
            return self._wait("compress header")
        b = head[0]
        if 0x80 <= b <= 0x8F:
            self._in.skip(1)
            self._entries = b & 0x0F
        elif b == 0xDE:
            if len(head) < 3:
                return self._wait("compress header")
            self._in.skip(3)
            self._entries = int.from_bytes(head[1:3], "big")
        else:
            raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress is not a map")
        if self._entries > 16:
            raise _bad(MalformedReason.BAD_FIELD_VALUE, "compress map of too many entries")
        self._stage = _BodyStage.ENTRY
        return 1

    def _read_entry(self) -> int:
        """One key/value of the compress map; Buf switches to streaming its bytes."""
        if self._entries == 0:
            self._stage = _BodyStage.END
            return 1
        head = self._in.peek(_MAX_SMALL)
        key = _read_key(head)
        if key is None:
            return self._wait("compress key")
        name, pos = key
        if name == b"Buf":
            raw = _read_raw_header(head, pos)
            if raw is None:
                return self._wait("compress.Buf header")
            self._lzw_left, pos = raw
            self._lzw = LzwDecoder(self._msg.limits.max_decompressed)
            self._stage = _BodyStage.INFLATE
        else:
            try:
                value, pos = unpack_one(head, pos)
            except MalformedMessage as exc:
                if exc.reason is MalformedReason.TRUNCATED:
                    return self._wait("compress entry")
                raise
            if name == b"Algo":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress.Algo is not an integer")
                self._algo = value
        self._in.skip(pos)
        self._entries -= 1
        return 1

    def _inflate(self, budget: int) -> int:
        """Decode a slice of Buf into the message parser, then parse what came out."""
        lzw = self._lzw
        assert lzw is not None
        if self._lzw_left == 0:
            if not lzw.done:
                raise _bad(MalformedReason.BAD_COMPRESSION, "stream ends without an end code")
            self._stage = _BodyStage.ENTRY
            return 1
        if self._msg.unread:  # parse what came out before decoding more
            used = self._parse(budget)
            if used:
                return used
        half = max(budget // 2, 1)
        n = min(len(self._in), self._lzw_left, max(half // WORK_LZW_IN, 1))
        if n == 0:
            return self._wait("compress.Buf")
        if lzw.done:  # bytes after the end code are ignored, as Go's reader does
            self._in.skip(n)
            self._lzw_left -= n
            return 1
        out, consumed = lzw.decode(self._in.peek(n), half)
        self._in.skip(consumed)
        self._lzw_left -= consumed
        if out:
            self._msg.feed(out)
        cost = consumed * WORK_LZW_IN + len(out)
        return cost + self._parse(max(budget - cost, 1))

    def _end(self, budget: int) -> int:
        if self._lzw is None:
            raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress.Buf is not bytes")
        if self._algo != CompressionAlgo.LZW:
            raise _bad(
                MalformedReason.BAD_COMPRESSION, f"unknown compression algorithm {self._algo}"
            )
        if self._lzw.produced == 0:
            raise _bad(MalformedReason.BAD_COMPRESSION, "decompressed to nothing")
        self._msg.close_input()
        used = self._msg.step(budget)
        self.message = self._msg.message
        return used


def _read_key(data: bytes) -> tuple[bytes, int] | None:
    """A map key (str or bin) at the start of `data`, and where its value starts."""
    if not data:
        return None
    b = data[0]
    if 0xA0 <= b <= 0xBF:
        n, start = b & 0x1F, 1
    elif b in (0xD9, 0xC4):
        if len(data) < 2:
            return None
        n, start = data[1], 2
    else:
        raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress has a non-string key")
    if start + n > len(data):
        return None
    return data[start : start + n], start + n


_RAW_WIDTHS = {0xD9: 1, 0xC4: 1, 0xDA: 2, 0xC5: 2, 0xDB: 4, 0xC6: 4}


def _read_raw_header(data: bytes, pos: int) -> tuple[int, int] | None:
    """(length, offset of the bytes) of a str/bin value at `pos`; nil counts as empty."""
    if pos >= len(data):
        return None
    b = data[pos]
    if 0xA0 <= b <= 0xBF:
        return b & 0x1F, pos + 1
    if b == 0xC0:
        return 0, pos + 1
    width = _RAW_WIDTHS.get(b)
    if width is None:
        raise _bad(MalformedReason.BAD_FIELD_TYPE, "compress.Buf is not bytes")
    if pos + 1 + width > len(data):
        return None
    return int.from_bytes(data[pos + 1 : pos + 1 + width], "big"), pos + 1 + width


# ---------------------------------------------------------------------------- message


class _MessageParser:
    """A stream message (type byte + body), decoded from bytes as they come."""

    __slots__ = (
        "_closed",
        "_fed",
        "_header",
        "_kind",
        "_left",
        "_parts",
        "_phase",
        "_states",
        "_states_left",
        "_unpacker",
        "limits",
        "message",
    )

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self._unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            max_buffer_size=limits.max_decompressed + 1,
            max_str_len=_MAX_MAP_VALUE,
            max_bin_len=_MAX_MAP_VALUE,
            max_array_len=64,
            max_map_len=64,
            max_ext_len=0,
        )
        self._fed = 0
        self._kind: MessageType | None = None
        self._phase = 0  # 0: the header map, 1: push/pull states, 2: the raw trailer
        self._header = False
        self._states: list[PushNodeState] = []
        self._states_left = 0
        self._parts: list[bytes] = []
        self._left = 0
        self._closed = False
        self.message: Message | None = None

    @property
    def held(self) -> int:
        unread = self._fed - self._unpacker.tell()
        return unread + len(self._states) * STATE_COST + sum(map(len, self._parts))

    @property
    def unread(self) -> bool:
        """Fed bytes not parsed yet (maybe only the start of a value)."""
        return self.message is None and self._fed > self._unpacker.tell()

    def feed(self, data: bytes) -> None:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull as exc:
            raise _bad(MalformedReason.TOO_LARGE, "stream message too large") from exc
        self._fed += len(data)

    def close_input(self) -> None:
        self._closed = True

    def step(self, budget: int) -> int:
        """Decode what the fed bytes allow (about `budget` units); sets `message`."""
        used = 0
        while self.message is None and used < budget:
            if self._kind is None:
                first: bytes = self._unpacker.read_bytes(1)
                got = len(first)
                if got:
                    self._kind = message_type(first)
            else:
                got = self._advance(budget - used)
            if got == 0:
                if self._closed:
                    raise _bad(MalformedReason.TRUNCATED, "stream message cut short")
                break
            used += got
        return used

    def _value(self) -> tuple[object, bool]:
        try:
            return self._unpacker.unpack(), True
        except msgpack.OutOfData:
            return None, False
        except ValueError as exc:
            reason = MalformedReason.TOO_LARGE if "exceeds max" in str(exc) else None
            raise _bad(reason or MalformedReason.BAD_MSGPACK, str(exc)) from exc
        except Exception as exc:  # msgpack raises several internal types on garbage
            raise _bad(MalformedReason.BAD_MSGPACK, f"{type(exc).__name__}: {exc}") from exc

    def _advance(self, budget: int) -> int:
        kind = self._kind
        if kind is MessageType.PUSH_PULL:
            return self._push_pull(budget)
        if kind is MessageType.USER:
            return self._user()
        if kind in (MessageType.PING, MessageType.ACK_RESP, MessageType.ERR):
            value, ok = self._value()
            if not ok:
                return 0
            self.message = body_from_value(kind, value)
            return 1
        assert kind is not None
        raise _bad(MalformedReason.UNKNOWN_TYPE, f"{kind.name} is not a stream message")

    def _push_pull(self, budget: int) -> int:
        if self._phase == 0:
            value, ok = self._value()
            if not ok:
                return 0
            header = push_pull_header_from_value(value)
            if header.nodes > self.limits.max_states:
                raise _bad(MalformedReason.TOO_LARGE, f"push/pull of {header.nodes} states")
            self._header, self._left = header.join, header.user_state_len
            self._states_left = header.nodes
            self._phase = 1
            return 1
        if self._phase == 1:
            return self._read_states(budget)
        used = self._trailer()
        if self._left == 0:
            self.message = PushPull(self._header, tuple(self._states), b"".join(self._parts))
            self._states, self._parts = [], []
            return used + 1
        return used

    def _read_states(self, budget: int) -> int:
        used = 0
        while self._states_left > 0 and used < budget:
            value, ok = self._value()
            if not ok:
                return used
            self._states.append(push_node_state_from_value(value))
            self._states_left -= 1
            used += WORK_STATE
        if self._states_left == 0:
            self._phase = 2
            used += 1
        return used

    def _trailer(self) -> int:
        """Raw bytes after the header (user state, user message payload)."""
        if self._left == 0:
            return 0
        chunk: bytes = self._unpacker.read_bytes(self._left)
        self._left -= len(chunk)
        if chunk:
            self._parts.append(chunk)
        return len(chunk)

    def _user(self) -> int:
        if self._phase == 0:
            value, ok = self._value()
            if not ok:
                return 0
            self._left = user_msg_header_from_value(value).user_msg_len
            self._phase = 2
            return 1
        used = self._trailer()
        if self._left == 0:
            self.message = UserMsg(b"".join(self._parts))
            self._parts = []
            return used + 1
        return used
