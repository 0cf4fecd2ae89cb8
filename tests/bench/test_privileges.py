"""What is shipped is what is measured: the benchmarks' speakers hold exactly the
DaemonSet's capabilities, and those capabilities give the speaker the realtime scheduling
its default `--realtime-priority` asks for (the kernel judges: sched_setscheduler)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench._privileges import daemonset_wrapper, process_privileges, speaker_security_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (capabilities)")

PROBE = """
import json, os
from bench._privileges import process_privileges
try:
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    rr = "ok"
except OSError as exc:
    rr = exc.strerror
print(json.dumps({"rr": rr, **process_privileges(os.getpid())}))
"""


def _run(prefix: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    return dict(json.loads(out))


def test_the_wrapper_reproduces_the_daemonsets_capabilities() -> None:
    sc = speaker_security_context()
    held = _run(daemonset_wrapper())
    wanted = sorted(c.removeprefix("CAP_") for c in sc["capabilities"]["add"])
    assert held["effective_capabilities"] == wanted
    assert held["bounding_capabilities"] == wanted
    assert held["no_new_privs"] is (sc["allowPrivilegeEscalation"] is False)


def test_the_shipped_capabilities_allow_the_default_realtime_priority() -> None:
    full_root = _run([])
    if full_root["rr"] != "ok":
        pytest.skip(f"this kernel/cgroup refuses SCHED_RR even to full root: {full_root['rr']}")
    held = _run(daemonset_wrapper())
    assert held["rr"] == "ok", "the DaemonSet's capabilities cannot give the speaker SCHED_RR"
    assert (held["scheduler"], held["rt_priority"]) == ("SCHED_RR", 10)


def test_the_wrapper_follows_the_manifest(tmp_path: Path) -> None:
    """Read from deploy/speaker.yaml, not restated: a changed manifest changes the bench."""
    manifest = Path(__file__).resolve().parents[2] / "deploy" / "speaker.yaml"
    docs = list(yaml.safe_load_all(manifest.read_text()))
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet"]
    (c,) = [c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "speaker"]
    c["securityContext"]["capabilities"]["add"] = ["NET_RAW"]
    other = tmp_path / "speaker.yaml"
    other.write_text(yaml.safe_dump_all(docs))
    assert daemonset_wrapper(other)[3] == "--bounding-set=-all,+net_raw"
    assert process_privileges(os.getpid())["effective_capabilities"]  # we are full root


def test_a_policy_with_reset_on_fork_reads_as_its_policy() -> None:
    """The speaker asks for SCHED_RR | SCHED_RESET_ON_FORK; the soak's report must still
    say SCHED_RR (it said 1073741826 once the speaker started setting the flag)."""
    probe = PROBE.replace("os.SCHED_RR, ", "os.SCHED_RR | os.SCHED_RESET_ON_FORK, ")
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    held = json.loads(out)
    if held["rr"] != "ok":
        pytest.skip(f"this kernel/cgroup refuses SCHED_RR even to full root: {held['rr']}")
    assert (held["scheduler"], held["rt_priority"], held["reset_on_fork"]) == ("SCHED_RR", 10, True)
