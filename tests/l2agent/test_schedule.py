"""Announcement timetable: explicit times in, due rounds out (MetalLB: 0, 1.1 ... 4.4 s)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2agent.announce import AnnounceConfig, AnnounceSchedule, Due
from l2agent.model.types import IPAddress

A = IPv4Address("192.0.2.10")
B = IPv4Address("192.0.2.9")
C = IPv6Address("2001:db8::10")


def _run(sched: AnnounceSchedule, until: float) -> list[tuple[float, str, str]]:
    """Tick at every deadline up to ``until``; return (time, ifname, ip) rows."""
    out = []
    while (t := sched.next_deadline()) is not None and t <= until:
        out.extend((round(t, 6), d.ifname, str(d.ip)) for d in sched.tick(t))
    return out


def test_metallb_burst_times() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=100.0)
    assert s.next_deadline() == 100.0
    rows = _run(s, 1000)
    assert [r[0] for r in rows] == [100.0, 101.1, 102.2, 103.3, 104.4]
    assert s.next_deadline() is None


def test_decimal_times_fire_at_the_decimal_time() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=0.0)
    table = [(0.0, 1), (0.5, 0), (1.1, 1), (2.2, 1), (3.29, 0), (3.3, 1), (4.4, 1), (5.5, 0)]
    assert [(t, len(s.tick(t))) for t, _ in table] == table


def test_order_is_deterministic() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth1": {C, A}, "eth0": {C, B, A}}, now=0.0)
    assert s.tick(0.0) == [
        Due("eth0", B),
        Due("eth0", A),
        Due("eth0", C),
        Due("eth1", A),
        Due("eth1", C),
    ]


def test_loss_cancels_at_once_and_gain_starts_fresh() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A, C}}, now=0.0)
    assert len(s.tick(0.0)) == 2
    s.set_desired({"eth0": {C}}, now=0.5)
    assert s.tick(1.1) == [Due("eth0", C)]
    s.set_desired({"eth0": {A, C}}, now=1.5)  # regained: a new burst, C keeps its timer
    assert s.tick(1.5) == [Due("eth0", A)]
    assert s.next_deadline() == pytest.approx(2.2)
    s.set_desired({}, now=1.6)
    assert s.next_deadline() is None
    assert s.tick(10.0) == []


def test_unchanged_desired_does_not_restart() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=0.0)
    s.tick(0.0)
    s.set_desired({"eth0": frozenset({A})}, now=0.3)
    assert s.next_deadline() == pytest.approx(1.1)


def test_interface_changed_restarts_burst_for_that_interface_only() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}, "eth1": {A}}, now=0.0)
    assert len(_run(s, 10.0)) == 10
    s.interface_changed("eth1", now=20.0)
    s.interface_changed("nope", now=20.0)
    rows = _run(s, 100.0)
    assert [(t, i) for t, i, _ in rows] == [
        (20.0, "eth1"),
        (21.1, "eth1"),
        (22.2, "eth1"),
        (23.3, "eth1"),
        (24.4, "eth1"),
    ]


def test_interface_changed_mid_burst_restarts_it() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=0.0)
    s.tick(0.0)
    s.tick(1.1)
    s.interface_changed("eth0", now=1.5)
    assert [r[0] for r in _run(s, 100)] == [1.5, 2.6, 3.7, 4.8, 5.9]


def test_refresh_interval_repeats_forever_while_owned() -> None:
    s = AnnounceSchedule(AnnounceConfig(rounds=2, interval=1.0, refresh_interval=30.0))
    s.set_desired({"eth0": {A}}, now=0.0)
    assert [r[0] for r in _run(s, 100.0)] == [0.0, 1.0, 31.0, 61.0, 91.0]
    assert s.next_deadline() == 121.0
    s.set_desired({"eth0": set()}, now=100.0)
    assert s.next_deadline() is None


def test_late_tick_sends_one_round_and_keeps_phase() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=0.0)
    assert s.tick(0.0) == [Due("eth0", A)]
    assert s.tick(3.5) == [Due("eth0", A)]  # 1.1, 2.2, 3.3 slots missed: one round
    assert s.next_deadline() == pytest.approx(4.4)
    assert [r[0] for r in _run(s, 100.0)] == [4.4, 5.5, 6.6]
    assert s.next_deadline() is None


def test_early_tick_sends_nothing() -> None:
    s = AnnounceSchedule()
    s.set_desired({"eth0": {A}}, now=5.0)
    assert s.tick(4.0) == []
    assert s.next_deadline() == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [{"rounds": 0}, {"interval": 0.0}, {"interval": -1.0}, {"refresh_interval": 0.0}],
)
def test_config_checks_itself(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AnnounceConfig(**kwargs)  # type: ignore[arg-type]


def test_desired_round_trips() -> None:
    s = AnnounceSchedule()
    ips: set[IPAddress] = {ip_address("192.0.2.1"), ip_address("2001:db8::1")}
    s.set_desired({"eth0": ips, "eth1": set()}, now=0.0)
    assert s.desired == {"eth0": frozenset(ips)}


_IPS: list[IPAddress] = [A, B, C]
_IFS = ["eth0", "eth1"]

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"),
            st.dictionaries(st.sampled_from(_IFS), st.sets(st.sampled_from(_IPS)), max_size=2),
        ),
        st.tuples(st.just("changed"), st.sampled_from(_IFS)),
        st.tuples(st.just("advance"), st.floats(0.0, 3.0)),
    ),
    max_size=30,
)


@given(_ops, st.sampled_from([None, 7.0]))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_schedule_invariants(ops: list[tuple[str, object]], refresh: float | None) -> None:
    """Only desired pairs are due, one round per pair per tick, deadlines move forward, and
    without refresh a pair never gets more rounds than a burst between restarts."""
    s = AnnounceSchedule(AnnounceConfig(refresh_interval=refresh))
    now = 0.0
    since_restart: dict[tuple[str, IPAddress], int] = {}
    for op, arg in ops:
        if op == "set":
            assert isinstance(arg, dict)
            before = {(i, ip) for i, ips in s.desired.items() for ip in ips}
            s.set_desired(arg, now)
            after = {(i, ip) for i, ips in s.desired.items() for ip in ips}
            for pair in after - before:
                since_restart[pair] = 0
        elif op == "changed":
            assert isinstance(arg, str)
            s.interface_changed(arg, now)
            for ip in s.desired.get(arg, frozenset()):
                since_restart[(arg, ip)] = 0
        else:
            assert isinstance(arg, float)
            now += arg
        due = s.tick(now)
        pairs = [(d.ifname, d.ip) for d in due]
        assert len(pairs) == len(set(pairs))
        for name, ip in pairs:
            assert ip in s.desired.get(name, frozenset())
            since_restart[(name, ip)] += 1
            if refresh is None:
                assert since_restart[(name, ip)] <= s.config.rounds
        deadline = s.next_deadline()
        assert deadline is None or deadline > now
