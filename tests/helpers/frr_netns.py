"""One FRR (zebra, bfdd, bgpd) in a network namespace of its own, started as a sidecar
starts it (no systemd): for tests that need FRR's own word and no lab around it.

    with frr_in_netns() as frr:        # skips (pytest.skip) where FRR or root is missing
        frr.reload("--reload", path)   # frr-reload.py against it
        frr.run("vtysh", ...)          # any command inside the namespace
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

FRR_BIN = Path("/usr/lib/frr")
RELOAD = FRR_BIN / "frr-reload.py"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, FRR daemons)"
    for tool in ("ip", "vtysh", "sysctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not RELOAD.is_file() or not (FRR_BIN / "bgpd").is_file():
        return "FRR (frr, frr-pythontools) is not installed"
    return None


@dataclass
class Frr:
    netns: str
    dir: Path

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def reload(self, mode: str, path: Path) -> subprocess.CompletedProcess[str]:
        d = str(self.dir)
        return self.run(
            "python3",
            str(RELOAD),
            mode,
            "--vty_socket",
            d,
            "--confdir",
            d,
            "--rundir",
            d,
            "--bindir",
            "/usr/bin",
            str(path),
        )


@contextmanager
def frr_in_netns() -> Iterator[Frr]:
    """FRR in a fresh namespace (loopback up); its directory is config, run and vty socket
    directory at once. Everything is stopped and removed on the way out."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    netns = f"l2bgpfp-{os.getpid()}-{secrets.token_hex(3)}"
    # FRR drops to the frr user: its directory must be reachable by it (pytest's tmp_path
    # lives under a root-only directory)
    d = Path(tempfile.mkdtemp(prefix=f"{netns}-"))
    d.chmod(0o755)
    shutil.chown(d, "frr", "frr")
    (d / "vtysh.conf").write_text("")
    subprocess.run(["ip", "netns", "add", netns], check=True)
    box = Frr(netns, d)
    try:
        box.run("ip", "link", "set", "lo", "up")
        for daemon in ("zebra", "bfdd", "bgpd"):
            extra = ["--bfdctl", str(d / "bfdd.sock")] if daemon == "bfdd" else []
            proc = box.run(
                str(FRR_BIN / daemon),
                "-d",
                "-u",
                "frr",
                "-g",
                "frr",
                "-P",
                "0",
                "--vty_socket",
                str(d),
                "-i",
                str(d / f"{daemon}.pid"),
                "-f",
                "/dev/null",
                "--log",
                f"file:{d}/{daemon}.log",
                "-z",
                str(d / "zserv.api"),
                *extra,
            )
            assert proc.returncode == 0, f"{daemon}: {proc.stderr}"
        deadline = time.monotonic() + 10
        while not (d / "bgpd.vty").exists():
            assert time.monotonic() < deadline, "bgpd did not open its vty socket"
            time.sleep(0.05)
        yield box
    finally:
        for daemon in ("bgpd", "bfdd", "zebra"):
            pidfile = d / f"{daemon}.pid"
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(d, ignore_errors=True)
