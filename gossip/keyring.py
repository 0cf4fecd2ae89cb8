"""AES-GCM keyring and memberlist's encryption envelope.

memberlist encrypts with the primary key (index 0) and tries every installed key when
decrypting, which lets a cluster rotate keys without downtime: install the new key everywhere,
make it primary, then remove the old one. The envelope is `vsn | nonce(12) | ciphertext+tag`;
version 1 seals the plaintext as is, version 0 (protocol version 1 senders) PKCS#7-pads it to a
multiple of 16 first. Nonces come from a caller-supplied `random_bytes(n)` so this module stays
free of I/O and tests can pin them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gossip.errors import DecryptFailed, LocalError

__all__ = [
    "KEY_SIZES",
    "NONCE_SIZE",
    "TAG_SIZE",
    "EncryptionVersion",
    "Keyring",
    "RandomBytes",
    "encrypted_length",
    "metallb_key",
]

KEY_SIZES = (16, 24, 32)
"""AES-128, AES-192 and AES-256."""
NONCE_SIZE = 12
TAG_SIZE = 16
_BLOCK = 16

RandomBytes = Callable[[int], bytes]
"""os.urandom-style source of nonce bytes."""


class EncryptionVersion(IntEnum):
    """The envelope's first byte. Append only."""

    PADDED = 0  # legacy: PKCS#7 padding inside GCM (senders speaking protocol version 1)
    PLAIN = 1  # GCM over the plaintext as is (every current sender)


def encrypted_length(version: EncryptionVersion, plaintext_len: int) -> int:
    """Envelope size for a plaintext: memberlist's encryptedLength (29 or up to 45 overhead)."""
    if version is EncryptionVersion.PLAIN:
        return 1 + NONCE_SIZE + plaintext_len + TAG_SIZE
    padded = plaintext_len + _BLOCK - plaintext_len % _BLOCK
    return 1 + NONCE_SIZE + padded + TAG_SIZE


def metallb_key(secret: bytes) -> bytes:
    """MetalLB's key from its `memberlist` Secret: the first 32 bytes of secret ‖ SHA-256("").

    MetalLB calls `sha256.New().Sum(secret)`, which *appends* the digest of nothing to the
    secret rather than hashing it; a long secret therefore yields its own first 32 bytes.
    """
    return (secret + hashlib.sha256(b"").digest())[:32]


@dataclass(frozen=True, slots=True)
class Keyring:
    """Installed keys, primary first. Immutable: rotation returns a new keyring."""

    keys: tuple[bytes, ...]
    _ciphers: tuple[AESGCM, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise LocalError("a keyring needs at least one key")
        for key in self.keys:
            if len(key) not in KEY_SIZES:
                raise LocalError(f"key must be 16, 24 or 32 bytes, not {len(key)}")
        if len(set(self.keys)) != len(self.keys):
            raise LocalError("duplicate key in keyring")
        object.__setattr__(self, "_ciphers", tuple(AESGCM(k) for k in self.keys))

    @classmethod
    def of(cls, primary: bytes, others: Sequence[bytes] = ()) -> Keyring:
        return cls((primary, *[k for k in others if k != primary]))

    @property
    def primary(self) -> bytes:
        return self.keys[0]

    def add(self, key: bytes) -> Keyring:
        """Install a decryption-only key (no-op if present)."""
        return self if key in self.keys else Keyring((*self.keys, key))

    def use(self, key: bytes) -> Keyring:
        """Make an installed key the primary (memberlist's UseKey)."""
        if key not in self.keys:
            raise LocalError("key is not installed")
        return Keyring((key, *[k for k in self.keys if k != key]))

    def remove(self, key: bytes) -> Keyring:
        """Uninstall a key; the primary cannot be removed (memberlist's RemoveKey)."""
        if key == self.primary:
            raise LocalError("cannot remove the primary key")
        return Keyring(tuple(k for k in self.keys if k != key))

    def encrypt(
        self,
        plaintext: bytes,
        additional_data: bytes,
        random_bytes: RandomBytes,
        version: EncryptionVersion = EncryptionVersion.PLAIN,
    ) -> bytes:
        """Seal with the primary key: `vsn | nonce | ciphertext+tag`."""
        nonce = random_bytes(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise LocalError("nonce source returned the wrong length")
        if version is EncryptionVersion.PADDED:
            pad = _BLOCK - len(plaintext) % _BLOCK
            plaintext = plaintext + bytes([pad]) * pad
        sealed = self._ciphers[0].encrypt(nonce, plaintext, additional_data or None)
        return bytes([version]) + nonce + sealed

    def decrypt(self, envelope: bytes, additional_data: bytes) -> bytes:
        """Open with whichever key works; DecryptFailed if none does or the envelope is bad."""
        if not envelope:
            raise DecryptFailed("empty envelope")
        try:
            version = EncryptionVersion(envelope[0])
        except ValueError as exc:
            raise DecryptFailed(f"unknown encryption version {envelope[0]}") from exc
        if len(envelope) < encrypted_length(version, 0):
            raise DecryptFailed(f"envelope of {len(envelope)} bytes is too short")
        nonce = envelope[1 : 1 + NONCE_SIZE]
        sealed = envelope[1 + NONCE_SIZE :]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, additional_data or None)
            except InvalidTag:
                continue
            if version is EncryptionVersion.PADDED:
                return _unpad(plain)
            return plain
        raise DecryptFailed("no installed key opens the message")


def _unpad(plain: bytes) -> bytes:
    if not plain:
        raise DecryptFailed("padded plaintext is empty")
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or pad > len(plain):
        raise DecryptFailed("bad padding")
    return plain[:-pad]
