"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Two parts. `decide()` is pure: given the Lease as last read, who we are, and when we last saw
its record change (on *our* monotonic clock, never by comparing the holder's wall-clock
renewTime with ours, so clock skew cannot steal a lease), it says what to do. `LeaseElector`
is the thin I/O around it: read, create or update with the resourceVersion precondition (a
409 means another replica won the race), renew every `retry_period`, and release on exit so
the standby takes over at once instead of after `lease_duration`.

Never two leaders. A standby takes over once the record sat still for `lease_duration` on
its clock; the leader stops leading `renew_deadline` after the start of its last
successful renewal, measured on a timer of its own, whatever its API calls are doing (an
API server that accepts connections and never answers holds a call for as long as the
client lets it). Every Lease call is bounded by `retry_period`, `is_leader` is computed
from the deadline at each question (so a write checked against it is never made after the
deadline), and a watchdog thread steps down on time. The margin `lease_duration -
renew_deadline` covers clock rate differences and the last write still in flight.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from l2agent.kube.convert import (
    api_failure,
    call_json,
    format_micro_time,
    parse_time,
)

__all__ = [
    "LeaseAction",
    "LeaseConfig",
    "LeaseDecision",
    "LeaseElector",
    "LeaseRecord",
    "Observation",
    "decide",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """client-go's defaults (kube-controller-manager uses the same)."""

    lease_duration: float = 15.0
    """Seconds a standby waits, from the last change it saw, before taking over."""
    renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew before it stops acting as leader."""
    retry_period: float = 2.0
    """Seconds between attempts (renewals by the leader, acquisitions by a standby); also
    the longest any one Lease call may take."""

    @property
    def stall_limit(self) -> float:
        """Seconds the Lease loop may go without progress: one round is two calls bounded
        by retry_period and a retry_period wait; three rounds with no progress is stuck."""
        return 9 * self.retry_period

    def __post_init__(self) -> None:
        if not (self.lease_duration > self.renew_deadline > self.retry_period > 0):
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The spec of a Lease, plus its resourceVersion for the update precondition."""

    holder: str = ""
    duration: int = 15
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    @classmethod
    def from_lease(cls, obj: dict[str, Any]) -> LeaseRecord:
        spec = obj.get("spec") or {}
        meta = obj.get("metadata") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=meta.get("resourceVersion"),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.duration,
            "acquireTime": format_micro_time(self.acquire_time) if self.acquire_time else None,
            "renewTime": format_micro_time(self.renew_time) if self.renew_time else None,
            "leaseTransitions": self.transitions,
        }

    def same_record(self, other: LeaseRecord) -> bool:
        """Equal ignoring resourceVersion: has the holder renewed since we looked?"""
        return replace(self, resource_version=None) == replace(other, resource_version=None)


@dataclass(frozen=True, slots=True)
class Observation:
    """The record as we last saw it change, and when (our monotonic clock)."""

    record: LeaseRecord
    at: float


class LeaseAction(enum.Enum):
    CREATE = "create"  # no Lease yet: create it holding it
    ACQUIRE = "acquire"  # free or expired: take it (transitions + 1)
    RENEW = "renew"  # ours: bump renewTime
    WAIT = "wait"  # somebody else holds a live lease


@dataclass(frozen=True, slots=True)
class LeaseDecision:
    action: LeaseAction
    record: LeaseRecord | None
    """The record to write (None for WAIT)."""
    observation: Observation | None
    """What to remember for the next call."""


