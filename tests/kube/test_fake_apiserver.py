"""The fake API server judged by an independent client: kubectl (client-go) must list,
watch, create and patch through it, so its wire format is the real one, not only what our
own code expects."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._util import WAIT, wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed (Debian package `kubectl`)"
)

SEEDS = Path(__file__).resolve().parents[1] / "data" / "seeds"


def kubectl(api: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--server={api.url}", f"--cache-dir={tmp_path / 'cache'}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_kubectl_creates_and_lists_custom_resources(apiserver: Any, tmp_path: Path) -> None:
    seed = SEEDS / "01-layer2-pool.yaml"
    if not seed.exists():
        pytest.skip(f"{seed} missing")
    r = kubectl(apiserver, tmp_path, "create", "-f", str(seed), "--validate=false")
    assert r.returncode == 0, r.stderr
    r = kubectl(apiserver, tmp_path, "get", "ipaddresspools,l2advertisements", "-A", "-o", "json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == [
        ("IPAddressPool", "layer2-pool"),
        ("L2Advertisement", "layer2-advertisement"),
    ]
    assert apiserver.get("IPAddressPool", "metallb-system", "layer2-pool")["spec"]["addresses"] == [
        "10.0.3.100-10.0.3.150"
    ]


def test_kubectl_patches_the_status_subresource(apiserver: Any, tmp_path: Path) -> None:
    apiserver.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }
    )
    patch = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    r = kubectl(
        apiserver,
        tmp_path,
        "patch",
        "service",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    assert r.returncode == 0, r.stderr
    # Through the main resource, status is ignored: the subresource owns it.
    r = kubectl(
        apiserver,
        tmp_path,
        "patch",
        "service",
        "web",
        "--type=merge",
        "-p",
        json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.99"}]}}}),
    )
    assert r.returncode == 0, r.stderr
    got = apiserver.get("Service", "default", "web")
    assert got["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]


def test_kubectl_watch_reads_our_event_stream(apiserver: Any, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            "kubectl",
            f"--server={apiserver.url}",
            f"--cache-dir={tmp_path / 'cache'}",
            "get",
            "services",
            "-A",
            "--watch-only",
            "-o",
            "json",
            "--output-watch-events",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: apiserver.active_watches("services") >= 1, what="kubectl watching")
        apiserver.put(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "late", "namespace": "default"},
                "spec": {"type": "LoadBalancer"},
            }
        )
        assert proc.stdout is not None
        decoder = json.JSONDecoder()
        buf = ""
        while True:
            line = proc.stdout.readline()
            assert line, f"kubectl ended: {proc.stderr.read() if proc.stderr else ''}"
            buf += line
            try:
                event, _ = decoder.raw_decode(buf.strip())
            except ValueError:
                continue
            break
        assert event["type"] == "ADDED"
        assert event["object"]["metadata"]["name"] == "late"
    finally:
        proc.kill()
        proc.wait(WAIT)
