"""msgpack encoding of memberlist messages, byte-compatible with Go's go-msgpack.

Go encodes structs as maps keyed by the Go field name, keys sorted, with the *old* msgpack
spec: strings and bytes both use the raw family (fixstr, str16, str32; never str8 or bin).
Unsigned ints take the smallest uint form; Go `int` fields take the same form with go-msgpack
0.5.x (memberlist <= 0.5.0) and int16/32/64 above 127 with go-msgpack v2 (memberlist >= 0.5.1):
`IntStyle` picks which one we send. Decoding accepts both, plus everything Go's decoders
accept (bin for strings/bytes, arrays of small ints for bytes, 0/1 for bools, unknown keys).

The encoder is written here rather than taken from `msgpack` so every byte is under control;
the decoder uses `msgpack.Unpacker` with size limits and then checks every field's type.
Anything wrong raises `MalformedMessage`; nothing else escapes `decode_*`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any

import msgpack

from gossip.errors import MalformedMessage, MalformedReason
from gossip.messages import (
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    Message,
    MessageType,
    NackResp,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    PushPullHeader,
    Suspect,
    UserMsg,
    UserMsgHeader,
)

__all__ = [
    "MAX_PUSH_STATE_BYTES",
    "MAX_PUSH_STATE_NODES",
    "IntStyle",
    "MsgpackReader",
    "body_from_value",
    "decode_body",
    "decode_message",
    "decode_push_node_state",
    "decode_push_pull",
    "decode_push_pull_header",
    "decode_stream_message",
    "decode_stream_user_msg",
    "decode_user_msg_header",
    "encode_compress_body",
    "encode_message",
    "encode_push_node_state",
    "encode_stream_message",
    "message_type",
    "pack_map",
    "push_node_state_from_value",
    "push_pull_header_from_value",
    "unpack_one",
    "user_msg_header_from_value",
]

MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024
"""Go's maxPushStateBytes: the largest user state, user message or encrypted stream."""
MAX_PUSH_STATE_NODES = 1024 * 1024
"""memberlist 0.6.0's limit on pushPullHeader.Nodes."""
_MAX_VALUE_BYTES = MAX_PUSH_STATE_BYTES
_MAX_CONTAINER = 64  # no memberlist struct has more than 8 fields; Vsn-as-array has 6 items


class IntStyle(IntEnum):
    """How Go `int` fields (Nodes, UserStateLen, UserMsgLen, State) are encoded above 127."""

    GO_MSGPACK_05 = 0  # memberlist <= 0.5.0: smallest uint form (200 -> cc c8)
    GO_MSGPACK_V2 = 1  # memberlist >= 0.5.1: int16/32/64 (200 -> d1 00 c8)


# ---------------------------------------------------------------------------- encoding


def _pack_uint(out: bytearray, value: int) -> None:
    if value < 0x80:
        out.append(value)
    elif value <= 0xFF:
        out += b"\xcc" + value.to_bytes(1, "big")
    elif value <= 0xFFFF:
        out += b"\xcd" + value.to_bytes(2, "big")
    elif value <= 0xFFFF_FFFF:
        out += b"\xce" + value.to_bytes(4, "big")
    else:
        out += b"\xcf" + value.to_bytes(8, "big")


def _pack_int(out: bytearray, value: int, style: IntStyle) -> None:
    if style is IntStyle.GO_MSGPACK_05 or value < 0x80:
        _pack_uint(out, value)
    elif value <= 0x7FFF:
        out += b"\xd1" + value.to_bytes(2, "big")
    elif value <= 0x7FFF_FFFF:
        out += b"\xd2" + value.to_bytes(4, "big")
    else:
        out += b"\xd3" + value.to_bytes(8, "big")


def _pack_raw(out: bytearray, value: bytes) -> None:
    n = len(value)
    if n < 32:
        out.append(0xA0 | n)
    elif n <= 0xFFFF:
        out += b"\xda" + n.to_bytes(2, "big")
    else:
        out += b"\xdb" + n.to_bytes(4, "big")
    out += value


class _Int:
    """Marker for a Go `int` field (encoded per IntStyle)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


_Value = int | bool | str | bytes | None | _Int


def pack_map(fields: Mapping[str, _Value], style: IntStyle = IntStyle.GO_MSGPACK_05) -> bytes:
    """Encode a Go struct: a map with keys in byte order, as go-msgpack emits it.

    `bytes` values of length 0 are encoded as nil (a nil Go slice); ints as Go's unsigned
    ints unless wrapped in `_Int`.
    """
    out = bytearray()
    n = len(fields)
    if n <= 15:
        out.append(0x80 | n)
    else:
        out += b"\xde" + n.to_bytes(2, "big")
    for key in sorted(fields, key=lambda k: k.encode()):
        _pack_raw(out, key.encode())
        value = fields[key]
        if value is None:
            out.append(0xC0)
        elif isinstance(value, bool):
            out.append(0xC3 if value else 0xC2)
        elif isinstance(value, _Int):
            _pack_int(out, value.value, style)
        elif isinstance(value, int):
            _pack_uint(out, value)
        elif isinstance(value, str):
            _pack_raw(out, value.encode())
        elif value:
            _pack_raw(out, value)
        else:
            out.append(0xC0)
    return bytes(out)


def _source_fields(fields: dict[str, _Value], addr: bytes, node: str, port: int) -> None:
    # omitempty: zero values are left out of the map entirely.
    if addr:
        fields["SourceAddr"] = addr
    if node:
        fields["SourceNode"] = node
    if port:
        fields["SourcePort"] = port


def _fields(msg: Message, style: IntStyle) -> dict[str, _Value]:
    match msg:
        case Ping():
            f: dict[str, _Value] = {"Node": msg.node, "SeqNo": msg.seq_no}
            _source_fields(f, msg.source_addr, msg.source_node, msg.source_port)
            return f
        case IndirectPingReq():
            f = {
                "SeqNo": msg.seq_no,
                "Target": msg.target,
                "Port": msg.port,
                "Node": msg.node,
                "Nack": msg.nack,
            }
            _source_fields(f, msg.source_addr, msg.source_node, msg.source_port)
            return f
        case AckResp():
            return {"SeqNo": msg.seq_no, "Payload": msg.payload}
        case NackResp():
            return {"SeqNo": msg.seq_no}
        case Suspect() | Dead():
            return {"Incarnation": msg.incarnation, "Node": msg.node, "From": msg.from_node}
        case Alive():
            return {
                "Incarnation": msg.incarnation,
                "Node": msg.node,
                "Addr": msg.addr,
                "Port": msg.port,
                "Meta": msg.meta,
                "Vsn": msg.vsn,
            }
        case ErrResp():
            return {"Error": msg.error}
    raise TypeError(f"{type(msg).__name__} has no single msgpack body")


_TYPES: dict[type, MessageType] = {
    Ping: MessageType.PING,
    IndirectPingReq: MessageType.INDIRECT_PING,
    AckResp: MessageType.ACK_RESP,
    NackResp: MessageType.NACK_RESP,
    Suspect: MessageType.SUSPECT,
    Alive: MessageType.ALIVE,
    Dead: MessageType.DEAD,
    ErrResp: MessageType.ERR,
    PushPull: MessageType.PUSH_PULL,
    UserMsg: MessageType.USER,
}


def encode_push_node_state(state: PushNodeState, style: IntStyle = IntStyle.GO_MSGPACK_05) -> bytes:
    """One pushNodeState map (no type byte)."""
    return pack_map(
        {
            "Name": state.name,
            "Addr": state.addr,
            "Port": state.port,
            "Meta": state.meta,
            "Incarnation": state.incarnation,
            "State": _Int(int(state.state)),
            "Vsn": state.vsn,
        },
        style,
    )


def encode_message(msg: Message, style: IntStyle = IntStyle.GO_MSGPACK_05) -> bytes:
    """Type byte + body, in the *packet* form (a UserMsg is raw bytes after the type byte).

    For PushPull this is the stream form (header, states, user state), which is its only form.
    """
    if isinstance(msg, UserMsg):
        return bytes([MessageType.USER]) + msg.payload
    return encode_stream_message(msg, style)


def encode_stream_message(msg: Message, style: IntStyle = IntStyle.GO_MSGPACK_05) -> bytes:
    """Type byte + body in the *stream* form (a UserMsg carries a userMsgHeader)."""
    kind = _TYPES[type(msg)]
    if isinstance(msg, PushPull):
        header = msg.header
        parts = [
            bytes([kind]),
            pack_map(
                {
                    "Join": header.join,
                    "Nodes": _Int(header.nodes),
                    "UserStateLen": _Int(header.user_state_len),
                },
                style,
            ),
        ]
        parts += [encode_push_node_state(s, style) for s in msg.states]
        parts.append(msg.user_state)
        return b"".join(parts)
    if isinstance(msg, UserMsg):
        head = pack_map({"UserMsgLen": _Int(len(msg.payload))}, style)
        return bytes([kind]) + head + msg.payload
    return bytes([kind]) + pack_map(_fields(msg, style), style)


def encode_compress_body(buf: bytes) -> bytes:
    """The msgpack `compress{Algo: 0, Buf}` map that follows a type-9 byte."""
    return pack_map({"Algo": 0, "Buf": buf})


# ---------------------------------------------------------------------------- decoding


def _malformed(reason: MalformedReason, detail: str) -> MalformedMessage:
    return MalformedMessage(reason, detail)


class MsgpackReader:
    """Reads consecutive msgpack values from one buffer (a stream body holds several)."""

    __slots__ = ("_base", "_unpacker")

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._base = offset
        self._unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            max_buffer_size=max(len(data) - offset, 1),
            max_str_len=_MAX_VALUE_BYTES,
            max_bin_len=_MAX_VALUE_BYTES,
            max_array_len=_MAX_CONTAINER,
            max_map_len=_MAX_CONTAINER,
            max_ext_len=0,
        )
        if offset < len(data):
            self._unpacker.feed(memoryview(data)[offset:])

    @property
    def pos(self) -> int:
        """Offset in the original buffer just past the last value read."""
        return self._base + self._unpacker.tell()

    def value(self) -> Any:
        """The next value, or MalformedMessage(TRUNCATED / TOO_LARGE / BAD_MSGPACK)."""
        try:
            return self._unpacker.unpack()
        except msgpack.OutOfData as exc:
            raise _malformed(MalformedReason.TRUNCATED, "msgpack value cut short") from exc
        except ValueError as exc:
            if "exceeds max" in str(exc):
                raise _malformed(MalformedReason.TOO_LARGE, str(exc)) from exc
            raise _malformed(MalformedReason.BAD_MSGPACK, str(exc)) from exc
        except Exception as exc:  # msgpack raises several internal types on garbage
            raise _malformed(MalformedReason.BAD_MSGPACK, f"{type(exc).__name__}: {exc}") from exc


def unpack_one(data: bytes, offset: int = 0) -> tuple[Any, int]:
    """Decode one msgpack value at `offset`; return it and the offset just past it."""
    reader = MsgpackReader(data, offset)
    value = reader.value()
    return value, reader.pos


def _is_byte(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255


class _Fields:
    """Typed access to a decoded Go struct, with Go's leniency and our checks."""

    __slots__ = ("_map", "_what")

    def __init__(self, value: Any, what: str) -> None:
        if not isinstance(value, dict):
            raise _malformed(MalformedReason.BAD_FIELD_TYPE, f"{what} is not a map")
        fields: dict[bytes, Any] = {}
        for key, item in value.items():
            if not isinstance(key, bytes):
                raise _malformed(MalformedReason.BAD_FIELD_TYPE, f"{what} has a non-string key")
            fields[key] = item  # unknown keys are kept and ignored, as Go skips them
        self._map = fields
        self._what = what

    def _wrong(self, key: str, want: str) -> MalformedMessage:
        return _malformed(MalformedReason.BAD_FIELD_TYPE, f"{self._what}.{key} is not {want}")

    def uint(self, key: str, limit: int) -> int:
        value = self._map.get(key.encode(), 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer")
        if not 0 <= value <= limit:
            raise _malformed(
                MalformedReason.BAD_FIELD_VALUE, f"{self._what}.{key}={value} out of range"
            )
        return value

    def boolean(self, key: str) -> bool:
        value = self._map.get(key.encode(), False)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):  # go-msgpack 0.5 accepts 0/1
            return bool(value)
        raise self._wrong(key, "a bool")

    def raw(self, key: str) -> bytes:
        value = self._map.get(key.encode())
        if value is None:
            return b""
        if isinstance(value, bytes):
            return value
        # Go also accepts []byte as an array of small ints.
        if isinstance(value, list | tuple) and all(_is_byte(v) for v in value):
            return bytes(value)
        raise self._wrong(key, "bytes")

    def text(self, key: str) -> str:
        value = self._map.get(key.encode())
        if value is None:
            return ""
        if not isinstance(value, bytes):
            raise self._wrong(key, "a string")
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise _malformed(
                MalformedReason.BAD_FIELD_VALUE, f"{self._what}.{key} is not UTF-8"
            ) from exc


