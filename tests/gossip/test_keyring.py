"""AES-GCM keyring: envelope versions, rotation, and MetalLB's key derivation."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gossip.errors import DecryptFailed, LocalError
from gossip.keyring import EncryptionVersion, Keyring, encrypted_length, metallb_key

NONCE = bytes(range(12))


def fixed(n: int) -> bytes:
    return NONCE[:n]


@pytest.mark.parametrize("size", [16, 24, 32])
def test_envelope_layout_v1(size: int) -> None:
    key = bytes([size]) * size
    env = Keyring((key,)).encrypt(b"hello", b"ad", fixed)
    assert env[0] == 1 and env[1:13] == NONCE
    assert len(env) == encrypted_length(EncryptionVersion.PLAIN, 5) == 5 + 29
    # An independent AES-GCM opens it with the same nonce and additional data.
    assert AESGCM(key).decrypt(NONCE, env[13:], b"ad") == b"hello"
    assert Keyring((key,)).decrypt(env, b"ad") == b"hello"


def test_envelope_v0_padding() -> None:
    key = b"k" * 16
    env = Keyring((key,)).encrypt(b"x" * 16, b"", fixed, EncryptionVersion.PADDED)
    assert env[0] == 0
    assert len(env) == encrypted_length(EncryptionVersion.PADDED, 16) == 1 + 12 + 32 + 16
    assert AESGCM(key).decrypt(NONCE, env[13:], None) == b"x" * 16 + b"\x10" * 16
    assert Keyring((key,)).decrypt(env, b"") == b"x" * 16


def test_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    ring = Keyring.of(old)
    env_old = ring.encrypt(b"m", b"", fixed)
    ring = ring.add(new)
    assert ring.decrypt(env_old, b"") == b"m"
    ring = ring.use(new)
    assert ring.primary == new
    env_new = ring.encrypt(b"m", b"", fixed)
    assert Keyring((new,)).decrypt(env_new, b"") == b"m"
    ring = ring.remove(old)
    with pytest.raises(DecryptFailed):
        ring.decrypt(env_old, b"")
    with pytest.raises(LocalError):
        ring.remove(new)
    with pytest.raises(LocalError):
        ring.use(old)


@pytest.mark.parametrize(
    "envelope",
    [b"", b"\x02" + bytes(40), b"\x01" + bytes(20), b"\x00" + bytes(40)],
)
def test_bad_envelopes(envelope: bytes) -> None:
    with pytest.raises(DecryptFailed):
        Keyring((b"k" * 16,)).decrypt(envelope, b"")


def test_wrong_additional_data_fails() -> None:
    ring = Keyring((b"k" * 16,))
    with pytest.raises(DecryptFailed):
        ring.decrypt(ring.encrypt(b"m", b"label-a", fixed), b"label-b")


def test_bad_keys() -> None:
    for keys in [(), (b"short",), (b"k" * 16, b"k" * 16)]:
        with pytest.raises(LocalError):
            Keyring(keys)


def test_metallb_key_derivation() -> None:
    long_secret = b"A" * 172  # base64 of 128 random bytes is 172 characters
    assert metallb_key(long_secret) == b"A" * 32
    # sha256.New().Sum(secret) appends the empty digest: short secrets are padded with it.
    empty_digest = hashlib.sha256(b"").digest()
    assert metallb_key(b"abc") == b"abc" + empty_digest[:29]
    assert metallb_key(b"") == empty_digest
    assert len(metallb_key(b"x" * 5)) == 32


def test_decrypts_go_envelopes() -> None:
    # tests/data/gossip/go_golden.json: memberlist's encryptPayload, key 00..1f, AD "lab".
    import json
    from pathlib import Path

    golden_path = Path(__file__).resolve().parents[1] / "data" / "gossip" / "go_golden.json"
    golden = {k: bytes.fromhex(v) for k, v in json.loads(golden_path.read_text()).items()}
    ring = Keyring.of(b"x" * 16, [bytes(range(32))])  # the right key is not the primary
    for name in ("encrypted_v1", "encrypted_v0"):
        assert ring.decrypt(golden[name], b"lab") == golden["compound"]
        with pytest.raises(DecryptFailed):
            ring.decrypt(golden[name], b"")
