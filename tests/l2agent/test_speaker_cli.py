"""`l2agent speaker`'s command line: join lists, addresses, settings and config paths are
parsed once, and what does not parse is refused with a clear message (exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gossip.addresses import GOSSIP_PORT
from l2agent.cli import build_parser
from l2agent.speaker.gossip import GossipMembership
from l2agent.speaker.main import build_membership, join_targets, run_speaker
from l2agent.static import demo_config_path


def _args(*extra: str) -> object:
    return build_parser().parse_args(
        ["speaker", "--node-name", "node1", "--config", str(demo_config_path()), *extra]
    )


def test_join_takes_comma_lists_and_repeats() -> None:
    assert join_targets(["192.0.2.12,192.0.2.13:7000", "[2001:db8::4]", "node-5"], 7946) == [
        ("192.0.2.12", 7946),
        ("192.0.2.13", 7000),
        ("2001:db8::4", 7946),
        ("node-5", 7946),
    ]


def test_gossip_membership_from_flags_ipv6_and_port_apart() -> None:
    args = _args(
        "--bind-addr", "2001:db8::11", "--gossip-port", "7950", "--join", "2001:db8::12,192.0.2.13"
    )
    membership = build_membership(args, "node1")  # type: ignore[arg-type]
    assert isinstance(membership, GossipMembership)
    assert (membership.config.bind_addr, membership.config.bind_port) == ("2001:db8::11", 7950)
    assert membership._join == (("2001:db8::12", 7950), ("192.0.2.13", 7950))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--bind-addr", "192.0.2.11", "--join", "192.0.2.12:x"), "bad port"),
        (("--bind-addr", "192.0.2.11:"), "empty port"),
        (("--bind-addr", "192.0.2.11", "--gossip-set", "refute_directly=flase"), "refute_directly"),
        (("--bind-addr", "192.0.2.11", "--secret-key-file", "/nonexistent/key"), "No such file"),
    ],
)
def test_bad_flags_are_refused_with_a_message(
    extra: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_speaker(_args(*extra)) == 2  # type: ignore[arg-type]
    assert message in capsys.readouterr().err


def test_unreadable_config_on_start_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    args = build_parser().parse_args(
        ["speaker", "--node-name", "n", "--config", str(missing), "--metrics-addr", ""]
    )
    assert run_speaker(args) == 2


def test_default_gossip_port() -> None:
    assert _args().gossip_port == GOSSIP_PORT  # type: ignore[attr-defined]


def test_a_secret_key_file_gives_watched_keys_and_their_advert(tmp_path: Path) -> None:
    from gossip.keyring import Keyring, metallb_key
    from l2agent.speaker.main import build_gossip

    secret = tmp_path / "secretkey"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef")
    args = _args("--bind-addr", "192.0.2.11", "--secret-key-file", str(secret))
    membership, keys = build_gossip(args, "node1")  # type: ignore[arg-type]
    assert isinstance(membership, GossipMembership) and keys is not None
    assert keys.keyring() == Keyring((metallb_key(secret.read_bytes()),))
    assert keys.rotation.settle == 2.0  # the fast preset: twice its 1 s stream timeout
    assert membership._keyring == keys.keyring()
    assert membership._meta == keys.meta()


def test_realtime_priority_is_not_inherited_by_children() -> None:
    """frr-reload.py and vtysh run as children of the speaker: at SCHED_RR they starved FRR's
    bfdd on every reload (50 ms BFD sessions flapped). The kernel resets them on fork."""
    import subprocess
    import sys

    script = (
        "import os, subprocess, sys\n"
        "from l2agent.speaker.main import raise_priority\n"
        "raise_priority(10)\n"
        "me = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK\n"
        "child = subprocess.run([sys.executable, '-c', "
        "'import os; print(os.sched_getscheduler(0))'], capture_output=True, text=True)\n"
        "print(me, child.stdout.strip())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    parent, child = (int(w) for w in out.stdout.split())
    if parent != os.SCHED_RR:
        pytest.skip(f"cannot take SCHED_RR here (policy {parent}): {out.stderr.strip()}")
    assert child == os.SCHED_OTHER