_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_INT = (1 << 63) - 1


def _decode_ping(f: _Fields) -> Ping:
    return Ping(
        seq_no=f.uint("SeqNo", _U32),
        node=f.text("Node"),
        source_addr=f.raw("SourceAddr"),
        source_node=f.text("SourceNode"),
        source_port=f.uint("SourcePort", _U16),
    )


def _decode_indirect(f: _Fields) -> IndirectPingReq:
    return IndirectPingReq(
        seq_no=f.uint("SeqNo", _U32),
        target=f.raw("Target"),
        port=f.uint("Port", _U16),
        node=f.text("Node"),
        nack=f.boolean("Nack"),
        source_addr=f.raw("SourceAddr"),
        source_node=f.text("SourceNode"),
        source_port=f.uint("SourcePort", _U16),
    )


def _decode_ack(f: _Fields) -> AckResp:
    return AckResp(seq_no=f.uint("SeqNo", _U32), payload=f.raw("Payload"))


def _decode_nack(f: _Fields) -> NackResp:
    return NackResp(seq_no=f.uint("SeqNo", _U32))


def _decode_suspect(f: _Fields) -> Suspect:
    return Suspect(
        incarnation=f.uint("Incarnation", _U32), node=f.text("Node"), from_node=f.text("From")
    )


