"""What the built images hold, judged by podman and the image's own Python: every l2agent
module imports as the controller's manifest runs it, exactly the locked distributions are
installed, no build tools ship, provenance is recorded, the build context is only what the
Dockerfile reads, and the FRR sidecar image runs its daemons and applies a config."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.image import REPO, podman, workload
from packaging.utils import canonicalize_name

from l2agent.lab.pod_spec import container_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.image]

LOCK = REPO / "requirements" / "runtime.lock"

# Runs inside the image: import every module of both packages and the parts of the
# Kubernetes client l2agent uses, then report what is installed and what is not there.
PROBE = r"""
import importlib, importlib.metadata as md, importlib.util, json, os, pkgutil, shutil
import gossip, l2agent
modules = []
for package in (l2agent, gossip):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith(".__main__"):  # `python -m` entry points run when imported
            continue
        importlib.import_module(info.name)
        modules.append(info.name)
for name in ("kubernetes.client", "kubernetes.config", "kubernetes.watch"):
    importlib.import_module(name)
print(json.dumps({
    "modules": len(modules),
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "dists": {d.metadata["Name"]: d.version for d in md.distributions()},
    "build_tools": [m for m in ("pip", "setuptools", "wheel") if importlib.util.find_spec(m)],
    "pip_on_path": [p for p in ("pip", "pip3") if shutil.which(p)],
    "wheels_dir": os.path.exists("/usr/share/python-wheels"),
}))
"""


def _locked_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            name, _, version = line.split(" ")[0].partition("==")
            pins[str(canonicalize_name(name))] = version
    return pins


def _controller_flags(rendered: list[dict[str, Any]]) -> list[str]:
    pod = workload(rendered, "Deployment", "l2agent-controller")
    fields = {"metadata.name": "l2agent-controller-0", "metadata.namespace": "metallb-system"}
    run = container_run(pod, "controller", fields)
    return run.podman_flags({})


def test_every_module_imports_as_the_controller_runs_it(
    images: dict[str, str], rendered: list[dict[str, Any]]
) -> None:
    out = podman(
        "run", "--rm", "--network=none", *_controller_flags(rendered),
        "--entrypoint=/opt/l2agent/bin/python", images["l2agent"], "-c", PROBE,
    )  # fmt: skip
    report = json.loads(out)
    assert report["modules"] > 50
    assert (report["uid"], report["gid"]) == (65534, 65534)  # the manifest's runAsUser/Group
    assert 65534 in report["groups"]  # fsGroup
    installed = {str(canonicalize_name(n)): v for n, v in report["dists"].items() if n != "l2agent"}
    assert installed == _locked_pins(), "the image holds exactly what the lock pins"
    assert report["build_tools"] == [] and report["pip_on_path"] == []
    assert report["wheels_dir"] is False


def test_the_speaker_entrypoint_plans_the_demo_config(images: dict[str, str]) -> None:
    config = REPO / "l2agent" / "data" / "demo.yaml"
    out = podman(
        "run", "--rm", "--network=none", "--read-only", "--cap-drop=ALL",
        f"--volume={config}:/demo.yaml:ro", images["l2agent"],
        "plan", "--config=/demo.yaml", "--members=node1,node2", "--output=json",
    )  # fmt: skip
    assert "192.0.2.200" in out and ("node1" in out or "node2" in out)


def test_labels_and_files_record_the_provenance(images: dict[str, str]) -> None:
    inspect = json.loads(podman("image", "inspect", images["l2agent"]))[0]
    labels = inspect["Labels"]
    assert labels["io.l2agent.lock.sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    base = labels["org.opencontainers.image.base.name"]
    assert podman("image", "exists", base, check=False) == ""
    assert labels["io.l2agent.base.recipe"].startswith("mmdebstrap --variant=minbase")
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"].startswith(head)
    assert inspect["Config"]["User"] == "65534:65534"
    assert inspect["Config"]["Entrypoint"] == ["/opt/l2agent/bin/l2agent"]
    shipped = podman(
        "run", "--rm", "--network=none", "--entrypoint=cat", images["l2agent"],
        "/opt/l2agent/runtime.lock",
    )  # fmt: skip
    assert shipped == LOCK.read_text()
    # The Debian packages of the base are on record in the image itself.
    packages = podman(
        "run", "--rm", "--network=none", "--entrypoint=dpkg-query", images["l2agent"],
        "-W", "-f=${Package} ${Version}\n",
    )  # fmt: skip
    assert any(line.startswith("python3.11 ") for line in packages.splitlines())


def test_the_build_context_is_only_what_the_dockerfile_reads(images: dict[str, str]) -> None:
    base = json.loads(podman("image", "inspect", images["l2agent"]))[0]["Labels"][
        "org.opencontainers.image.base.name"
    ]
    tag = f"localhost/l2agent-context-probe:{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "Containerfile"
        probe.write_text(f"FROM {base}\nCOPY . /ctx\n")
        # The context is the repository root, with its .dockerignore, as `make image` sends it.
        podman("build", "--quiet", "--pull=never", "--network=none", "-f", str(probe),
               "-t", tag, str(REPO), timeout=300)  # fmt: skip
    try:
        listing = podman("run", "--rm", "--network=none", tag, "find", "/ctx", "-type", "f")
    finally:
        podman("rmi", "--force", tag, check=False)
    files = {line.removeprefix("/ctx/") for line in listing.split()}
    assert "requirements/runtime.lock" in files and "scripts/image/slim-venv.sh" in files
    assert any(f.startswith(".cache/image/dist/l2agent-") for f in files)
    assert any(f.startswith(".cache/image/wheelhouse/kubernetes-") for f in files)
    others = {
        f
        for f in files
        if not f.startswith((".cache/image/wheelhouse/", ".cache/image/dist/"))
        and f not in ("requirements/runtime.lock", "scripts/image/slim-venv.sh")
    }
    assert others == set(), f"sent to the builder but never read: {sorted(others)[:20]}"


def test_both_images_carry_one_frr_and_the_manifests_frrvty_group(
    images: dict[str, str], rendered: list[dict[str, Any]]
) -> None:
    """The speaker runs vtysh and frr-reload.py against the sidecar's daemons through their
    vty sockets (srwxrwx--- frr:frrvty): same FRR in both images, and frrvty's GID is the one
    the DaemonSet's supplementalGroups grants."""
    groups = workload(rendered, "DaemonSet", "l2agent-speaker")["securityContext"].get(
        "supplementalGroups", []
    )
    script = (
        "getent group frrvty | cut -d: -f3; dpkg-query -W -f='${Version}\\n' frr; "
        "test -x /usr/bin/vtysh && test -x /usr/lib/frr/frr-reload.py && echo tools"
    )
    seen = set()
    for image in images.values():
        out = podman("run", "--rm", "--network=none", "--entrypoint=sh", image, "-c", script)
        gid, version, tools = out.split()
        assert tools == "tools" and int(gid) in groups, (image, out, groups)
        seen.add(version)
    assert len(seen) == 1, seen


