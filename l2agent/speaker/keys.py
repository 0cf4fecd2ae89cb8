"""The speaker's gossip keys: watch `--secret-key-file` and rotate keys without a split.

The rules live in the pure `gossip.rotation.KeyRotation`; this adapter feeds it and applies
what it says. Every `poll` seconds it stats the file (a Secret volume update swaps the `..data`
symlink atomically, so the stat follows the link to the file it names now) and reads it only
when that changed, at most 32 bytes (all MetalLB's key derivation looks at); it reads the
live members' node meta; then it installs the keyring the machine wants *before* advertising
it (a member never claims a key it cannot yet use). Bounded: one stat, at most one 32-byte
read and one pass over the member table per poll; member metas are decoded once per distinct
value; a log line only when something changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gossip.keyring import Keyring, metallb_key
from gossip.node_meta import KeyAdvert, MetaProblem, NodeMeta, decode_meta, encode_meta
from gossip.rotation import KeyChange, KeyChangeKind, KeyRotation
from l2agent.model.reports import GossipKeyReport, KeyFileProblem

__all__ = ["GossipKeys", "KeyTarget", "SecretKeyFile"]

log = logging.getLogger(__name__)

_SECRET_BYTES = 32
"""`metallb_key` depends on the first 32 bytes of the secret only."""
_META_CACHE = 1024


class KeyTarget(Protocol):
    """Where the keys go (`l2agent.speaker.gossip.GossipMembership` is one)."""

    def member_metas(self) -> Mapping[str, bytes]:
        """Node meta of every live member but us."""
        ...

    def set_keyring(self, keyring: Keyring) -> None: ...

    def set_meta(self, meta: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class _Stamp:
    path: str
    device: int
    inode: int
    mtime_ns: int
    size: int


class SecretKeyFile:
    """The secret key file, read again only when the file its path resolves to changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: _Stamp | None = None

    def read(self) -> bytes:
        """The secret as it is now (OSError if it cannot be read)."""
        stamp = self._stat()
        with open(self.path, "rb") as f:
            data = f.read(_SECRET_BYTES)
        self._stamp = stamp
        return data

    def changed(self) -> bytes | None:
        """The secret if the file changed since the last read, else None (OSError if it
        cannot be read)."""
        if self._stat() == self._stamp:
            return None
        return self.read()

    def _stat(self) -> _Stamp:
        st = os.stat(self.path)
        return _Stamp(os.path.realpath(self.path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class GossipKeys:
    """Gossip keys from a MetalLB `memberlist` secret file, rotated as the file changes."""

    def __init__(self, path: Path, *, settle: float, poll: float = 0.5) -> None:
        self.file = SecretKeyFile(path)
        self.rotation = KeyRotation(metallb_key(self.file.read()), settle=settle)
        self.poll = poll
        self._target: KeyTarget | None = None
        self._applied_keys = self.rotation.keys
        self._applied_meta = self.meta()
        self._metas: dict[bytes, KeyAdvert | MetaProblem | None] = {}
        self._file_errors = dict.fromkeys(KeyFileProblem, 0)
        self._file_problem: KeyFileProblem | None = None
        self._unreadable_meta = {MetaProblem.MALFORMED: 0, MetaProblem.NEWER_VERSION: 0}
        self._now = 0.0

    # -- what the gossip starts with ----------------------------------------------------------

    def keyring(self) -> Keyring:
        return Keyring(self.rotation.keys)

    def meta(self) -> bytes:
        return encode_meta(NodeMeta(keys=self.rotation.advert))

    # -- running ------------------------------------------------------------------------------

    def attach(self, target: KeyTarget) -> None:
        """Where to apply keys and adverts, and whose members to read."""
        self._target = target

    async def watch(self) -> None:
        """Poll the file and the members until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self.step(loop.time())
            await asyncio.sleep(self.poll)

    def step(self, now: float) -> None:
        """One poll: file, members, timers; then apply and log what changed."""
        self._now = now
        secret = self._read_file()
        if secret is not None:
            self.rotation.handle_file_key(metallb_key(secret), now)
        if self._target is not None:
            metas = self._target.member_metas()
            self.rotation.handle_members({n: self._advert(m) for n, m in metas.items()}, now)
        else:
            self.rotation.tick(now)
        self._apply()
        while (change := self.rotation.next_change()) is not None:
            _log_change(change)

    def _read_file(self) -> bytes | None:
        try:
            secret = self.file.changed()
        except OSError as exc:
            problem = (
                KeyFileProblem.MISSING
                if isinstance(exc, FileNotFoundError)
                else KeyFileProblem.UNREADABLE
            )
            self._file_errors[problem] += 1
            if problem is not self._file_problem:
                log.warning(
                    "cannot read the gossip secret %s (%s): keeping the keys as they are",
                    self.file.path,
                    exc,
                )
            self._file_problem = problem
            return None
        if self._file_problem is not None:
            log.info("gossip secret %s readable again", self.file.path)
            self._file_problem = None
        return secret

    def _advert(self, meta: bytes) -> KeyAdvert | None:
        """A member's key advert (None: it advertises none); decoded once per distinct meta."""
        if meta in self._metas:
            got = self._metas[meta]
        else:
            decoded = decode_meta(meta)
            got = decoded if isinstance(decoded, MetaProblem) else decoded.keys
            if got in self._unreadable_meta:
                assert isinstance(got, MetaProblem)
                self._unreadable_meta[got] += 1
                log.warning("member meta in l2agent's format that we cannot read (%s)", got.value)
            if len(self._metas) >= _META_CACHE:
                self._metas.clear()
            self._metas[meta] = got
        return None if isinstance(got, MetaProblem) else got

    def _apply(self) -> None:
        """Keys first, then the advert: never claim a key before it opens anything."""
        if self._target is None:
            return
        keys = self.rotation.keys
        if keys != self._applied_keys:
            self._target.set_keyring(Keyring(keys))
            self._applied_keys = keys
        meta = self.meta()
        if meta != self._applied_meta:
            self._target.set_meta(meta)
            self._applied_meta = meta

    # -- views --------------------------------------------------------------------------------

    def report(self) -> GossipKeyReport:
        status = self.rotation.status()
        since = status.since
        return GossipKeyReport(
            status=status,
            rotating_for=0.0 if since is None else max(0.0, self._now - since),
            file_errors=dict(self._file_errors),
            unreadable_meta=dict(self._unreadable_meta),
        )

    def status_document(self) -> dict[str, Any]:
        """The /status `gossip_keys` section."""
        report = self.report()
        status = report.status
        return {
            "phase": status.phase.value,
            "primary": status.primary.hex(),
            "target": status.target.hex(),
            "installed": status.installed,
            "waiting": [{"member": w.member, "reason": w.reason.value} for w in status.waiting],
            "ahead": list(status.ahead),
            "rotating_seconds": round(report.rotating_for, 3),
        }


def _log_change(change: KeyChange) -> None:
    fp = change.fingerprint.hex()
    match change.kind:
        case KeyChangeKind.INSTALLED:
            log.info(
                "gossip key %s installed for decryption; switching once every member has it", fp
            )
        case KeyChangeKind.SWITCHED:
            log.info("every live member holds gossip key %s: sending with it now", fp)
        case KeyChangeKind.DROPPED:
            log.info("dropped gossip key %s: no live member sends with it any more", fp)
        case KeyChangeKind.WAITING if change.waiting:
            log.warning(
                "gossip key rotation waits for %s", ", ".join(str(w) for w in change.waiting)
            )
        case KeyChangeKind.WAITING:
            log.info("gossip key rotation no longer waits for anyone")
        case KeyChangeKind.AHEAD if change.members:
            log.warning(
                "%s rotate to a gossip key this node has not received: is the memberlist "
                "Secret mounted and current here?",
                ", ".join(change.members),
            )
        case KeyChangeKind.AHEAD:
            pass
