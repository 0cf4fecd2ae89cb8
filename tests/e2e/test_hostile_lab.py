"""Issue 11's attacks replayed against three real speakers in the lab, from an attacker
namespace on the node network, with traffic crafted by `bench/hostile.py` (msgpack written
by hand, not our codec) or a real Go memberlist.

Each attack must leave what the issue's "Done when" says: one owner per IP throughout (no
speaker gained or lost an IP), no probe of the client's lost, no member declared failed,
every speaker's peak RSS under the DaemonSet's 256 Mi, at most a few hundred log lines,
and answers at most twice the bytes received. The suite runs the speakers at SCHED_RR as
shipped (about 2.5 min); `L2AGENT_HOSTILE_MODES=sched_rr,normal` adds normal priority, as
bench/hostile_report's command does. `L2AGENT_HOSTILE_SECONDS` lengthens the attacks (the
closing numbers in bench/results/hostile.md use 10 s).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from l2agent.lab.netns import Lab, wait_until
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import ATTACKER, CLIENT, vip
from l2agent.static import demo_config_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

V4 = str(vip(0, 4))
SECONDS = float(os.environ.get("L2AGENT_HOSTILE_SECONDS", "4"))
RSS_LIMIT = 256 * 1024 * 1024
LOG_LINES = 300
REPO = Path(__file__).resolve().parents[2]
MODES = {"sched_rr": (), "normal": ("--realtime-priority", "0")}
RUN_MODES = os.environ.get("L2AGENT_HOSTILE_MODES", "sched_rr").split(",")


@dataclass
class Snapshot:
    failures: float
    changes: float
    lines: int


@dataclass
class Verdict:
    """What one attack did to the cluster."""

    attack: dict[str, Any]
    lost: int
    answered_by: set[str]
    failures: dict[str, float]
    changes: dict[str, float]
    lines: dict[str, int]
    peak_rss: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def assert_unharmed(self) -> None:
        harm = []
        if self.lost:
            harm.append(f"{self.lost} probes lost")
        if len(self.answered_by) != 1:
            harm.append(f"the VIP moved: {sorted(self.answered_by)}")
        if any(self.failures.values()):
            harm.append(f"members declared failed: {self.failures}")
        if any(self.changes.values()):
            harm.append(f"ownership changed: {self.changes}")
        if max(self.lines.values()) > LOG_LINES:
            harm.append(f"log lines: {self.lines}")
        if max(self.peak_rss.values()) >= RSS_LIMIT:
            harm.append(f"peak RSS: {self.peak_rss}")
        assert not harm, "; ".join(harm) + "\n" + "\n".join(self.notes)


def _metric_sum(text: str | None, name: str) -> float:
    if not text:
        return 0.0
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


class Hostile:
    """Three speakers, an attacker, and the judgement of an attack."""

    def __init__(self, speakers: LabSpeakers, owner: str) -> None:
        self.speakers = speakers
        self.lab = speakers.lab
        self.owner = owner

    def address(self, node: str) -> str:
        return self.speakers.address(node)

    def _snapshot(self, node: str) -> Snapshot:
        text = self.speakers.fetch(node, "/metrics")
        return Snapshot(
            _metric_sum(text, "l2agent_gossip_member_failures_total"),
            _metric_sum(text, "l2agent_ownership_changes_total"),
            len(self.speakers.log_text(node).splitlines()),
        )

    def attack(self, *args: str, seconds: float = SECONDS) -> Verdict:
        """Run `python -m bench.hostile ARGS` in the attacker namespace while the client
        probes the VIP; judge the cluster before and after."""
        nodes = list(self.speakers.speakers)
        self.lab.flush_neighbours()  # what an earlier test left in the client's cache
        before = {n: self._snapshot(n) for n in nodes}
        prober = self.speakers.probe(V4, duration=seconds + 2.0)
        time.sleep(0.5)
        argv = [sys.executable, "-m", "bench.hostile", *args, "--seconds", str(seconds)]
        out = self.lab.exec(ATTACKER, argv, timeout=seconds + 60)
        probes = self.speakers.probes(prober)
        time.sleep(0.5)
        after = {n: self._snapshot(n) for n in nodes}
        verdict = Verdict(
            attack=json.loads(out.strip().splitlines()[-1]),
            lost=sum(1 for p in probes if p.replied is None),
            answered_by={p.node for p in probes if p.node},
            failures={n: after[n].failures - before[n].failures for n in nodes},
            changes={n: after[n].changes - before[n].changes for n in nodes},
            lines={n: after[n].lines - before[n].lines for n in nodes},
            peak_rss={n: _peak_rss(self.speakers.speakers[n].pid) for n in nodes},
        )
        for n in nodes:  # the speakers' own account, for a failure message
            tail = self.speakers.log_text(n).splitlines()[before[n].lines :][-25:]
            verdict.notes.append(f"--- {n} during the attack ---\n" + "\n".join(tail))
        _record(verdict, seconds)
        return verdict


def _record(verdict: Verdict, seconds: float) -> None:
    """With L2AGENT_HOSTILE_REPORT=FILE, append the verdict as a JSON line (the closing
    numbers in bench/results/hostile.md come from such a file)."""
    path = os.environ.get("L2AGENT_HOSTILE_REPORT")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    row = {"test": test, "seconds": seconds, **dataclasses.asdict(verdict)}
    row["answered_by"] = sorted(verdict.answered_by)
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cluster(tmp_path: Path, mode: str, extra: tuple[str, ...] = ()) -> Iterator[Hostile]:
    config = tmp_path / "config.yaml"  # item 7 rewrites it: never the package's own file
    shutil.copyfile(demo_config_path(), config)
    with Lab(3, vips=[vip(0, 4), vip(0, 6), vip(1, 4)], attacker=True) as lab:
        speakers = LabSpeakers(lab, config, workdir=tmp_path, extra=(*MODES[mode], *extra))
        try:
            speakers.start_all()
            owner = speakers.wait_owners([V4], timeout=30)[V4]
            yield Hostile(speakers, owner)
        finally:
            speakers.close()
            for node in lab.node_names:
                print(f"--- {node} log tail ---\n{speakers.log_text(node)[-2000:]}")


@pytest.fixture(scope="module", params=RUN_MODES)
def plaintext(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    yield from _cluster(tmp_path_factory.mktemp("hostile"), request.param)


@pytest.fixture(scope="module", params=RUN_MODES)
def encrypted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    workdir = tmp_path_factory.mktemp("hostile-keyed")
    key = workdir / "secretkey"
    key.write_bytes(b"hostile-lab-memberlist-secret-0123456789abcdef")
    yield from _cluster(workdir, request.param, ("--secret-key-file", str(key)))


# ---------------------------------------------------------------------------- plaintext


def test_item1_garbage_floods_are_counted_not_logged(plaintext: Hostile) -> None:
    v = plaintext.attack("garbage", "--target", plaintext.address(plaintext.owner), "--rate", "300")
    v.assert_unharmed()
    assert v.attack["sent"] > 100 * SECONDS


def test_item2_a_ping_bomb_is_answered_within_twice_its_bytes(plaintext: Hostile) -> None:
    v = plaintext.attack(
        "pingbomb", "--target", plaintext.address(plaintext.owner), "--rate", "100"
    )
    v.assert_unharmed()
    assert v.attack["datagram_bytes"] < 4000
    assert v.attack["received_bytes"] <= 2 * v.attack["sent_bytes"]


def test_item2_acks_are_not_reflected_at_a_third_party(plaintext: Hostile) -> None:
    lab = plaintext.lab
    listener = lab.spawn(
        CLIENT,
        [sys.executable, "-c", _COUNT_UDP, "192.0.2.100", "9999", str(SECONDS + 2)],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)
    v = plaintext.attack(
        "reflect",
        "--target",
        plaintext.address(plaintext.owner),
        "--node",
        plaintext.owner,
        "--victim",
        "192.0.2.100:9999",
        "--rate",
        "500",
    )
    out, _ = listener.communicate(timeout=SECONDS + 10)
    v.assert_unharmed()
    assert int(out.strip() or 0) == 0, "acks reached the third party"
    assert v.attack["received_bytes"] <= 2 * v.attack["sent_bytes"]


_COUNT_UDP = (
    "import socket,sys,time\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind((sys.argv[1],int(sys.argv[2])))\n"
    "s.settimeout(0.2);end=time.monotonic()+float(sys.argv[3]);n=0\n"
    "while time.monotonic()<end:\n"
    "  try: s.recv(65536); n+=1\n"
    "  except OSError: pass\n"
    "print(n)\n"
)


@pytest.mark.parametrize(("states", "chunk"), [(4000, 64), (100_000, 256)])
def test_item3_a_trickled_push_pull_never_stalls_a_speaker(
    plaintext: Hostile, states: int, chunk: int
) -> None:
    """4,000 states trickled 64 bytes at a time are parsed incrementally (no re-parse per
    read); 100,000 are refused at the header (more than the member table may hold)."""
    v = plaintext.attack(
        "trickle",
        "--target",
        plaintext.address(plaintext.owner),
        "--node",
        plaintext.owner,
        "--states",
        str(states),
        "--chunk",
        str(chunk),
        seconds=max(SECONDS, 6.0),
    )
    v.assert_unharmed()
    if states > 4096:
        assert "closed_by_peer" in v.attack or v.attack["sent"] < v.attack["bytes"]
    else:
        assert v.attack["sent"] >= v.attack["bytes"], "the trickle did not finish"


def test_item3_lzw_streams_are_decoded_in_slices(plaintext: Hostile) -> None:
    """Compressed push/pulls of ~6 MB LZW each (the issue's 1 s stall when decoded in one
    go), four at a time for the whole attack: decoded a budgeted slice per step."""
    v = plaintext.attack(
        "lzwstream", "--target", plaintext.address(plaintext.owner), "--node", plaintext.owner,
        "--connections", "4", seconds=max(SECONDS, 6.0),
    )  # fmt: skip
    v.assert_unharmed()
    assert v.attack["bytes"] >= v.attack["stream_bytes"], "not one whole stream was sent"


def test_item4_a_member_without_a_node_object_never_wins(plaintext: Hostile) -> None:
    from helpers.gopeer import V0_2_2, build_peer, skip_reason

    from l2agent.election import rank

    reason = skip_reason(V0_2_2)
    if reason:
        pytest.skip(reason)
    binary = build_peer(V0_2_2)
    nodes = list(plaintext.lab.node_names)
    rogue = next(
        f"rogue-{i}" for i in range(1000) if rank([*nodes, f"rogue-{i}"], V4)[0] == f"rogue-{i}"
    )
    lab = plaintext.lab
    argv = [str(binary), "-name", rogue, "-bind", "192.0.2.66", "-port", "7946",
            "-join", f"{plaintext.address(plaintext.owner)}:7946", "-preset", "local"]  # fmt: skip
    # stdin stays open: the Go peer reads commands there and stops at end of input
    go = lab.spawn(ATTACKER, argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert wait_until(
            lambda: any(
                m["name"] == rogue
                for m in (plaintext.speakers.status(plaintext.owner) or {}).get("members", [])
            ),
            15,
        ), "the Go member never joined"
        v = plaintext.attack("garbage", "--target", "192.0.2.250", "--rate", "1")  # just watch
        v.assert_unharmed()
    finally:
        lab.stop(go)
        wait_until(lambda: _gone(plaintext, rogue), 10)  # the next test must not count it
        time.sleep(1.0)


def _gone(cluster: Hostile, name: str) -> bool:
    doc = cluster.speakers.status(cluster.owner) or {}
    return all(m["state"] != "alive" for m in doc.get("members", []) if m["name"] == name)


def test_item5_an_unrefutable_accusation_is_ignored(plaintext: Hostile) -> None:
    targets = ",".join(plaintext.address(n) for n in plaintext.lab.node_names)
    v = plaintext.attack("incarnation", "--target", targets, "--node", plaintext.owner)
    v.assert_unharmed()


def test_item7_hostile_config_files(plaintext: Hostile) -> None:
    """A 3,000-deep YAML, then a 100,000-document file of objects the speaker does not read:
    refused, or parsed off the loop with one summary line; the watcher lives on and the
    good file applies again."""
    config = plaintext.speakers.config
    good = config.read_text()
    nested = "a: " + "[" * 3000 + "]" * 3000 + "\n"
    huge = good + "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: x}}\n"
        for i in range(100_000)
    )

    def loaded() -> int:
        return plaintext.speakers.log_text(plaintext.owner).count("config loaded")

    try:
        config.write_text(nested)
        v1 = plaintext.attack("garbage", "--target", "192.0.2.250", "--rate", "1")
        config.write_text(huge)
        v2 = plaintext.attack("garbage", "--target", "192.0.2.250", "--rate", "1", seconds=8)
    finally:
        before = loaded()
        config.write_text(good)
    v1.assert_unharmed()
    v2.assert_unharmed()
    assert wait_until(lambda: loaded() > before, 20), "the watcher died"


def test_item8_slow_http_cannot_starve_the_gossip(plaintext: Hostile) -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) missing")
    pid = plaintext.speakers.speakers[plaintext.owner].pid
    plaintext.lab.exec(CLIENT, ["prlimit", f"--pid={pid}", "--nofile=1024:1024"])
    v = plaintext.attack(
        "http", "--target", plaintext.address(plaintext.owner), "--node", plaintext.owner,
        "--connections", "2000",
    )  # fmt: skip
    v.assert_unharmed()
    assert v.attack["tcp_pings_ok"] == 10, "the gossip port stopped accepting"
    assert v.attack["opened"] >= 1000


def test_item10_a_cluster_wide_stall_heals_into_one_view(plaintext: Hostile) -> None:
    """Every speaker stopped for 2 s at once (SIGSTOP), then resumed: within seconds all
    see each other alive again and every IP has one owner."""
    procs = list(plaintext.speakers.speakers.values())
    for proc in procs:
        os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(2.0)
    for proc in procs:
        os.kill(proc.pid, signal.SIGCONT)
    start = time.monotonic()
    nodes = set(plaintext.lab.node_names)

    def one_view() -> bool:
        for node in nodes:
            doc = plaintext.speakers.status(node) or {}
            alive = {m["name"] for m in doc.get("members", []) if m["state"] == "alive"}
            if alive != nodes:
                return False
        owners = plaintext.speakers.owners()
        return all(len(owners.get(ip, ())) == 1 for ip in (V4, str(vip(0, 6)), str(vip(1, 4))))

    assert wait_until(one_view, 15, interval=0.3), "no single view after the stall"
    print(f"one view again {time.monotonic() - start:.1f} s after the stall")


# ---------------------------------------------------------------------------- encrypted


def test_item3_unauthenticated_envelopes_cannot_grow_memory(encrypted: Hostile) -> None:
    v = encrypted.attack(
        "envelopes", "--target", encrypted.address(encrypted.owner), "--connections", "64"
    )
    v.assert_unharmed()
    assert v.attack["bytes"] > 50 * 1024 * 1024, "the attack did not stream much"


def test_item6_a_speaker_with_the_wrong_key_stays_unready(
    encrypted: Hostile, tmp_path: Path
) -> None:
    """node4 joins with another key: it hears its peers but cannot decrypt them. It must
    stay unready and announce nothing, and say why."""
    speakers = encrypted.speakers
    wrong = tmp_path / "wrong-key"
    wrong.write_bytes(b"a-different-memberlist-secret-0123456789abcdef")
    node = "node3"
    argv = speakers.speaker_argv(node)
    argv[argv.index(next(a for a in argv if a.endswith("secretkey")))] = str(wrong)
    speakers.lab.stop(speakers.speakers.pop(node))
    time.sleep(1.0)
    log = open(speakers.workdir / "node3-wrongkey.log", "wb")  # noqa: SIM115
    proc = speakers.lab.spawn(node, argv, stdout=log, stderr=log)
    speakers.speakers[node] = proc
    try:
        time.sleep(6.0)  # twice the "alone" timeout
        assert speakers.fetch(node, "/readyz") is None  # 503: not ready
        doc = speakers.status(node) or {}
        assert not any(r.get("announcing") for r in doc.get("ownership", []))
        text = (speakers.workdir / "node3-wrongkey.log").read_text()
        assert "cannot be decrypted" in text
        owners = speakers.owners()
        assert all(node not in n for n in owners.values())
        assert all(len(owners.get(ip, ())) == 1 for ip in (V4, str(vip(1, 4))))
    finally:
        speakers.lab.stop(speakers.speakers.pop(node))
        log.close()