FRR_CONFIG = """\
frr defaults traditional
hostname sidecar
log stdout
!
router bgp 64512
 bgp router-id 192.0.2.11
 no bgp ebgp-requires-policy
 neighbor 192.0.2.1 remote-as 64500
!
"""


def test_the_frr_image_runs_its_daemons_and_applies_a_config(images: dict[str, str]) -> None:
    name = f"l2img-frr-{secrets.token_hex(4)}"
    podman("run", "--detach", f"--name={name}", "--network=none",
           "--cap-add=NET_ADMIN,NET_RAW,SYS_ADMIN,NET_BIND_SERVICE", images["frr"])  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = podman("exec", name, "vtysh", "-c", "show watchfrr", check=False)
            up = {line.split()[0] for line in state.splitlines() if line.strip().endswith(" Up")}
            if {"zebra", "bgpd", "bfdd", "staticd"} <= up:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"FRR daemons not up: {state}\n{podman('logs', name, check=False)}")
        # frr-reload.py (frr-pythontools) applies a rendered config to the running daemons.
        podman("exec", name, "sh", "-c", f"cat > /tmp/frr.conf <<'EOF'\n{FRR_CONFIG}EOF")
        podman("exec", name, "/usr/lib/frr/frr-reload.py", "--reload", "/tmp/frr.conf")
        running = podman("exec", name, "vtysh", "-c", "show running-config")
        assert "router bgp 64512" in running and "neighbor 192.0.2.1 remote-as 64500" in running
    finally:
        podman("rm", "--force", "--time=2", name, check=False)
