"""The speaker DaemonSet's FRR sidecar, run as the rendered manifest says, in a lab node.

Without a cluster or an image: each container runs in the node's network namespace, in a
mount namespace of its own where the pod's volumes are bound at the manifest's mount paths
(emptyDirs as shared host directories, the ConfigMap as files, subPath mounts included), as
root with exactly the manifest's capabilities (``setpriv``: bounding set = permitted set of a
root process, as a container runtime sets them) and the pod's supplementary group. The FRR
binaries are the host's (Debian's FRR 8.4, as in ``localhost/l2agent-frr:dev``); the frrvty
GID is the host's in place of the image's.

Judges: BIRD on the router (MD5 session with BFD, the route in its kernel FIB), FRR's own
``show bfd peers``, /proc (the daemons hold nothing beyond the grant). And the grant is no
larger than needed: without any one of the granted capabilities a daemon does not start,
without the frrvty group the speaker cannot reach FRR (and says so, UNAVAILABLE).
"""

from __future__ import annotations

import grp
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from l2agent.lab.bgp import BgpLab
from l2agent.lab.bgp_cluster import POOL_V4, LabPeer, LabService, bfd_profile, cluster_objects
from l2agent.lab.bgp_cluster import frr_conf as render_frr_conf
from l2agent.lab.frr import frr_missing
from l2agent.lab.netns import wait_until
from l2agent.lab.routers import ROUTER_ASN, bird_missing
from l2agent.lab.topology import bgp_vip, router_address

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VIP = bgp_vip(0, 4)
PASSWORD = "s3cret"


def _skip_reason() -> str | None:
    for tool in ("kubectl", "setpriv", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} missing"
    return frr_missing() or bird_missing()


if _skip_reason():
    pytestmark.append(pytest.mark.skip(reason=_skip_reason() or ""))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy")], check=True, capture_output=True, text=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet" and "speaker" in d["metadata"]["name"]]
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    return {"pod": ds["spec"]["template"]["spec"], "configmaps": maps}


def container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    (c,) = [c for c in manifest["pod"]["containers"] if c["name"] == name]
    return c


class Pod:
    """The pod's volumes as host directories, and a way to run one of its containers."""

    def __init__(self, manifest: dict[str, Any], root: Path) -> None:
        self.manifest = manifest
        self.root = root
        self.volumes: dict[str, Path] = {}
        for vol in manifest["pod"]["volumes"]:
            path = root / vol["name"]
            path.mkdir()
            os.chmod(path, 0o777)  # an emptyDir: world-writable, root-owned
            if "configMap" in vol:
                data = manifest["configmaps"][vol["configMap"]["name"]]["data"]
                for key, text in data.items():
                    (path / key).write_text(text)
                    os.chmod(path / key, 0o444)
            self.volumes[vol["name"]] = path

    def binds(self, c: dict[str, Any]) -> list[tuple[Path, str]]:
        out = []
        for m in c.get("volumeMounts", []):
            src = self.volumes[m["name"]]
            if "subPath" in m:
                src = src / m["subPath"]
            out.append((src, m["mountPath"]))
        # The volumes' host directories live under /tmp: a mount over /tmp goes last.
        return sorted(out, key=lambda b: b[1] == "/tmp" or b[1].startswith("/tmp/"))

    def argv(
        self,
        netns: str,
        c: dict[str, Any],
        argv: Sequence[str],
        *,
        caps: Sequence[str] | None = None,
        groups: Sequence[int] = (),
    ) -> list[str]:
        """``argv`` as container ``c`` would run it (``caps`` overrides the manifest's)."""
        granted = c["securityContext"]["capabilities"]["add"] if caps is None else caps
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        private_tmp = Path(tempfile.mkdtemp(prefix="ctmp-", dir=self.root))
        os.chmod(private_tmp, 0o1777)
        # A fresh /run and /var/tmp as in a container; then the pod's mounts; /tmp last
        # (the volumes' host directories live under it).
        # A checkout under one of those (CI may clone into /tmp) is held at /mnt meanwhile
        # and bound back at its own path, so the venv the argv names stays reachable.
        masked = any(REPO.is_relative_to(d) for d in ("/run", "/var/tmp", "/tmp"))
        steps = ["mkdir -p /mnt", f"mount --bind {REPO} /mnt"] if masked else []
        steps += ["mount -t tmpfs tmpfs /run", "mount -t tmpfs tmpfs /var/tmp"]
        mounts = {dst for _src, dst in self.binds(c)}
        for src, dst in self.binds(c):
            make = f"mkdir -p {dst}" if src.is_dir() else f"touch {dst}"
            steps.append(f"{make} && mount --bind {src} {dst}")
        if "/tmp" not in mounts:
            steps.append(f"mount --bind {private_tmp} /tmp")
        if masked:
            steps.append(f"mkdir -p {REPO} && mount --bind /mnt {REPO}")
        bounding = ",".join(["-all", *(f"+{x.lower()}" for x in granted)])
        setpriv = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all"]
        setpriv.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
        script = " && ".join(steps) + " && exec " + shlex.join([*setpriv, "--", *argv])
        return ["ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private",
                "sh", "-c", script]  # fmt: skip


def frrvty() -> int:
    return grp.getgrnam("frrvty").gr_gid


@pytest.fixture
def lab() -> Iterator[BgpLab]:
    with BgpLab(1, vips=[VIP]) as built:
        built.start_bird(families=(4,), bfd=True, passwords={"node1": PASSWORD})
        yield built


@pytest.fixture
def pod(manifest: dict[str, Any], lab: BgpLab) -> Iterator[Pod]:
    root = Path(tempfile.mkdtemp(prefix="l2lab-pod-"))
    os.chmod(root, 0o755)
    try:
        yield Pod(manifest, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_frr(lab: BgpLab, pod: Pod, caps: Sequence[str] | None = None) -> Any:
    c = container(pod.manifest, "frr")
    argv = [*c["command"], *c["args"]]
    log = open(pod.root / "frr.log", "ab")  # noqa: SIM115 - closed right after the spawn
    try:
        return lab.lab.spawn(
            "node1",
            pod.argv(lab.lab.netns("node1"), c, argv, caps=caps, groups=[frrvty()])[4:],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def daemons_up(pod: Pod) -> bool:
    run = pod.volumes["frr-run"]
    return all((run / f"{d}.vty").exists() for d in ("zebra", "bgpd", "bfdd"))


def speaker_run(lab: BgpLab, pod: Pod, code: str, stdin: str, groups: Sequence[int]) -> str:
    """Python ``code`` in the speaker container (its caps, mounts and the pod's group)."""
    c = container(pod.manifest, "speaker")
    argv = pod.argv(lab.lab.netns("node1"), c, [sys.executable, "-c", code], groups=groups)
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


APPLY = """
import asyncio, sys
from pathlib import Path
from l2agent.bgp.reload import FrrReloader
args = dict(a.split("=", 1) for a in sys.argv[1:])
async def main():
    r = FrrReloader(Path(args["--frr-config-dir"]), Path(args["--frr-run-dir"]), debounce=0)
    out = await r.apply(sys.stdin.read())
    await r.close()
    print(out.result.value, out.detail)
asyncio.run(main())
"""


def frr_config_text() -> str:
    peer = LabPeer("router1", router_address(1, 4), ROUTER_ASN, 64512, bfd_profile="fast",
                   password=PASSWORD)  # fmt: skip
    objs = cluster_objects(["node1"], [peer], [LabService("web", (VIP,))],
                           extra=[bfd_profile("fast", 50)], pool=(POOL_V4,))  # fmt: skip
    return render_frr_conf(objs, "node1")


def apply_code(pod: Pod) -> str:
    flags = [a for a in container(pod.manifest, "speaker")["args"] if a.startswith("--frr-")]
    assert sorted(a.split("=")[0] for a in flags) == ["--frr-config-dir", "--frr-run-dir"]
    return APPLY.replace("sys.argv[1:]", repr(flags))


def test_the_sidecar_runs_with_exactly_the_granted_capabilities(lab: BgpLab, pod: Pod) -> None:
    assert pod.manifest["pod"]["securityContext"]["supplementalGroups"] == [
        102
    ]  # frrvty in the FRR image
    frr = start_frr(lab, pod)
    assert wait_until(lambda: daemons_up(pod), 15), (pod.root / "frr.log").read_text()[-3000:]
    out = speaker_run(lab, pod, apply_code(pod), frr_config_text(), groups=[frrvty()])
    assert out.split()[0] in ("applied", "applied_after_reset"), out
    assert lab.bird is not None and lab.bird.wait_established(["node1_v4"], 20)
    assert wait_until(lambda: lab.nexthops(f"{VIP}/32") == {"192.0.2.11"}, 10)
    show = "import subprocess,sys; sys.stdout.write(subprocess.run(['vtysh','--vty_socket','/var/run/frr','-c','show bfd peers json'],capture_output=True,text=True).stdout)"  # noqa: E501
    assert wait_until(
        lambda: (
            [p["status"] for p in json.loads(speaker_run(lab, pod, show, "", [frrvty()]))] == ["up"]
        ),
        10,
    )
    granted = set(container(pod.manifest, "frr")["securityContext"]["capabilities"]["add"])
    for daemon in ("zebra", "bgpd", "bfdd"):
        pid = int((pod.volumes["frr-run"] / f"{daemon}.pid").read_text())
        held = _caps(pid)
        assert held <= granted, f"{daemon} holds {held - granted}"
    frr.terminate()
    frr.wait(10)


def _caps(pid: int) -> set[str]:
    """The capability names in a process's permitted set."""
    names = {0: "CHOWN", 1: "DAC_OVERRIDE", 5: "KILL", 6: "SETGID", 7: "SETUID",
             10: "NET_BIND_SERVICE", 12: "NET_ADMIN", 13: "NET_RAW", 21: "SYS_ADMIN"}  # fmt: skip
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapPrm:"):
            bits = int(line.split()[1], 16)
            return {names.get(i, f"cap{i}") for i in range(64) if bits >> i & 1}
    return set()


def test_every_granted_capability_is_needed(lab: BgpLab, pod: Pod) -> None:
    granted = container(pod.manifest, "frr")["securityContext"]["capabilities"]["add"]
    for cap in granted:
        for f in pod.volumes["frr-run"].iterdir():
            f.unlink()
        frr = start_frr(lab, pod, caps=[c for c in granted if c != cap])
        try:
            started = wait_until(lambda: daemons_up(pod), 2.5)
        finally:
            frr.terminate()
            frr.wait(10)
        assert not started, f"FRR starts without {cap}: it need not be granted"


def test_without_the_frrvty_group_the_speaker_says_frr_is_unavailable(
    lab: BgpLab, pod: Pod
) -> None:
    frr = start_frr(lab, pod)
    try:
        assert wait_until(lambda: daemons_up(pod), 15)
        out = speaker_run(lab, pod, apply_code(pod), frr_config_text(), groups=[])
    finally:
        frr.terminate()
        frr.wait(10)
    assert out.startswith("unavailable") and "cannot reach" in out, out
