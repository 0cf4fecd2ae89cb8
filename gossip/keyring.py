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
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    Cipher,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gossip.errors import DecryptFailed, LocalError

__all__ = [
    "KEY_SIZES",
    "NONCE_SIZE",
    "TAG_SIZE",
    "EncryptionVersion",
    "EnvelopeOpener",
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


class EnvelopeOpener:
    """Opens one stream envelope a slice at a time, so a 20 MiB envelope does not stall.

    Ciphertext is added as it arrives (`add`); once all `size` bytes are in, `work` decrypts
    at most a given number of bytes per call with the primary key, then the next key if the
    tag does not verify. Nothing is released before a tag verifies: `plaintext` stays None
    until then, and DecryptFailed is raised when no key opens it.
    """

    __slots__ = ("_ad", "_cipher", "_decryptor", "_key", "_plain", "_pos", "_ring", "plaintext")

    def __init__(self, keyring: Keyring, additional_data: bytes) -> None:
        self._ring = keyring
        self._ad = additional_data
        self._cipher = bytearray()
        self._plain: list[bytes] = []
        self._key = 0
        self._pos = 0
        self._decryptor: AEADDecryptionContext | None = None
        self.plaintext: bytes | None = None

    @property
    def received(self) -> int:
        return len(self._cipher)

    @property
    def held(self) -> int:
        """Bytes buffered (ciphertext and the plaintext opened so far)."""
        return len(self._cipher) + self._pos

    def add(self, chunk: bytes) -> None:
        self._cipher += chunk

    def work(self, max_bytes: int) -> int:
        """Decrypt up to `max_bytes`; returns how many were processed."""
        if self.plaintext is not None:
            return 0
        version, sealed_end = self._check()
        start = 1 + NONCE_SIZE
        if self._decryptor is None:
            nonce = bytes(self._cipher[1:start])
            key = self._ring.keys[self._key]
            dec = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()
            if self._ad:
                dec.authenticate_additional_data(self._ad)
            self._decryptor, self._pos, self._plain = dec, start, []
        dec = self._decryptor
        end = min(self._pos + max(max_bytes, 1), sealed_end)
        self._plain.append(dec.update(bytes(self._cipher[self._pos : end])))
        done = end - self._pos
        self._pos = end
        if end == sealed_end:
            self._finish(dec, version, sealed_end)
        return done

    def _check(self) -> tuple[EncryptionVersion, int]:
        try:
            version = EncryptionVersion(self._cipher[0])
        except (ValueError, IndexError) as exc:
            raise DecryptFailed("unknown encryption version") from exc
        if len(self._cipher) < encrypted_length(version, 0):
            raise DecryptFailed(f"envelope of {len(self._cipher)} bytes is too short")
        return version, len(self._cipher) - TAG_SIZE

    def _finish(
        self, dec: AEADDecryptionContext, version: EncryptionVersion, sealed_end: int
    ) -> None:
        tag = bytes(self._cipher[sealed_end:])
        try:
            self._plain.append(dec.finalize_with_tag(tag))
        except InvalidTag:
            self._key += 1
            self._decryptor, self._plain, self._pos = None, [], 0
            if self._key >= len(self._ring.keys):
                raise DecryptFailed("no installed key opens the message") from None
            return
        plain = b"".join(self._plain)
        self.plaintext = _unpad(plain) if version is EncryptionVersion.PADDED else plain
        self._cipher, self._plain, self._pos = bytearray(), [], 0
