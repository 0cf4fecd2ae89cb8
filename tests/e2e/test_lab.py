"""The lab itself, judged by the kernel and by arping/ndisc6: isolation, silence, delivery."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from l2agent.lab.netns import (
    Lab,
    LabError,
    list_namespaces,
    sweep_stale,
    tools_missing,
    wait_until,
)
from l2agent.lab.prober import answered_by, from_json, outage
from l2agent.lab.topology import DEFAULT_VIPS, node_mac, vip

pytestmark = pytest.mark.e2e

V4 = vip(0, 4)
V6 = vip(0, 6)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(nodes=2) as built:
        yield built


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def test_namespaces_carry_the_prefix_and_addresses_are_documentation(lab: Lab) -> None:
    mine = [ns for ns in list_namespaces() if ns.startswith(lab.prefix + "-")]
    assert sorted(mine) == sorted(lab.netns(r) for r in ("switch", "client", "node1", "node2"))
    assert lab.node_mac("node1") == node_mac(1)
    addrs = lab.ip("node1", "-br", "addr", "show", "dev", "eth0")
    assert "192.0.2.11/24" in addrs and "2001:db8::11/64" in addrs
    vipdev = lab.ip("node1", "-br", "link", "show", "dev", "kube-ipvs0")
    assert "DOWN" in vipdev, "the VIP device must stay down"


@pytest.mark.skipif(bool(tools_missing("arping")), reason="needs iputils arping")
def test_kernel_does_not_answer_arp_for_vips_but_does_for_node_addresses(lab: Lab) -> None:
    # The judge works: the node's own address is answered by its kernel.
    out = lab.exec(
        "client", ["arping", "-c", "1", "-w", "2", "-I", "eth0", "192.0.2.11"], check=False
    )
    assert _mac_text(node_mac(1)).upper() in out.upper()
    # The VIP is configured on every node, yet no kernel answers for it.
    out = lab.exec("client", ["arping", "-c", "2", "-w", "2", "-I", "eth0", str(V4)], check=False)
    assert "Received 0 response" in out, out


@pytest.mark.skipif(bool(tools_missing("ndisc6")), reason="needs ndisc6")
def test_kernel_does_not_answer_ns_for_vips_but_does_for_node_addresses(lab: Lab) -> None:
    out = lab.exec(
        "client", ["ndisc6", "-r", "2", "-w", "500", "2001:db8::11", "eth0"], check=False
    )
    assert _mac_text(node_mac(1)).upper() in out.upper(), out
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab.netns("client"),
            "ndisc6",
            "-r",
            "2",
            "-w",
            "500",
            str(V6),
            "eth0",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode != 0 and "Target link-layer address" not in proc.stdout, proc.stdout


def _probe(lab: Lab, target: str, duration: float) -> list:
    out = lab.exec(
        "client",
        [
            sys.executable,
            "-m",
            "l2agent.lab.prober",
            "--target",
            target,
            "--duration",
            str(duration),
            "--interval",
            "0.005",
        ],
        timeout=30,
    )
    return from_json(out)


def test_vips_are_delivered_locally_and_echo_answers_from_the_vip(lab: Lab) -> None:
    for node in lab.node_names:
        lab.spawn(
            node,
            [sys.executable, "-m", "l2agent.lab.echo", "--name", node],
            stdout=subprocess.DEVNULL,
        )
    for ip in (V4, V6):
        # Stand in for the agent with a static neighbour entry: the kernel does the rest.
        lab.ip(
            "client",
            "neigh",
            "replace",
            str(ip),
            "lladdr",
            _mac_text(node_mac(1)),
            "dev",
            "eth0",
            "nud",
            "permanent",
        )
        first = _probe(lab, str(ip), 0.6)
        assert answered_by(first) == ["node1"], f"{ip}: {answered_by(first)}"
        lab.ip(
            "client",
            "neigh",
            "replace",
            str(ip),
            "lladdr",
            _mac_text(node_mac(2)),
            "dev",
            "eth0",
            "nud",
            "permanent",
        )
        second = _probe(lab, str(ip), 0.6)
        assert answered_by(second) == ["node2"]
        moved = outage([*first, *second], "node1", "node2")
        assert moved is not None and moved.seconds > 0
        lab.ip("client", "neigh", "del", str(ip), "dev", "eth0")


def test_cut_link_takes_the_carrier_away_and_restore_brings_it_back(lab: Lab) -> None:
    lab.cut_link("node2")
    try:
        assert "NO-CARRIER" in lab.ip("node2", "link", "show", "dev", "eth0")
    finally:
        lab.restore_link("node2")
    assert "NO-CARRIER" not in lab.ip("node2", "link", "show", "dev", "eth0")


def test_teardown_on_error_removes_namespaces_and_kills_spawned_processes() -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab(nodes=1, vips=DEFAULT_VIPS[:1]) as lab:
        proc = lab.spawn("node1", ["sleep", "60"])
        prefix = lab.prefix
        raise RuntimeError("boom")
    assert proc.poll() is not None
    assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]


def test_failed_command_raises_lab_error(lab: Lab) -> None:
    with pytest.raises(LabError):
        lab.ip("node1", "link", "show", "dev", "no-such-device")


def test_sweeper_deletes_only_dead_owners_in_its_own_format() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"l2lab-{dead.pid}-abcd-node1"
    foreign = f"l2lab-{dead.pid}-node1"  # wrong format: no token, must be left alone
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        assert stale in sweep_stale()
        subprocess.run(["ip", "netns", "add", stale], check=True)
        with Lab(nodes=1, vips=()) as live:  # building a lab sweeps too
            names = list_namespaces()
            assert stale not in names and foreign in names
            assert live.netns("node1") in names
            assert not [n for n in sweep_stale() if n.startswith(live.prefix)]
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True)
        subprocess.run(["ip", "netns", "delete", foreign], capture_output=True)


_HOLD = """
import sys, time
from l2agent.lab.netns import Lab
lab = Lab(nodes=1, vips=())
lab.build()
child = lab.spawn("node1", ["sleep", "60"])
print(lab.prefix, child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_lab_is_removed_after_ctrl_c_sigterm_and_even_sigkill(sig: signal.Signals) -> None:
    owner = subprocess.Popen([sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        prefix, child = owner.stdout.readline().split()
        assert prefix and any(ns.startswith(prefix) for ns in list_namespaces())
        owner.send_signal(sig)
        _wait_for_exit(owner, timeout=60)
        if sig == signal.SIGKILL:  # no chance to clean up: the next lab's sweeper does it
            assert any(ns.startswith(prefix) for ns in list_namespaces())
            sweep_stale()
        assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]
        assert wait_until(lambda: not _alive(int(child)), timeout=5), "spawned child survived"
    finally:
        if owner.poll() is None:
            owner.kill()


def _wait_for_exit(proc: subprocess.Popen[str], timeout: float) -> None:
    """Wait for the lab's owner to exit; on a timeout, fail with where it is stuck (its
    state, kernel wait channel and stack), the only evidence a slow exit leaves."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        where = {}
        for name in ("stat", "wchan", "stack"):
            try:
                with open(f"/proc/{proc.pid}/{name}") as fh:
                    where[name] = fh.read().strip()
            except OSError as e:
                where[name] = repr(e)
        pytest.fail(f"the lab's owner {proc.pid} did not exit within {timeout} s: {where}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
