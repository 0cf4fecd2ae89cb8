"""The real Go memberlist as the judge of our wire and protocol, in two versions.

Every test that runs a Go member runs twice: against Debian bookworm's memberlist 0.2.2 and
against Debian trixie's 0.5.0, the release MetalLB speakers pin (fetched by
scripts/fetch-memberlist.sh; those runs skip with its reason when the download is impossible).
Labels exist from 0.3.0 on, so the label tests need 0.5.0; against 0.2.2 they check that a
labelled member is refused instead.

Go members run tests/gopeer/main.go; Python members run `python -m gossip --commands` in
child processes so they can be SIGKILLed by PID like the Go ones. Everything is on
127.0.0.1 with free ports and tight timings on both sides (probe 200 ms, suspicion x2) so a
crash is detected in about two seconds. Bounds below are generous on purpose (shared CI).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.gopeer import (
    VERSIONS,
    GoPeer,
    MemberlistSource,
    PyMember,
    build_golden_tool,
    build_peer,
    free_port,
    skip_reason,
    wait_until,
)

from gossip.codec import IntStyle, encode_message, encode_stream_message
from gossip.framing import compress_message, make_compound
from gossip.keyring import Keyring
from gossip.messages import (
    Alive,
    Dead,
    IndirectPingReq,
    Message,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "gossip" / "go_golden.json"
KEY = bytes(range(32))
WRONG_KEY = bytes(range(1, 33))
GO_TIMING = {
    "preset": "local",
    "probe_interval": "200ms",
    "probe_timeout": "100ms",
    "gossip_interval": "50ms",
    "suspicion_mult": "2",
    "push_pull_interval": "5s",
}
PY_TIMING = [
    "--preset", "local",
    "--set", "probe_interval=0.2",
    "--set", "probe_timeout=0.1",
    "--set", "gossip_interval=0.05",
    "--set", "suspicion_mult=2",
    "--set", "push_pull_interval=5",
]  # fmt: skip
DETECT = 15.0  # seconds allowed for failure detection (expected ~2 s)
SPREAD = 10.0  # seconds allowed for joins/leaves to spread (expected well under 1 s)


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda s: f"memberlist-{s.version}")
def memberlist(request: pytest.FixtureRequest) -> MemberlistSource:
    """Each memberlist version in turn (module scope: all of one version's tests, then the next)."""
    source: MemberlistSource = request.param
    reason = skip_reason(source)
    if reason is not None:
        pytest.skip(reason)
    return source


@pytest.fixture(scope="module")
def go_binary(memberlist: MemberlistSource) -> Path:
    return build_peer(memberlist)


class Cluster:
    """Starts Go and Python members and kills every one at the end, pass or fail."""

    def __init__(self, go_binary: Path | None, tmp: Path) -> None:
        self.go_binary = go_binary
        self.tmp = tmp
        self.members: list[GoPeer | PyMember] = []

    def go(self, name: str, join: int | None = None, **flags: str) -> GoPeer:
        assert self.go_binary is not None, "a Python-only cluster"
        opts = dict(GO_TIMING, **flags)
        if join is not None:
            opts["join"] = f"127.0.0.1:{join}"
        peer = GoPeer(self.go_binary, name, free_port(), **opts)
        self.members.append(peer)
        return peer

    def py(
        self,
        name: str,
        join: int | None = None,
        *args: str,
        key: bytes | None = None,
        metallb_secret: bytes | None = None,
    ) -> PyMember:
        extra = list(PY_TIMING) + list(args)
        if key is not None:
            key_file = self.tmp / f"{name}.key"
            key_file.write_text(key.hex())
            extra += ["--key-file", str(key_file)]
        if metallb_secret is not None:
            secret_file = self.tmp / f"{name}.secret"
            secret_file.write_bytes(metallb_secret)
            extra += ["--metallb-secret-file", str(secret_file)]
        if join is not None:
            extra += ["--join", f"127.0.0.1:{join}"]
        member = PyMember(name, free_port(), *extra)
        self.members.append(member)
        return member

    def close(self) -> None:
        for member in self.members:
            member.close()


@pytest.fixture
def cluster(go_binary: Path, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(go_binary, tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def py_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Python members only (no Go version to run against)."""
    c = Cluster(None, tmp_path)
    try:
        yield c
    finally:
        c.close()


def _same_view(members: list[GoPeer | PyMember], names: set[str]) -> None:
    for m in members:
        wait_until(lambda m=m: m.alive_members() == names, SPREAD, f"{m.name} to list {names}")


# ------------------------------------------------------------------ membership


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes256"])
def test_python_joins_go_cluster_and_go_joins_python(cluster: Cluster, key: bytes | None) -> None:
    flags: dict[str, Any] = {"key": key.hex()} if key else {}
    go1 = cluster.go("go1", **flags)
    go2 = cluster.go("go2", join=go1.port, **flags)
    py1 = cluster.py("py1", go1.port, key=key)
    assert py1.wait_event("joined")["count"] == 1
    go3 = cluster.go("go3", join=py1.port, **flags)  # a Go member joins via the Python one
    assert go3.wait_event("joined")["count"] == 1
    py2 = cluster.py("py2", go3.port, key=key)
    names = {"go1", "go2", "go3", "py1", "py2"}
    _same_view([go1, go2, go3, py1, py2], names)
    event = go1.wait_event("join", "py1")
    assert event["addr"] == "127.0.0.1" and event["port"] == py1.port
    assert event["vsn"] == "AQUCAAAA"  # base64 of Vsn [1, 5, 2, 0, 0, 0]
    joined = py2.wait_event("join", "go2")
    assert joined["port"] == go2.port


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes256"])
def test_crashes_are_failures_both_ways(cluster: Cluster, key: bytes | None) -> None:
    flags: dict[str, Any] = {"key": key.hex()} if key else {}
    go1 = cluster.go("go1", **flags)
    go2 = cluster.go("go2", join=go1.port, **flags)
    py1 = cluster.py("py1", go1.port, key=key)
    py2 = cluster.py("py2", go1.port, key=key)
    _same_view([go1, go2, py1, py2], {"go1", "go2", "py1", "py2"})

    go2.kill()  # SIGKILL: no leave message
    failed = py1.wait_event("fail", "go2", timeout=DETECT)
    assert failed["port"] == go2.port
    assert not any(e.get("event") == "leave" and e.get("node") == "go2" for e in py1.seen)

    py2.kill()
    go1.wait_event("leave", "py2", timeout=DETECT)  # memberlist reports dead nodes as leave
    py1.wait_event("fail", "py2", timeout=DETECT)
    _same_view([go1, py1], {"go1", "py1"})


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes256"])
def test_graceful_leave_both_ways(cluster: Cluster, key: bytes | None) -> None:
    # Long suspicion on the Go side: a leave seen within SPREAD cannot be failure detection.
    flags: dict[str, Any] = {"key": key.hex()} if key else {}
    go1 = cluster.go("go1", suspicion_mult="100", **flags)
    go2 = cluster.go("go2", join=go1.port, suspicion_mult="100", **flags)
    py1 = cluster.py("py1", go1.port, "--set", "suspicion_mult=100", key=key)
    py2 = cluster.py("py2", go1.port, "--set", "suspicion_mult=100", key=key)
    _same_view([go1, go2, py1, py2], {"go1", "go2", "py1", "py2"})

    go2.command("leave")
    py1.wait_event("leave", "go2", timeout=SPREAD)
    assert not any(e.get("event") == "fail" and e.get("node") == "go2" for e in py1.seen)

    py2.terminate()  # SIGTERM: the CLI leaves and exits 0
    go1.wait_event("leave", "py2", timeout=SPREAD)
    assert py2.proc.wait(timeout=SPREAD) == 0
    assert py2.wait_event("stopped")["left"] is True
    py1.wait_event("leave", "py2", timeout=SPREAD)


def test_wrong_key_refuses_join_both_ways(cluster: Cluster) -> None:
    go1 = cluster.go("go1", key=KEY.hex())
    py1 = cluster.py("py1", go1.port, key=WRONG_KEY)
    assert py1.wait_event("joined")["count"] == 0
    go2 = cluster.go("go2", join=py1.port, key=KEY.hex())
    joined = go2.wait_event("joined")
    assert joined["count"] == 0 and joined.get("error")
    plain = cluster.py("plain", go1.port)  # no key at all: refused too
    assert plain.wait_event("joined")["count"] == 0
    assert go1.alive_members() == {"go1"}
    assert py1.alive_members() == {"py1"}
    assert go2.alive_members() == {"go2"}


# ------------------------------------------------------------------ MetalLB's key


def _metallb_style_secret() -> bytes:
    """Like `openssl rand -base64 128` in MetalLB's install docs: base64 wrapped at 64."""
    import base64

    text = base64.b64encode(bytes(range(7, 135))).decode()
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64)).encode()


@pytest.mark.parametrize(
    "secret", [_metallb_style_secret(), b"short"], ids=["base64-128", "short-secret"]
)
def test_metallb_secret_derives_the_same_key(cluster: Cluster, secret: bytes) -> None:
    """Go derives the key from the Secret as MetalLB's speaker does, Python from the same bytes.

    A short secret is the quirk's telling case: its key is the secret padded with SHA-256("").
    """
    go1 = cluster.go("go1", metallb_secret=secret.decode())
    py1 = cluster.py("py1", go1.port, metallb_secret=secret)
    assert py1.wait_event("joined")["count"] == 1
    go2 = cluster.go("go2", join=py1.port, metallb_secret=secret.decode())
    assert go2.wait_event("joined")["count"] == 1
    _same_view([go1, go2, py1], {"go1", "go2", "py1"})
    if len(secret) < 32:  # longer secret, different key (a long one ignores bytes past 32)
        stranger = cluster.py("stranger", go1.port, metallb_secret=secret + b"x" * 40)
        assert stranger.wait_event("joined")["count"] == 0


# ------------------------------------------------------------------ labels (memberlist ≥ 0.3.0)


def _needs_labels(memberlist: MemberlistSource) -> None:
    if not memberlist.labels:
        pytest.skip(
            f"memberlist {memberlist.version} has no labels "
            "(test_label_mismatch_is_refused_both_ways covers it)"
        )


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes256"])
def test_labelled_members_interoperate(
    cluster: Cluster, memberlist: MemberlistSource, key: bytes | None
) -> None:
    """Joins both ways, user messages over both transports, failure detection and a graceful
    leave, all labelled (with a key, the label is also the AES-GCM additional data)."""
    _needs_labels(memberlist)
    flags: dict[str, Any] = {"label": "blue"}
    if key:
        flags["key"] = key.hex()
    go1 = cluster.go("go1", **flags)
    py1 = cluster.py("py1", go1.port, "--label", "blue", key=key)
    assert py1.wait_event("joined")["count"] == 1
    go2 = cluster.go("go2", join=py1.port, **flags)  # Go dials Python
    assert go2.wait_event("joined")["count"] == 1
    py2 = cluster.py("py2", go2.port, "--label", "blue", key=key)
    _same_view([go1, go2, py1, py2], {"go1", "go2", "py1", "py2"})

    go1.command("send py1 aa01")
    go1.command("sendudp py1 aa02")
    py1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "aa01" and e["reliable"])
    py1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "aa02")
    assert "error" not in py1.command("send go2 bb01")
    assert "error" not in py1.command("sendudp go2 bb02")
    go2.wait_for(lambda e: e.get("event") == "user" and e["data"] == "bb01")
    go2.wait_for(lambda e: e.get("event") == "user" and e["data"] == "bb02")

    # A graceful leave while all are alive (memberlist spends the few transmits of a leave on
    # recently dead members too, so after crashes it may reach nobody alive).
    assert "error" not in go2.command("leave")
    py1.wait_event("leave", "go2", timeout=SPREAD)
    assert not any(e.get("event") == "fail" and e.get("node") == "go2" for e in py1.seen)
    py2.kill()
    go1.wait_event("leave", "py2", timeout=DETECT)  # memberlist reports dead nodes as leave
    go1.kill()
    py1.wait_event("fail", "go1", timeout=DETECT)


