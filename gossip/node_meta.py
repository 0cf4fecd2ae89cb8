"""Node metadata: a small, versioned, forward-compatible record format for memberlist meta.

memberlist gossips up to 512 opaque bytes per member (the Alive message's `Meta`). MetalLB's
speakers send none and read none; ours carry records, so a member can tell the others what it
knows without a message type memberlist lacks:

    "L2" | version (1 byte) | record*          record = type (1) | length (1) | value

- `version` is 1. It changes only if an older reader would misread what follows; a new
  record type is not such a change: readers skip types they do not know. So a newer l2agent
  adds records and old ones keep reading the records they know.
- KEYS (type 1): the member's gossip key fingerprints (`gossip.rotation.fingerprint`), 8
  bytes each: primary (sends with it) | target (the key its secret file names) | every other
  installed key. The key rotation reads it (`gossip.rotation`).

Meta that is empty (MetalLB, Go memberlist peers, speakers before this format), lacks the
magic or has another version is *foreign*: it says nothing we can rely on, which is not an
error. Meta that claims to be ours but does not parse is *malformed*. Both come back as a
`MetaProblem`, never an exception: the input is a peer's, and 512 bytes bound the work.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gossip.errors import LocalError
from gossip.messages import META_MAX_SIZE

__all__ = [
    "FINGERPRINT_SIZE",
    "MAGIC",
    "VERSION",
    "KeyAdvert",
    "MetaProblem",
    "NodeMeta",
    "RecordType",
    "decode_meta",
    "encode_meta",
]

MAGIC = b"L2"
VERSION = 1
FINGERPRINT_SIZE = 8
_HEADER = len(MAGIC) + 1
_MAX_RECORD = 255
_MAX_FINGERPRINTS = _MAX_RECORD // FINGERPRINT_SIZE - 1
"""Installed keys one KEYS record holds (31 fingerprints fit; the target may repeat the
primary)."""


class RecordType(enum.IntEnum):
    """Record types. Append only; a reader skips the ones it does not know."""

    KEYS = 1


class MetaProblem(enum.Enum):
    """Why a member's meta tells us nothing (the value is the word logs and metrics use)."""

    EMPTY = "empty"  # MetalLB and Go memberlist peers, speakers before this format
    FOREIGN = "foreign"  # some other application's meta
    NEWER_VERSION = "newer_version"  # ours, but a format version this reader predates
    MALFORMED = "malformed"  # claims to be ours and does not parse


@dataclass(frozen=True, slots=True)
class KeyAdvert:
    """What a member says about its gossip keys, as fingerprints.

    `installed` holds every key it decrypts with, `primary` and `target` included.
    """

    primary: bytes
    target: bytes
    installed: frozenset[bytes]

    def __post_init__(self) -> None:
        for fp in (self.primary, self.target, *self.installed):
            if len(fp) != FINGERPRINT_SIZE:
                raise LocalError(f"a key fingerprint is {FINGERPRINT_SIZE} bytes, not {len(fp)}")
        if self.primary not in self.installed or self.target not in self.installed:
            raise LocalError("primary and target must be installed")
        if len(self.installed) > _MAX_FINGERPRINTS:
            raise LocalError(f"at most {_MAX_FINGERPRINTS} installed keys can be advertised")


@dataclass(frozen=True, slots=True)
class NodeMeta:
    """Our meta as values (None: the record is absent)."""

    keys: KeyAdvert | None = None


def encode_meta(meta: NodeMeta) -> bytes:
    """The meta bytes for `meta`: deterministic (the same value gives the same bytes, so
    re-advertising an unchanged value is recognisably a no-op)."""
    out = bytearray(MAGIC)
    out.append(VERSION)
    if meta.keys is not None:
        adv = meta.keys
        others = sorted(adv.installed - {adv.primary, adv.target})
        value = b"".join([adv.primary, adv.target, *others])
        out += bytes([RecordType.KEYS, len(value)]) + value
    if len(out) > META_MAX_SIZE:  # pragma: no cover - one record cannot reach it
        raise LocalError(f"meta of {len(out)} bytes exceeds {META_MAX_SIZE}")
    return bytes(out)


def decode_meta(data: bytes) -> NodeMeta | MetaProblem:
    """A member's meta as values, or why it carries none we can use."""
    if not data:
        return MetaProblem.EMPTY
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        return MetaProblem.FOREIGN
    if data[len(MAGIC)] != VERSION:
        return MetaProblem.NEWER_VERSION if data[len(MAGIC)] > VERSION else MetaProblem.FOREIGN
    if len(data) > META_MAX_SIZE:
        return MetaProblem.MALFORMED
    keys: KeyAdvert | None = None
    seen: set[int] = set()
    pos = _HEADER
    while pos < len(data):
        if pos + 2 > len(data):
            return MetaProblem.MALFORMED
        kind, length = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if len(value) != length or kind in seen:
            return MetaProblem.MALFORMED
        seen.add(kind)
        if kind == RecordType.KEYS:
            parsed = _keys(value)
            if parsed is None:
                return MetaProblem.MALFORMED
            keys = parsed
    return NodeMeta(keys=keys)


def _keys(value: bytes) -> KeyAdvert | None:
    if len(value) < 2 * FINGERPRINT_SIZE or len(value) % FINGERPRINT_SIZE:
        return None
    fps = [value[i : i + FINGERPRINT_SIZE] for i in range(0, len(value), FINGERPRINT_SIZE)]
    return KeyAdvert(primary=fps[0], target=fps[1], installed=frozenset(fps))