def decide(
    current: LeaseRecord | None,
    me: str,
    *,
    now: float,
    wall: datetime,
    observed: Observation | None,
    config: LeaseConfig,
) -> LeaseDecision:
    """What to do with the Lease as just read (`current`; None: it does not exist)."""
    duration = max(1, round(config.lease_duration))
    if current is None:
        rec = LeaseRecord(me, duration, wall, wall, 0)
        return LeaseDecision(LeaseAction.CREATE, rec, None)
    if observed is None or not observed.record.same_record(current):
        observed = Observation(current, now)
    if current.holder == me:
        rec = replace(current, duration=duration, renew_time=wall)
        return LeaseDecision(LeaseAction.RENEW, rec, observed)
    held_for = max(current.duration, 1)
    if current.holder and now < observed.at + held_for:
        return LeaseDecision(LeaseAction.WAIT, None, observed)
    rec = replace(
        current,
        holder=me,
        duration=duration,
        acquire_time=wall,
        renew_time=wall,
        transitions=current.transitions + 1,
    )
    return LeaseDecision(LeaseAction.ACQUIRE, rec, observed)


class LeaseElector:
    """Runs `decide()` against the API server; `run()` blocks (use a thread)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        config: LeaseConfig | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.config = config or LeaseConfig()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._wall = wall
        self._heartbeat = heartbeat
        self._observed: Observation | None = None
        self._renewed_at: float | None = None
        """Our clock when the last successful acquire/renew began (before its read)."""
        self._leading = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self.step_downs = 0
        """Times leadership ended because renewals failed for renew_deadline."""

    @property
    def is_leader(self) -> bool:
        """Leading now: holding the Lease with the last renewal younger than renew_deadline.
        Computed at each call, so a leader whose calls hang stops being one on time."""
        with self._changed:
            return self._leading and not self._expired(self._clock())

    def leadership_left(self) -> float:
        """Seconds of leadership left (0 when not leading)."""
        with self._changed:
            if not self._leading or self._renewed_at is None:
                return 0.0
            return max(0.0, self._renewed_at + self.config.renew_deadline - self._clock())

    @property
    def holder(self) -> str | None:
        """The holder we last saw (ourselves when leading)."""
        if self.is_leader:
            return self.identity
        return self._observed.record.holder if self._observed else None

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns whether we hold the lease afterwards. Never raises."""
        began = self._clock()
        try:
            current = self._read()
        except Exception as exc:
            log.warning(
                "lease %s/%s: read failed: %s", self.namespace, self.name, api_failure(exc).message
            )
            return self._check_deadline()
        now = self._clock()
        d = decide(
            current,
            self.identity,
            now=now,
            wall=self._wall(),
            observed=self._observed,
            config=self.config,
        )
        self._observed = d.observation
        if d.action is LeaseAction.WAIT or d.record is None:
            self._set_leading(False)
            return False
        try:
            written = self._write(d.action, d.record)
        except Exception as exc:
            failure = api_failure(exc)
            if failure.conflict or failure.status == 409:
                log.info("lease %s/%s: lost the race to another replica", self.namespace, self.name)
            else:
                log.warning(
                    "lease %s/%s: %s failed: %s",
                    self.namespace,
                    self.name,
                    d.action.value,
                    failure.message,
                )
            return self._check_deadline()
        self._observed = Observation(written, now)
        if d.action is not LeaseAction.RENEW:
            log.info(
                "lease %s/%s: acquired by %s (transition %d)",
                self.namespace,
                self.name,
                self.identity,
                written.transitions,
            )
        self._set_leading(True, renewed_at=began)
        return self._check_deadline()

    def release(self) -> None:
        """Hand the lease back (only if we hold it), so a standby acquires it at once."""
        if not self.is_leader:
            self._set_leading(False)
            return
        try:
            current = self._read()
            if current is not None and current.holder == self.identity:
                rec = replace(current, holder="", duration=1, renew_time=self._wall())
                self._write(LeaseAction.RENEW, rec)
                log.info("lease %s/%s: released by %s", self.namespace, self.name, self.identity)
        except Exception as exc:
            log.warning(
                "lease %s/%s: release failed: %s",
                self.namespace,
                self.name,
                api_failure(exc).message,
            )
        finally:
            self._set_leading(False)

    def run(self) -> None:
        """Acquire, then renew every retry_period until `stop()`; releases on the way out.
        A watchdog thread steps down at the renew deadline while a call still hangs."""
        watchdog = threading.Thread(target=self._watchdog, name="lease-deadline", daemon=True)
        watchdog.start()
        try:
            while not self._stop.is_set():
                self._beat()
                self.try_acquire_or_renew()
                self._beat()
                self._stop.wait(self.config.retry_period)
        finally:
            self.release()
            with self._changed:
                self._changed.notify_all()
            watchdog.join(self.config.retry_period)

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def wait_for_leadership(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self._leading and not self._expired(self._clock()), timeout
            )

    # ------------------------------------------------------------------ internals

    def _beat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat()

    def _expired(self, now: float) -> bool:
        """Lock held. Past the renew deadline of the last successful renewal?"""
        return self._renewed_at is None or now - self._renewed_at >= self.config.renew_deadline

    def _check_deadline(self) -> bool:
        """A leader that could not renew for renew_deadline stops acting as leader."""
        with self._changed:
            expired = self._leading and self._expired(self._clock())
        if expired:
            self._step_down()
        return self.is_leader

    def _step_down(self) -> None:
        log.warning(
            "lease %s/%s: could not renew for %.1fs; stepping down",
            self.namespace,
            self.name,
            self.config.renew_deadline,
        )
        if self._set_leading(False):
            self.step_downs += 1

    def _watchdog(self) -> None:
        """Step down at the renew deadline even while the run loop is stuck in a call."""
        while not self._stop.is_set():
            with self._changed:
                if self._leading and self._renewed_at is not None:
                    left = self._renewed_at + self.config.renew_deadline - self._clock()
                else:
                    left = self.config.retry_period
                if left > 0:
                    self._changed.wait(min(left, self.config.retry_period))
                    continue
            self._check_deadline()

    def _set_leading(self, leading: bool, *, renewed_at: float | None = None) -> bool:
        """Record the state; returns whether it changed (the callback then ran)."""
        with self._changed:
            if renewed_at is not None:
                self._renewed_at = renewed_at
            changed = leading != self._leading
            self._leading = leading
            self._changed.notify_all()
        if not changed:
            return False
        callback = self._on_started if leading else self._on_stopped
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("leadership callback failed")
        return True

    # The Lease goes through the generic object API on purpose: the body is sent as written,
    # so renewTime keeps Kubernetes' MicroTime layout (always six fraction digits, "Z"). The
    # typed model would re-serialize it with isoformat(), which drops a zero fraction, and
    # the API server's MicroTime parser rejects a time without one.
    _GROUP, _VERSION, _PLURAL = "coordination.k8s.io", "v1", "leases"

    def _read(self) -> LeaseRecord | None:
        try:
            body = call_json(
                self.objects.get_namespaced_custom_object,
                self._GROUP,
                self._VERSION,
                self.namespace,
                self._PLURAL,
                self.name,
                _request_timeout=self.config.retry_period,
            )
        except Exception as exc:
            if api_failure(exc).not_found:
                return None
            raise
        return LeaseRecord.from_lease(body)

    def _write(self, action: LeaseAction, rec: LeaseRecord) -> LeaseRecord:
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": rec.spec(),
        }
        if action is LeaseAction.CREATE:
            written = call_json(
                self.objects.create_namespaced_custom_object,
                self._GROUP,
                self._VERSION,
                self.namespace,
                self._PLURAL,
                body,
                _request_timeout=self.config.retry_period,
            )
        else:
            body["metadata"]["resourceVersion"] = rec.resource_version
            written = call_json(
                self.objects.replace_namespaced_custom_object,
                self._GROUP,
                self._VERSION,
                self.namespace,
                self._PLURAL,
                self.name,
                body,
                _request_timeout=self.config.retry_period,
            )
        return LeaseRecord.from_lease(written)