def test_label_mismatch_is_refused_both_ways(
    cluster: Cluster, memberlist: MemberlistSource
) -> None:
    """A labelled member and one without (or with another) label never join each other.

    0.2.2 knows no labels: it drops labelled traffic as an unknown message type.
    """
    py_blue = cluster.py("pyblue", None, "--label", "blue")
    go_plain = cluster.go("goplain", join=py_blue.port)
    assert go_plain.wait_event("joined")["count"] == 0
    py_blue2 = cluster.py("pyblue2", go_plain.port, "--label", "blue")
    assert py_blue2.wait_event("joined")["count"] == 0
    alone = {go_plain: {"goplain"}, py_blue2: {"pyblue2"}}
    if memberlist.labels:
        go_blue = cluster.go("goblue", join=py_blue.port, label="blue")
        assert go_blue.wait_event("joined")["count"] == 1  # the control: same label joins
        go_green = cluster.go("gogreen", join=py_blue.port, label="green")
        assert go_green.wait_event("joined")["count"] == 0
        py_green = cluster.py("pygreen", go_blue.port, "--label", "green")
        assert py_green.wait_event("joined")["count"] == 0
        py_plain = cluster.py("pyplain", go_blue.port)
        assert py_plain.wait_event("joined")["count"] == 0
        _same_view([py_blue, go_blue], {"pyblue", "goblue"})
        alone.update({go_green: {"gogreen"}, py_green: {"pygreen"}, py_plain: {"pyplain"}})
    else:
        assert py_blue.alive_members() == {"pyblue"}
    for member, names in alone.items():
        assert member.alive_members() == names, member.name


