"""Lease leader election: the pure decision table, then two electors over HTTP."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes import client

from l2agent.kube.lease import (
    LeaseAction,
    LeaseConfig,
    LeaseElector,
    LeaseRecord,
    Observation,
    decide,
)

from ._util import wait_until

CFG = LeaseConfig(lease_duration=15, renew_deadline=10, retry_period=2)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(holder: str, renewed: float = 0.0, transitions: int = 0, rv: str = "1") -> LeaseRecord:
    t = T0 + timedelta(seconds=renewed)
    return LeaseRecord(holder, 15, T0, t, transitions, rv)


@pytest.mark.parametrize(
    ("current", "observed", "now", "action", "holder", "transitions"),
    [
        # no Lease yet: create it, holding it
        (None, None, 0.0, LeaseAction.CREATE, "me", 0),
        # ours: renew, no transition
        (rec("me", 3), None, 5.0, LeaseAction.RENEW, "me", 0),
        # somebody else's, just seen: wait (their renewTime is irrelevant: skew-proof)
        (rec("other", -3600), None, 100.0, LeaseAction.WAIT, None, None),
        # unchanged since we first saw it 14 s ago: still theirs
        (rec("other"), Observation(rec("other"), 86.0), 100.0, LeaseAction.WAIT, None, None),
        # unchanged for the full duration: expired, take over
        (rec("other"), Observation(rec("other"), 85.0), 100.0, LeaseAction.ACQUIRE, "me", 1),
        # it changed (a renewal) since our observation: the clock restarts
        (rec("other", 9), Observation(rec("other"), 0.0), 100.0, LeaseAction.WAIT, None, None),
        # released (holder empty): take it at once
        (rec("", transitions=4), None, 0.0, LeaseAction.ACQUIRE, "me", 5),
    ],
)
def test_decision_table(
    current: LeaseRecord | None,
    observed: Observation | None,
    now: float,
    action: LeaseAction,
    holder: str | None,
    transitions: int | None,
) -> None:
    wall = T0 + timedelta(seconds=1000)
    d = decide(current, "me", now=now, wall=wall, observed=observed, config=CFG)
    assert d.action is action
    if holder is None:
        assert d.record is None
        return
    assert d.record is not None
    assert d.record.holder == holder
    assert d.record.transitions == transitions
    assert d.record.renew_time == wall
    if current is not None:
        assert d.record.resource_version == current.resource_version  # the precondition


def test_a_change_resets_the_observation_clock() -> None:
    first = decide(rec("other"), "me", now=10.0, wall=T0, observed=None, config=CFG)
    assert first.observation == Observation(rec("other"), 10.0)
    renewed = rec("other", 2, rv="2")
    second = decide(renewed, "me", now=20.0, wall=T0, observed=first.observation, config=CFG)
    assert second.observation == Observation(renewed, 20.0)
    # Only resourceVersion changed (e.g. a no-op write elsewhere): not a renewal.
    same = rec("other", 2, rv="3")
    third = decide(same, "me", now=30.0, wall=T0, observed=second.observation, config=CFG)
    assert third.observation is not None and third.observation.at == 20.0


def test_config_validates_its_ordering() -> None:
    with pytest.raises(ValueError):
        LeaseConfig(lease_duration=5, renew_deadline=10, retry_period=2)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(api: client.ApiClient, ident: str, clock: FakeClock, **kw: Any) -> LeaseElector:
    return LeaseElector(
        api,
        namespace="metallb-system",
        name="l2agent-controller",
        identity=ident,
        config=CFG,
        clock=clock,
        **kw,
    )


def test_two_replicas_one_leader_then_takeover_after_expiry(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    clock = FakeClock()
    a = elector(api_client, "pod-a", clock)
    b = elector(api_client, "pod-b", clock)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    lease = apiserver.get("Lease", "metallb-system", "l2agent-controller")
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    # Kubernetes' MicroTime layout exactly: RFC 3339, six fraction digits, UTC as "Z".
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["spec"]["renewTime"])
    assert b.holder == "pod-a"
    # a renews while b watches; b never takes over a live lease
    for _ in range(10):
        clock.t += 2
        assert a.try_acquire_or_renew() is True
        assert b.try_acquire_or_renew() is False
    # a dies (stops renewing): b takes over only once the record sat still for 15 s
    clock.t += 14
    assert b.try_acquire_or_renew() is False
    clock.t += 2
    assert b.try_acquire_or_renew() is True
    lease = apiserver.get("Lease", "metallb-system", "l2agent-controller")
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1
    # a comes back: it sees b's lease and steps down
    assert a.try_acquire_or_renew() is False
    assert not a.is_leader


def test_release_hands_over_at_once(apiserver: Any, api_client: client.ApiClient) -> None:
    clock = FakeClock()
    a = elector(api_client, "pod-a", clock)
    b = elector(api_client, "pod-b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.is_leader
    assert apiserver.get("Lease", "metallb-system", "l2agent-controller")["spec"].get(
        "holderIdentity"
    ) in (None, "")
    assert b.try_acquire_or_renew()  # no waiting for the 15 s expiry


def test_lost_race_on_create_is_a_conflict_not_a_crash(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    clock = FakeClock()
    a = elector(api_client, "pod-a", clock)
    apiserver.fail_next("POST", "/leases", 409)
    assert a.try_acquire_or_renew() is False
    assert a.try_acquire_or_renew() is True


def test_stale_resource_version_is_refused(apiserver: Any, api_client: client.ApiClient) -> None:
    """Both replicas saw the lease expire and both try to take it: the precondition on
    resourceVersion lets exactly one win."""
    clock = FakeClock()
    old = elector(api_client, "pod-old", clock)
    assert old.try_acquire_or_renew()
    a = elector(api_client, "pod-a", clock)
    b = elector(api_client, "pod-b", clock)
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.t += 16
    results = [a.try_acquire_or_renew(), b.try_acquire_or_renew()]
    assert results == [True, False]
    holder = apiserver.get("Lease", "metallb-system", "l2agent-controller")["spec"]
    assert holder["holderIdentity"] == "pod-a"


def test_leader_steps_down_when_it_cannot_renew(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    clock = FakeClock()
    events: list[str] = []
    a = elector(
        api_client,
        "pod-a",
        clock,
        on_started_leading=lambda: events.append("start"),
        on_stopped_leading=lambda: events.append("stop"),
    )
    assert a.try_acquire_or_renew()
    with apiserver.outage():
        clock.t += 2
        assert a.try_acquire_or_renew() is True  # within renew_deadline: still leading
        clock.t += 9
        assert a.try_acquire_or_renew() is False  # 11 s without a renewal: step down
    assert events == ["start", "stop"]
    assert a.try_acquire_or_renew() is True  # the lease is still ours once back
    assert events == ["start", "stop", "start"]


def test_run_loop_acquires_and_releases_on_stop(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    cfg = LeaseConfig(lease_duration=3, renew_deadline=2, retry_period=0.05)
    a = LeaseElector(api_client, namespace="metallb-system", name="l", identity="pod-a", config=cfg)
    t = threading.Thread(target=a.run)
    t.start()
    try:
        assert a.wait_for_leadership(10)
        wait_until(lambda: len(apiserver.requests_for("PUT", "/leases/l")) >= 2, what="renewals")
    finally:
        a.stop()
        t.join(10)
    spec = apiserver.get("Lease", "metallb-system", "l")["spec"]
    assert not spec.get("holderIdentity")


def test_micro_time_always_has_six_fraction_digits() -> None:
    from l2agent.kube.convert import format_micro_time, parse_time

    t = datetime(2026, 1, 1, tzinfo=UTC)  # a zero fraction that isoformat() would drop
    assert format_micro_time(t) == "2026-01-01T00:00:00.000000Z"
    assert parse_time(format_micro_time(t)) == t
    cet = timezone(timedelta(hours=1))
    assert format_micro_time(datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=cet)) == (
        "2026-01-01T00:00:00.000005Z"
    )
