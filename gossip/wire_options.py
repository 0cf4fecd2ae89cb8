"""The settings that shape bytes on the wire, and the inbound label rule (spec §5.6).

Shared by the packet framing (`gossip.framing`) and the incremental stream parser
(`gossip.stream_parser`), so neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.codec import IntStyle
from gossip.errors import LocalError, MalformedMessage, MalformedReason
from gossip.keyring import EncryptionVersion, Keyring

__all__ = ["LABEL_MAX", "WireOptions", "check_label"]

LABEL_MAX = 255


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
        if len(self.label) > LABEL_MAX:
            raise LocalError(f"label is {len(self.label)} bytes, at most 255")

    @property
    def encrypts(self) -> bool:
        return self.keyring is not None and self.verify_outgoing


def check_label(got: bytes, options: WireOptions) -> None:
    """Raise LABEL_MISMATCH unless `got` (b"" = no header) is acceptable under `options`."""
    if options.skip_inbound_label_check:
        if got:
            raise MalformedMessage(
                MalformedReason.LABEL_MISMATCH, "labeled traffic while skipping checks"
            )
        return
    if got != options.label:
        raise MalformedMessage(
            MalformedReason.LABEL_MISMATCH, f"label {got!r}, want {options.label!r}"
        )
