"""Shared by the image tests and bench/image.py: podman with the project's settings, the
rendered manifests, and why podman cannot work here (a skip reason)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PODMAN = [str(REPO / "scripts" / "image" / "podman")]
IMAGE = "localhost/l2agent:dev"
FRR_IMAGE = "localhost/l2agent-frr:dev"
TOOLS = ("podman", "runc", "mmdebstrap", "kubectl", "ip")


def podman_skip_reason() -> str | None:
    """Why podman cannot build and run the images here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (mmdebstrap, podman with network namespaces)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/install-deps.sh installs them as root)"
    info = subprocess.run([*PODMAN, "info"], capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.strip()[-500:]}"
    return None


def render_deploy() -> list[dict[str, Any]]:
    """Every object `kubectl kustomize deploy/` renders."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy")], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def workload(rendered: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The pod template spec of the rendered ``kind``/``name``."""
    (found,) = [o for o in rendered if o["kind"] == kind and o["metadata"]["name"] == name]
    spec: dict[str, Any] = found["spec"]["template"]["spec"]
    return spec


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    """Run scripts/image/podman ARGS and return stdout (raise with stderr on failure)."""
    proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout
