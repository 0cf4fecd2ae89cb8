"""The shipped image in the lab, run as the rendered DaemonSet runs it: two speaker containers,
each in a node namespace, judged by the client's kernel and a UDP prober, and by the kernel's
own account of the container process (/proc/PID/status).

Bounds are generous (a loaded 2-core CI machine); the real figures are `make bench`'s.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.image import PODMAN, workload

from l2agent.lab.containers import ContainerSpeakers
from l2agent.lab.netns import Lab
from l2agent.lab.prober import outage
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.image]

V4 = str(vip(0, 4))
V6 = str(vip(0, 6))

# Linux capability numbers (include/uapi/linux/capability.h).
CAPABILITY_BITS = {"NET_RAW": 13, "NET_ADMIN": 12, "SYS_NICE": 23, "NET_BIND_SERVICE": 10}


@pytest.fixture
def speaker_pod(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    return workload(rendered, "DaemonSet", "l2agent-speaker")


@pytest.fixture
def cluster(
    images: dict[str, str], speaker_pod: dict[str, Any], tmp_path: Path
) -> Iterator[ContainerSpeakers]:
    # A MetalLB-style memberlist secret (`openssl rand -base64 128`).
    secret = base64.b64encode(os.urandom(128))
    with Lab(2, vips=[vip(0, 4), vip(0, 6)]) as lab:
        speakers = ContainerSpeakers(
            lab,
            demo_config_path(),
            speaker_pod,
            podman=PODMAN,
            secrets={"memberlist": {"secretkey": secret}},
            workdir=tmp_path,
        )
        try:
            speakers.start_all()
            for node in lab.node_names:
                speakers.wait_ready(node, timeout=60)
            speakers.wait_owners([V4, V6], timeout=30)
            yield speakers
        finally:
            speakers.close()
            for node in lab.node_names:
                print(f"--- {node} container log tail ---\n{speakers.log_text(node)[-3000:]}")


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_the_speaker_holds_exactly_what_the_manifest_grants(
    cluster: ContainerSpeakers, speaker_pod: dict[str, Any]
) -> None:
    (container,) = [c for c in speaker_pod["containers"] if c["name"] == "speaker"]
    security = container["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    granted = sum(1 << CAPABILITY_BITS[cap] for cap in security["capabilities"]["add"])
    for node in cluster.lab.node_names:
        pid = cluster.main_pid(node)
        status = _status(pid)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"/opt/l2agent/bin/l2agent" in cmdline[1] and cmdline[2] == b"speaker", cmdline
        # The kernel's view of the process podman started, read from the host.
        for field in ("CapEff", "CapPrm", "CapBnd"):
            assert int(status[field], 16) == granted, (node, field, status[field])
        assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
        assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
        assert status["Seccomp"] == "2"  # RuntimeDefault: a filter is installed
        uid = str(security["runAsUser"])
        assert status["Uid"].split() == [uid] * 4
        groups = speaker_pod["securityContext"].get("supplementalGroups", [])
        assert set(groups) <= {int(g) for g in status["Groups"].split()}
        # The root filesystem is read-only; /tmp is the manifest's 16Mi memory emptyDir;
        # the memberlist secret is a read-only mount holding one 0400 file.
        mounts = {fields[4]: fields for fields in (line.split() for line in _mountinfo(pid))}
        assert "ro" in mounts["/"][5].split(","), mounts["/"]
        tmp = mounts["/tmp"]
        assert tmp[tmp.index("-") + 1] == "tmpfs" and "size=16384k" in tmp[-1], tmp
        assert "ro" in mounts["/etc/ml_secret_key"][5].split(",")
        secret_file = Path(f"/proc/{pid}/root/etc/ml_secret_key/secretkey")
        assert secret_file.stat().st_mode & 0o777 == 0o400
        assert (secret_file.stat().st_uid, secret_file.stat().st_gid) == (0, 0)


def _mountinfo(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/mountinfo").read_text().splitlines()


def test_the_elected_node_answers_and_a_pulled_cable_moves_the_vip(
    cluster: ContainerSpeakers,
) -> None:
    owner = cluster.wait_owners([V4])[V4]
    prober = cluster.probe(V4, duration=4.0)
    time.sleep(1.0)
    before = cluster.lab.neighbour_mac(vip(0, 4))
    cluster.lab.cut_link(owner)
    probes = cluster.probes(prober)
    answered_by = [p.node for p in probes if p.node]
    assert answered_by[0] == owner, "the elected node answered first"
    assert before == cluster.lab.nodes[owner].mac
    movers = {node for node in answered_by if node != owner}
    assert len(movers) == 1, f"traffic went to {movers}"
    (successor,) = movers
    seen = outage(probes, owner, successor)
    assert seen is not None and seen.seconds < 2.0, seen
    assert cluster.lab.neighbour_mac(vip(0, 4)) == cluster.lab.nodes[successor].mac


def test_podman_stop_hands_over_without_losing_a_probe(cluster: ContainerSpeakers) -> None:
    owner = cluster.wait_owners([V4])[V4]
    prober = cluster.probe(V4, duration=3.0)
    time.sleep(1.0)
    assert cluster.terminate(owner) == 0  # SIGTERM from `podman stop`, a clean exit
    probes = cluster.probes(prober)
    lost = [p.seq for p in probes if p.replied is None]
    assert not lost, f"{len(lost)} probes lost"
    (other,) = [n for n in cluster.lab.node_names if n != owner]
    assert {p.node for p in probes if p.node} == {owner, other}
    assert cluster.lab.neighbour_mac(vip(0, 4)) == cluster.lab.nodes[other].mac