def _decode_dead(f: _Fields) -> Dead:
    return Dead(
        incarnation=f.uint("Incarnation", _U32), node=f.text("Node"), from_node=f.text("From")
    )


def _decode_alive(f: _Fields) -> Alive:
    return Alive(
        incarnation=f.uint("Incarnation", _U32),
        node=f.text("Node"),
        addr=f.raw("Addr"),
        port=f.uint("Port", _U16),
        meta=f.raw("Meta"),
        vsn=f.raw("Vsn"),
    )


def _decode_err(f: _Fields) -> ErrResp:
    return ErrResp(error=f.text("Error"))


_BODY_DECODERS: dict[MessageType, Callable[[_Fields], Message]] = {
    MessageType.PING: _decode_ping,
    MessageType.INDIRECT_PING: _decode_indirect,
    MessageType.ACK_RESP: _decode_ack,
    MessageType.NACK_RESP: _decode_nack,
    MessageType.SUSPECT: _decode_suspect,
    MessageType.ALIVE: _decode_alive,
    MessageType.DEAD: _decode_dead,
    MessageType.ERR: _decode_err,
}


def decode_body(kind: MessageType, data: bytes, offset: int = 0) -> tuple[Message, int]:
    """Decode the single-map body of `kind` at `offset`; return it and the end offset."""
    if kind not in _BODY_DECODERS:
        raise _malformed(MalformedReason.UNKNOWN_TYPE, f"type {kind.name} has no map body")
    value, end = unpack_one(data, offset)
    return body_from_value(kind, value), end


def body_from_value(kind: MessageType, value: Any) -> Message:
    """The message of type `kind` from its already unpacked msgpack map."""
    decoder = _BODY_DECODERS.get(kind)
    if decoder is None:
        raise _malformed(MalformedReason.UNKNOWN_TYPE, f"type {kind.name} has no map body")
    return decoder(_Fields(value, kind.name))


def push_node_state_from_value(value: Any) -> PushNodeState:
    """A pushNodeState from its unpacked msgpack map."""
    f = _Fields(value, "pushNodeState")
    state = f.uint("State", _INT)
    try:
        node_state = NodeState(state)
    except ValueError as exc:
        raise _malformed(MalformedReason.BAD_FIELD_VALUE, f"State={state}") from exc
    return PushNodeState(
        name=f.text("Name"),
        addr=f.raw("Addr"),
        port=f.uint("Port", _U16),
        meta=f.raw("Meta"),
        incarnation=f.uint("Incarnation", _U32),
        state=node_state,
        vsn=f.raw("Vsn"),
    )


def decode_push_node_state(data: bytes, offset: int = 0) -> tuple[PushNodeState, int]:
    """Decode one pushNodeState map at `offset`; return it and the end offset."""
    value, end = unpack_one(data, offset)
    return push_node_state_from_value(value), end


