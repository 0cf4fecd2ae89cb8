"""A directory laid out as the kubelet lays out a Secret volume, updated as it updates one."""

from __future__ import annotations

import os
from pathlib import Path


class SecretVolume:
    """`<root>/secretkey` -> `..data/secretkey`, `..data` -> `..v<N>`: an update writes a new
    version directory and swaps the `..data` symlink atomically (rename over it), so a
    reader sees the old secret or the new one, never a mix, and the path itself never
    changes."""

    def __init__(self, root: Path, secret: bytes) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True, exist_ok=True)
        self.update(secret)
        (root / "secretkey").symlink_to("..data/secretkey")

    @property
    def path(self) -> Path:
        return self.root / "secretkey"

    def update(self, secret: bytes) -> None:
        self.version += 1
        version = self.root / f"..v{self.version}"
        version.mkdir()
        (version / "secretkey").write_bytes(secret)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")
