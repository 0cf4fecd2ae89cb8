"""The engine's glue to `gossip.framing`: one member's wire options, and a codec memo.

Packets: `[label] encrypt([crc]([compress](msg | compound)))`; streams: `[label] [0x0a len
envelope] [0x09 compress] message` (spec §5, §6). The layers themselves live in
`gossip.framing`; this module only binds them to a GossipConfig, a keyring and the
engine's random source (for nonces).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from gossip.codec import (
    decode_message,
    encode_message,
    encode_push_node_state,
    encode_stream_message,
    pack_map,
)
from gossip.config import GossipConfig
from gossip.framing import (
    COMPOUND_MAX_PARTS,
    MAX_PACKET_PARTS,
    SplitPayload,
    StreamMessage,
    StreamReader,
    WireOptions,
    make_compound,
    open_packet,
    packet_overhead,
    seal_packet,
    seal_stream,
    split_payload,
)
from gossip.keyring import EncryptionVersion, Keyring
from gossip.messages import Message, MessageType, NodeState, PushNodeState

if TYPE_CHECKING:
    import random

__all__ = ["CodecCache", "StreamMessage", "Wire", "decode_packet_message"]


def decode_packet_message(part: bytes) -> Message:
    """One plain message of a packet (after unwrapping)."""
    return decode_message(part)


StateKey = tuple[str, bytes, int, bytes, int, NodeState, bytes]
"""A member table entry as a push/pull carries it: name, addr, port, meta, inc, state, vsn."""


def encode_state(key: StateKey) -> bytes:
    """One msgpack pushNodeState."""
    name, addr, port, meta, inc, state, vsn = key
    return encode_push_node_state(PushNodeState(name, addr, port, meta, inc, state, vsn))


_GOSSIP_TYPES = frozenset((MessageType.ALIVE, MessageType.SUSPECT, MessageType.DEAD))


class CodecCache:
    """Shared memo of gossip message bytes <-> values, for simulations of many engines.

    Alive/suspect/dead messages are re-gossiped byte-identical by every member, so a
    simulator running a thousand engines in one process decodes the same bytes a million
    times; values are immutable, so sharing them is safe. Bounded: cleared when full.
    """

    __slots__ = ("_dec", "_enc", "_states", "max_entries")

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._dec: dict[bytes, Message] = {}
        self._enc: dict[Message, bytes] = {}
        self._states: dict[StateKey, bytes] = {}

    def decode(self, part: bytes) -> Message:
        if part[:1] and part[0] in _GOSSIP_TYPES:
            msg = self._dec.get(part)
            if msg is None:
                msg = decode_message(part)
                if len(self._dec) >= self.max_entries:
                    self._dec.clear()
                self._dec[part] = msg
            return msg
        return decode_message(part)

    def encode_state(self, key: StateKey) -> bytes:
        """Encoded pushNodeState for (name, addr, port, meta, incarnation, state, vsn)."""
        data = self._states.get(key)
        if data is None:
            data = encode_state(key)
            if len(self._states) >= self.max_entries:
                self._states.clear()
            self._states[key] = data
        return data

    def encode(self, msg: Message) -> bytes:
        data = self._enc.get(msg)
        if data is None:
            data = encode_message(msg)
            if len(self._enc) >= self.max_entries:
                self._enc.clear()
            self._enc[msg] = data
        return data


class Wire:
    """Wrapping and unwrapping with one member's label, keyring and switches."""

    def __init__(self, config: GossipConfig, keyring: Keyring | None, rng: random.Random) -> None:
        version = (
            EncryptionVersion.PADDED if config.protocol_version < 2 else EncryptionVersion.PLAIN
        )
        self.options = WireOptions(
            label=config.label.encode(),
            keyring=keyring,
            verify_incoming=config.gossip_verify_incoming,
            verify_outgoing=config.gossip_verify_outgoing,
            skip_inbound_label_check=config.skip_inbound_label_check,
            encryption_version=version,
        )
        self._compress = config.enable_compression
        self._random = rng.randbytes
        self.overhead = packet_overhead(self.options)
        """Bytes the label and encryption add to a packet (taken off the 1400 budget)."""

    @property
    def keyring(self) -> Keyring | None:
        return self.options.keyring

    def set_keyring(self, keyring: Keyring | None) -> None:
        """Use `keyring` for every packet and stream from now on (streams already open
        finish with the one they began with)."""
        self.options = dataclasses.replace(self.options, keyring=keyring)
        self.overhead = packet_overhead(self.options)

    def unwrap_packet(self, data: bytes, max_parts: int = MAX_PACKET_PARTS) -> SplitPayload:
        """The plain messages of a datagram, what was wrong with the rest of it, and what
        it cost (at most `max_parts` parts are visited).

        Raises MalformedMessage when nothing of the datagram can be used.
        """
        return split_payload(open_packet(data, self.options), max_parts=max_parts)

    def wrap_packet(self, parts: list[bytes], crc: bool) -> list[bytes]:
        """Frame messages into datagrams (compounds split under 128 parts)."""
        out: list[bytes] = []
        for i in range(0, len(parts), COMPOUND_MAX_PARTS):
            chunk = parts[i : i + COMPOUND_MAX_PARTS]
            payload = chunk[0] if len(chunk) == 1 else make_compound(chunk)
            out.append(
                seal_packet(payload, self.options, self._random, crc=crc, compress=self._compress)
            )
        return out

    def encode_stream(self, msg: Message, dialer: bool) -> bytes:
        """A whole stream message as the dialer (label first) or the responder sends it."""
        return seal_stream(
            encode_stream_message(msg),
            self.options,
            self._random,
            dialer=dialer,
            compress=self._compress,
        )

    def encode_push_pull(
        self, join: bool, states: list[bytes], user_state: bytes, dialer: bool
    ) -> bytes:
        """A push/pull from already encoded pushNodeStates (the same bytes as encoding a
        `PushPull` value; go-msgpack 0.5 int style), so a big table is not re-encoded."""
        header = pack_map({"Join": join, "Nodes": len(states), "UserStateLen": len(user_state)})
        message = b"".join([bytes([MessageType.PUSH_PULL]), header, *states, user_state])
        return seal_stream(
            message, self.options, self._random, dialer=dialer, compress=self._compress
        )

    def stream_reader(self, dialer: bool) -> StreamReader:
        """An incremental reader for one stream; a dialer reads a reply with no label."""
        return StreamReader(self.options, expect_label=not dialer)