def test_skip_inbound_label_check_matches_go(
    cluster: Cluster, memberlist: MemberlistSource
) -> None:
    """SkipInboundLabelCheck: unlabelled input is taken as ours, labelled input is refused."""
    _needs_labels(memberlist)
    skip = "skip_inbound_label_check=true"
    go_skip = cluster.go("goskip", label="blue", skip_inbound_label_check="true")
    py_skip = cluster.py("pyskip", None, "--label", "blue", "--set", skip)
    # unlabelled dialers are accepted (the responder's reply carries no label header)
    py_plain = cluster.py("pyplain", go_skip.port)
    assert py_plain.wait_event("joined")["count"] == 1
    go_plain = cluster.go("goplain", join=py_skip.port)
    assert go_plain.wait_event("joined")["count"] == 1
    # labelled dialers are refused, even with the right label
    py_blue = cluster.py("pyblue", go_skip.port, "--label", "blue")
    assert py_blue.wait_event("joined")["count"] == 0
    go_blue = cluster.go("goblue", join=py_skip.port, label="blue")
    assert go_blue.wait_event("joined")["count"] == 0


# ------------------------------------------------------------------ payloads


def test_meta_user_messages_and_push_pull_state(cluster: Cluster) -> None:
    go_meta = bytes(range(256)) * 2  # 512 bytes, the maximum
    py_meta = bytes(reversed(range(256))) * 2
    go1 = cluster.go("go1", meta=go_meta.hex(), state="676f2d7374617465")  # "go-state"
    py1 = cluster.py("py1", go1.port, "--meta", py_meta.hex(), "--state", "70792d7374617465")
    assert py1.wait_event("join", "go1")["meta"] == go_meta.hex()
    assert go1.wait_event("join", "py1")["meta"] == py_meta.hex()

    # push/pull user state, both ways, during the join
    assert py1.wait_event("state")["data"] == "676f2d7374617465"
    go_state = go1.wait_event("state")
    assert go_state["data"] == "70792d7374617465" and go_state["join"] is True

    # user messages both ways, over TCP (reliable) and UDP
    go1.command("send py1 aa01")
    go1.command("sendudp py1 aa02")
    py1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "aa01" and e["reliable"])
    py1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "aa02")
    assert "error" not in py1.command("send go1 bb01")
    assert "error" not in py1.command("sendudp go1 bb02")
    go1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "bb01")
    go1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "bb02")

    # a meta change is an update both ways
    py1.command("meta 0102")
    go1.wait_for(lambda e: e.get("event") == "update" and e["meta"] == "0102")
    go1.command("meta 0304")
    py1.wait_for(lambda e: e.get("event") == "update" and e["meta"] == "0304")

    # periodic (non-join) push/pull carries state too (interval 5 s on both sides)
    go1.wait_for(lambda e: e.get("event") == "state" and e["join"] is False, timeout=15)