def push_pull_header_from_value(value: Any) -> PushPullHeader:
    """A pushPullHeader from its unpacked map, with memberlist 0.6.0's limits."""
    f = _Fields(value, "pushPullHeader")
    nodes = f.uint("Nodes", _INT)
    user_state_len = f.uint("UserStateLen", _INT)
    if nodes > MAX_PUSH_STATE_NODES:
        raise _malformed(MalformedReason.TOO_LARGE, f"pushPullHeader.Nodes={nodes}")
    if user_state_len > MAX_PUSH_STATE_BYTES:
        raise _malformed(MalformedReason.TOO_LARGE, f"UserStateLen={user_state_len}")
    return PushPullHeader(nodes=nodes, user_state_len=user_state_len, join=f.boolean("Join"))


def decode_push_pull_header(data: bytes, offset: int = 0) -> tuple[PushPullHeader, int]:
    """Decode a pushPullHeader, enforcing memberlist 0.6.0's limits."""
    value, end = unpack_one(data, offset)
    return push_pull_header_from_value(value), end


def decode_user_msg_header(data: bytes, offset: int = 0) -> tuple[UserMsgHeader, int]:
    """Decode a userMsgHeader, refusing lengths past maxPushStateBytes."""
    value, end = unpack_one(data, offset)
    return user_msg_header_from_value(value), end


def user_msg_header_from_value(value: Any) -> UserMsgHeader:
    """A userMsgHeader from its unpacked map, refusing lengths past maxPushStateBytes."""
    length = _Fields(value, "userMsgHeader").uint("UserMsgLen", _INT)
    if length > MAX_PUSH_STATE_BYTES:
        raise _malformed(MalformedReason.TOO_LARGE, f"UserMsgLen={length}")
    return UserMsgHeader(user_msg_len=length)


def decode_push_pull(data: bytes, offset: int = 0) -> tuple[PushPull, int]:
    """Decode a push/pull body (after the type byte): header, states, user state."""
    reader = MsgpackReader(data, offset)
    header = push_pull_header_from_value(reader.value())
    # A state is at least one byte: a header promising more states than bytes lies.
    if header.nodes > len(data) - reader.pos:
        raise _malformed(MalformedReason.TRUNCATED, f"{header.nodes} states promised")
    states = tuple(push_node_state_from_value(reader.value()) for _ in range(header.nodes))
    pos = reader.pos
    end = pos + header.user_state_len
    if end > len(data):
        raise _malformed(MalformedReason.TRUNCATED, "user state cut short")
    return PushPull(join=header.join, states=states, user_state=data[pos:end]), end


def decode_stream_user_msg(data: bytes, offset: int = 0) -> tuple[UserMsg, int]:
    """Decode a stream user message body (after the type byte): header then raw bytes."""
    header, pos = decode_user_msg_header(data, offset)
    end = pos + header.user_msg_len
    if end > len(data):
        raise _malformed(MalformedReason.TRUNCATED, "user message cut short")
    return UserMsg(payload=data[pos:end]), end


def message_type(data: bytes) -> MessageType:
    """The type byte of `data`, or MalformedMessage(EMPTY / UNKNOWN_TYPE)."""
    if not data:
        raise _malformed(MalformedReason.EMPTY, "no type byte")
    try:
        return MessageType(data[0])
    except ValueError as exc:
        raise _malformed(MalformedReason.UNKNOWN_TYPE, f"type byte {data[0]}") from exc


def decode_message(data: bytes) -> Message:
    """Decode one *packet* message (type byte + body) that is not a framing wrapper.

    Trailing bytes after the msgpack body are ignored, as Go's decoder ignores them.
    """
    kind = message_type(data)
    if kind is MessageType.USER:
        return UserMsg(payload=data[1:])
    if kind is MessageType.PUSH_PULL:
        return decode_push_pull(data, 1)[0]
    return decode_body(kind, data, 1)[0]


def decode_stream_message(data: bytes) -> tuple[Message, int]:
    """Decode one *stream* message (type byte + body); return it and where it ends."""
    kind = message_type(data)
    if kind is MessageType.USER:
        return decode_stream_user_msg(data, 1)
    if kind is MessageType.PUSH_PULL:
        return decode_push_pull(data, 1)
    if kind in (MessageType.PING, MessageType.ACK_RESP, MessageType.ERR):
        return decode_body(kind, data, 1)
    raise _malformed(MalformedReason.UNKNOWN_TYPE, f"{kind.name} is not a stream message")
