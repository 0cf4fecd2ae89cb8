"""Leader hand-off when the leader's API connection hangs: how long, and never two leaders.

``python -m bench.lease_handoff [--trials 5] [--out bench/results/lease_handoff.json]``.
Two real `Controller` replicas with the shipped Lease timings (15 s lease, 10 s renew
deadline, 2 s retry period, as client-go and kube-controller-manager use) run against the
fake API server of the tests (`tests/helpers/fake_apiserver.py`, spoken to by the real
`kubernetes` client). Replica A reaches it through a TCP proxy, B directly. Once A leads
and B has seen its Lease, the proxy stops forwarding while keeping every connection open
(accepted, never answered: a hung API server or a dead path as A sees it), and a new
LoadBalancer Service appears. Measured from that moment, per trial:

- ``step_down``: until A no longer acts as leader (its own timer, while its calls hang);
- ``takeover``: until B leads;
- ``allocated``: until the new Service has its IP (written by B);
- ``overlap``: time both acted as leader (sampled every 2 ms; must be 0).

The reference is the bound the Lease protocol itself sets (no peer implementation can be
run here): a standby takes over ``lease_duration`` after it saw the last renewal, sees it up
to one ``retry_period`` late and tries once per ``retry_period``, so ``takeover`` is at most
``lease_duration + 2 * retry_period`` after the last renewal, which the hang follows by up
to a retry period; ``takeover_vs_bound`` is takeover over that bound. The hang falls at a
random point of the renewal cycle (seeded per trial).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.fake_apiserver import FakeApiServer  # noqa: E402
from helpers.tcp_proxy import HangingProxy  # noqa: E402

from bench._stats import summarize  # noqa: E402
from bench.failover import source_version  # noqa: E402
from l2agent.controller.runner import Controller, ControllerConfig  # noqa: E402
from l2agent.kube.convert import new_api_client  # noqa: E402
from l2agent.kube.lease import LeaseConfig  # noqa: E402

RESULTS = REPO / "bench" / "results"
NS = "metallb-system"


def _objects(api: FakeApiServer) -> None:
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "pool", "namespace": NS},
            "spec": {"addresses": ["192.0.2.0/28"]},
        }
    )
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
    }


def _allocated(api: FakeApiServer, name: str) -> bool:
    svc = api.get("Service", "default", name) or {}
    return bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


def _wait(pred: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def trial(lease: LeaseConfig, rng: random.Random) -> dict[str, float | None]:
    """One hang of the leader's connection; times in seconds from the hang."""
    with FakeApiServer() as api:
        _objects(api)
        proxy = HangingProxy(api.port)
        clients = [new_api_client(None, host=proxy.url), new_api_client(None, host=api.url)]
        a, b = (
            Controller(c, ControllerConfig(namespace=NS, identity=who, lease=lease))
            for c, who in zip(clients, ("replica-a", "replica-b"), strict=True)
        )
        a.start()
        try:
            _wait(lambda: a.is_leader and a.ready, 30)
            b.start()
            _wait(lambda: b.ready and b.elector.holder == "replica-a", 30)
            time.sleep(lease.retry_period * (1.0 + rng.random()))  # anywhere in the cycle
            hung = time.monotonic()
            proxy.hang()
            api.put(_service("after-hang"))
            times: dict[str, float | None] = {"step_down": None, "takeover": None}
            allocated = None
            overlap = 0.0
            last = hung
            deadline = hung + lease.lease_duration * 3
            while time.monotonic() < deadline and (allocated is None or times["step_down"] is None):
                now = time.monotonic()
                a_leads, b_leads = a.is_leader, b.is_leader
                if a_leads and b_leads:
                    overlap += now - last
                if not a_leads and times["step_down"] is None:
                    times["step_down"] = now - hung
                if b_leads and times["takeover"] is None:
                    times["takeover"] = now - hung
                if allocated is None and _allocated(api, "after-hang"):
                    allocated = now - hung
                last = now
                time.sleep(0.002)
            return {**times, "allocated": allocated, "overlap": overlap}
        finally:
            proxy.close()
            for c in (a, b):
                c.stop()
            for cl in clients:
                cl.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "lease_handoff.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    lease = LeaseConfig()
    trials = []
    for i in range(args.trials):
        t = trial(lease, random.Random(i))
        trials.append(t)
        print(
            f"trial {i + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items() if v is not None)
        )
    bound = lease.lease_duration + 2 * lease.retry_period

    def summary(key: str) -> dict[str, float | int] | None:
        s = summarize([v for t in trials if (v := t[key]) is not None])
        return s.as_dict() if s else None

    takeover = summary("takeover")
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source_version(),
        "lease": {
            "lease_duration": lease.lease_duration,
            "renew_deadline": lease.renew_deadline,
            "retry_period": lease.retry_period,
        },
        "trials": trials,
        "step_down": summary("step_down"),
        "takeover": takeover,
        "allocated": summary("allocated"),
        "overlap_max": max(t["overlap"] or 0.0 for t in trials),
        "takeover_vs_bound": (
            {"bound": bound, "median": takeover["median"] / bound, "max": takeover["max"] / bound}
            if takeover
            else None
        ),
        "passed": all(t["overlap"] == 0 and t["takeover"] is not None for t in trials),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")

    def text(key: str) -> str:
        s = doc[key]
        return f"median {s['median']:.2f} s, max {s['max']:.2f} s" if s else "never"

    print(
        f"leader's API connection hung ({args.trials} trials): it stepped down after "
        f"{text('step_down')}; the standby took over after {text('takeover')} (bound "
        f"{bound:.0f} s); the new Service had its IP after {text('allocated')}; both "
        f"leading for {doc['overlap_max']:.3f} s at most"
    )
    print(f"report: {args.out}")
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