# ------------------------------------------------------------------ bytes judged by Go


def _judge(lines: list[str], memberlist: MemberlistSource) -> list[dict]:
    tool = build_golden_tool(memberlist)
    out = subprocess.run(
        [str(tool), "judge"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_golden_file_is_what_go_produces(memberlist: MemberlistSource) -> None:
    """The stored vectors (made by 0.2.2) are what each version's own encoder produces."""
    tool = build_golden_tool(memberlist)
    out = subprocess.run([str(tool)], capture_output=True, text=True, check=True, timeout=60)
    fresh = json.loads(out.stdout)
    stored = json.loads(GOLDEN_PATH.read_text())
    random_nonce = {k for k in stored if k.startswith("encrypted_")}
    assert set(fresh) == set(stored)
    assert {k: v for k, v in fresh.items() if k not in random_nonce} == {
        k: v for k, v in stored.items() if k not in random_nonce
    }


def test_go_decodes_what_we_encode(memberlist: MemberlistSource) -> None:
    lo = bytes([127, 0, 0, 1])
    state = PushNodeState("né-1", lo, 7946, b"\x00\xff", 7, NodeState.LEFT)
    messages: list[Message] = [
        Ping(4000000000, "x" * 40, source_addr=lo, source_node="y", source_port=65535),
        IndirectPingReq(3, lo, 7946, "t", nack=True),
        Alive(70000, "a" * 300, bytes(16), 1, meta=b"m" * 512),
        Dead(2, "a", "a"),
    ]
    lines = [f"msg {encode_message(m).hex()}" for m in messages]
    for style in IntStyle:
        pp = PushPull(join=True, states=(state,) * 200, user_state=b"u" * 300)
        head = encode_stream_message(pp, style)
        lines.append(f"msg {head.hex()}")
    from gossip.codec import encode_push_node_state

    lines.append(f"state {encode_push_node_state(state).hex()}")
    payload = os.urandom(3000) + bytes(5000) + b"abc" * 3000
    lines.append(f"decompress {compress_message(payload).hex()}")
    parts = [encode_message(Ping(i, "n")) for i in range(100)]
    lines.append(f"compound {make_compound(parts).hex()}")
    envelope = Keyring((KEY,)).encrypt(b"secret", b"label", os.urandom)
    lines.append(f"decrypt {KEY.hex()} {b'label'.hex()} {envelope.hex()}")

    results = _judge(lines, memberlist)
    assert all("error" not in r for r in results), results
    ping, ind, alive, dead, pp05, ppv2, st, dec, comp, crypt = results
    assert ping["value"]["SeqNo"] == 4000000000 and ping["value"]["SourcePort"] == 65535
    assert ping["value"]["Node"] == "x" * 40
    assert ind["value"]["Nack"] is True
    assert alive["value"]["Node"] == "a" * 300 and alive["value"]["Incarnation"] == 70000
    assert dead["value"]["From"] == "a"
    for header in (pp05, ppv2):
        assert header["value"] == {"Join": True, "Nodes": 200, "UserStateLen": 300}
    assert st["value"]["Name"] == "né-1" and st["value"]["State"] == 3
    assert bytes.fromhex(dec["hex"]) == payload
    assert [bytes.fromhex(p) for p in comp["parts"]] == parts and comp["truncated"] == 0
    assert bytes.fromhex(crypt["hex"]) == b"secret"


# ------------------------------------------------------------------ Python-only wire rules


def test_label_must_match(py_cluster: Cluster) -> None:
    # Python members among themselves; test_labels_with_go has Go 0.5.0 judge the same rules.
    py1 = py_cluster.py("py1", None, "--label", "blue")
    py2 = py_cluster.py("py2", py1.port, "--label", "blue")
    assert py2.wait_event("joined")["count"] == 1
    py3 = py_cluster.py("py3", py1.port, "--label", "green")
    assert py3.wait_event("joined")["count"] == 0
    py4 = py_cluster.py("py4", py1.port)
    assert py4.wait_event("joined")["count"] == 0
    _same_view([py1, py2], {"py1", "py2"})


def test_garbage_and_stalled_streams_do_not_hurt(cluster: Cluster) -> None:
    import socket

    go1 = cluster.go("go1")
    py1 = cluster.py("py1", go1.port, "--set", "tcp_timeout=0.5")
    _same_view([go1, py1], {"go1", "py1"})
    # UDP garbage and a valid-looking but lying compound
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for junk in (b"", b"\x07\xff", b"\x0c\x00\x00\x00\x00", os.urandom(1400), b"\x09\x80"):
            udp.sendto(junk, ("127.0.0.1", py1.port))
    # a TCP stream of garbage gets an errResp (type 13, maybe compressed) and is closed
    with socket.create_connection(("127.0.0.1", py1.port), timeout=5) as tcp:
        tcp.sendall(b"\x06\xc1garbage")
        reply = tcp.recv(4096)
        assert reply[:1] in (b"\x0d", b"\x09")
    # a stalled stream is closed by the member after tcp_timeout
    with socket.create_connection(("127.0.0.1", py1.port), timeout=5) as tcp:
        tcp.sendall(b"\x06")
        # the member closes it (EOF, perhaps after an errResp); a 5 s socket timeout fails
        while tcp.recv(4096):
            pass
    # still healthy: Go still sees it alive after a probe round trip
    go1.command("send py1 cc")
    py1.wait_for(lambda e: e.get("event") == "user" and e["data"] == "cc")
    assert go1.alive_members() == {"go1", "py1"}
    assert not any(e.get("event") == "fail" for e in py1.seen)


def test_mixed_cluster_of_twelve_converges_and_detects_crashes(cluster: Cluster) -> None:
    go0 = cluster.go("g0")
    members: list[GoPeer | PyMember] = [go0]
    members += [cluster.go(f"g{i}", join=go0.port) for i in range(1, 6)]
    members += [cluster.py(f"p{i}", members[i].port) for i in range(6)]  # each via another
    names = {m.name for m in members}
    _same_view(members, names)
    victims = [members[2], members[3], members[8], members[9]]  # two Go, two Python
    for victim in victims:
        victim.kill()
    survivors = [m for m in members if m not in victims]
    wait_until(
        lambda: all(m.alive_members() == names - {v.name for v in victims} for m in survivors),
        DETECT,
        "every survivor to drop the four crashed members",
    )
    for py in (m for m in survivors if isinstance(m, PyMember)):
        for victim in victims:
            py.wait_event("fail", victim.name)


def test_runtime_api_in_process(cluster: Cluster) -> None:
    """The library API (GossipRuntime) as the speaker uses it, against a Go member."""
    import asyncio

    from gossip.aio import GossipRuntime
    from gossip.config import local
    from gossip.events import Event, MemberFailed, MemberJoined, UserMessage

    go1 = cluster.go("go1", key=KEY.hex())
    go2 = cluster.go("go2", join=go1.port, key=KEY.hex())
    port = free_port()

    async def scenario() -> None:
        config = local(
            "inproc",
            bind_addr="127.0.0.1",
            bind_port=port,
            probe_interval=0.2,
            probe_timeout=0.1,
            gossip_interval=0.05,
            suspicion_mult=2,
        )
        runtime = await GossipRuntime.start(config, meta=b"m" * 512, keyring=Keyring((KEY,)))
        try:
            done = await runtime.join([("127.0.0.1", go1.port)], timeout=10)
            assert done.succeeded == 1 and done.failed == ()

            async def next_event(pred: Callable[[Event], bool]) -> Event:
                while True:
                    event = await asyncio.wait_for(runtime.events.get(), DETECT)
                    if pred(event):
                        return event

            joined = await next_event(
                lambda e: isinstance(e, MemberJoined) and e.member.name == "go2"
            )
            assert isinstance(joined, MemberJoined) and joined.member.port == go2.port
            runtime.send_user(("127.0.0.1", go1.port), b"\x01\x02", reliable=True)
            await asyncio.to_thread(
                go1.wait_for, lambda e: e.get("event") == "user" and e["data"] == "0102"
            )
            await asyncio.to_thread(
                wait_until, lambda: "inproc" in go2.alive_members(), SPREAD, "go2 to learn us"
            )
            assert "error" not in await asyncio.to_thread(go2.command, "send inproc 0304")
            message = await next_event(lambda e: isinstance(e, UserMessage))
            assert isinstance(message, UserMessage) and message.data == b"\x03\x04"
            go2.kill()
            await next_event(lambda e: isinstance(e, MemberFailed) and e.member.name == "go2")
            assert await runtime.leave(5.0) is True
        finally:
            await runtime.close()

    asyncio.run(scenario())
    go1.wait_event("leave", "inproc", timeout=SPREAD)
    assert go1.wait_event("join", "inproc")["meta"] == (b"m" * 512).hex()
