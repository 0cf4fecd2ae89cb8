"""FrrReloader against a real FRR on a lab node, BIRD on the router: FRR and BIRD judge.

One node, one router; the reloader runs in the test process (vtysh reaches FRR through the
unix sockets in the node's FRR directory, as the speaker reaches its sidecar's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2agent.bgp.frr_poll import FrrStatePoller
from l2agent.bgp.reload import FrrReloader
from l2agent.bgp.reload_outcome import ReloadOutcome, ReloadResult
from l2agent.lab.bgp import BgpLab
from l2agent.lab.bgp_cluster import LabPeer, LabService, cluster_objects, frr_conf
from l2agent.lab.frr import frr_missing
from l2agent.lab.netns import wait_until
from l2agent.lab.routers import bird_missing
from l2agent.lab.topology import bgp_vip, router_address

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_missing = frr_missing() or bird_missing()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

V4 = bgp_vip(0, 4)
V4B = bgp_vip(1, 4)
ROUTER4 = str(router_address(1, 4))
NODE4 = "192.0.2.11"


def node_config(ips: tuple[object, ...], graceful_restart: bool = False) -> str:
    """node1's frr.conf for one BGPPeer (router1, IPv4) and one Service per IP."""
    peer = LabPeer("router1", router_address(1, 4), 64500, 64512, graceful_restart=graceful_restart)
    services = [LabService(f"svc{i}", (ip,)) for i, ip in enumerate(ips)]  # type: ignore[arg-type]
    return frr_conf(cluster_objects(["node1"], [peer], services), "node1")


@pytest.fixture(scope="module")
def lab() -> Iterator[BgpLab]:
    with BgpLab(1, vips=[V4, V4B]) as built:
        built.start_bird(families=(4,))
        assert built.frr is not None
        built.frr.start("node1")
        yield built


@pytest.fixture
def reloader(lab: BgpLab) -> Iterator[tuple[FrrReloader, list[ReloadOutcome]]]:
    assert lab.frr is not None
    seen: list[ReloadOutcome] = []
    d = lab.frr.dir("node1")
    yield (
        FrrReloader(d, d, debounce=0.05, retry_base=0.2, retry_cap=1.0, on_outcome=seen.append),
        seen,
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_apply_then_unchanged_then_invalid_keeps_the_last_good(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, seen = reloader
    good = node_config((V4,))

    async def scenario() -> list[ReloadOutcome]:
        first = await rl.apply(good)
        same = await rl.apply(good)
        bad = await rl.apply(good + "router bgp 64512\n  neighbor nonsense remote-as x\n")
        await rl.close()
        return [first, same, bad]

    first, same, bad = run(scenario())
    # A fresh FRR: the first config brings the graceful-restart quirk (rc 1, yet applied).
    assert first.result in (ReloadResult.APPLIED, ReloadResult.APPLIED_AFTER_RESET), first
    assert same.result is ReloadResult.UNCHANGED
    assert bad.result is ReloadResult.INVALID and "Unknown command" in bad.detail
    assert lab.bird is not None and lab.bird.wait_established(["node1_v4"], 20)
    assert wait_until(lambda: lab.nexthops(f"{V4}/32") == {NODE4}, 10)
    # FRR was never touched by the bad text: the file on disk is the good one.
    assert lab.frr is not None
    assert (lab.frr.dir("node1") / "frr.conf").read_text() == good
    assert [o.result for o in seen] == [first.result, same.result, bad.result]


def test_a_burst_of_changes_costs_one_reload(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, seen = reloader
    texts = [node_config((V4, V4B) if i % 2 else (V4,)) for i in range(6)]

    async def scenario() -> list[ReloadOutcome]:
        outcomes = await asyncio.gather(*(rl.apply(t) for t in texts))
        await rl.close()
        return list(outcomes)

    outcomes = run(scenario())
    assert len(seen) == 1, seen  # one attempt for the whole burst, the newest text
    assert all(o == seen[0] for o in outcomes) and seen[0].generation == len(texts)
    assert seen[0].result.ok
    assert wait_until(lambda: lab.nexthops(f"{V4B}/32") == {NODE4}, 10), (
        "the last text announces V4B"
    )


def test_debounce_is_leading_edge_a_lone_change_goes_at_once(lab: BgpLab) -> None:
    assert lab.frr is not None
    d = lab.frr.dir("node1")
    rl = FrrReloader(d, d, debounce=2.0)

    async def scenario() -> tuple[float, float, ReloadOutcome, ReloadOutcome]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        first = await rl.apply(node_config((V4,)))
        t1 = loop.time()
        second = await rl.apply(node_config((V4, V4B)))
        t2 = loop.time()
        await rl.close()
        return t1 - t0, t2 - t1, first, second

    lone, follow, first, second = run(scenario())
    assert first.result.ok and second.result.ok
    assert lone < first.seconds + 1.0, "the first change waited for the debounce"
    assert follow >= 2.0, "a change right after a reload did not wait for the debounce"


def test_graceful_restart_change_is_applied_and_the_session_reset(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, _seen = reloader
    assert lab.frr is not None and lab.bird is not None

    def caps() -> str:
        doc = lab.frr.show_json("node1", f"show bgp neighbors {ROUTER4} json")  # type: ignore[union-attr]
        return json.dumps(doc[ROUTER4].get("neighborCapabilities", {}).get("gracefulRestart"))

    async def scenario() -> tuple[ReloadOutcome, ReloadOutcome]:
        off = await rl.apply(node_config((V4,)))
        assert lab.frr is not None and lab.frr.wait_established("node1", [ROUTER4], 20)
        on = await rl.apply(node_config((V4,), graceful_restart=True))
        await rl.close()
        return off, on

    off, on = run(scenario())
    assert off.result.ok
    # frr-reload.py exits 1 on this change although it applied it (MetalLB PR #2386).
    assert on.result is ReloadResult.APPLIED_AFTER_RESET, on
    assert on.reset_sessions == (ROUTER4,)
    assert "neighbor 192.0.2.1 graceful-restart" in lab.frr.vtysh("node1", "show running-config")
    # The reset session came back with the capability negotiated (FRR's own account) ...
    assert lab.frr.wait_established("node1", [ROUTER4], 20)
    assert wait_until(lambda: "advertisedAndReceived" in caps(), 10), caps()
    # ... and the router has the route again.
    assert wait_until(lambda: lab.nexthops(f"{V4}/32") == {NODE4}, 10)


def test_withdraw_all_keeps_the_session_and_removes_the_route(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, _seen = reloader
    assert lab.frr is not None and lab.bird is not None

    async def scenario() -> tuple[ReloadOutcome, ReloadOutcome]:
        on = await rl.apply(node_config((V4,)))
        assert wait_until(lambda: lab.nexthops(f"{V4}/32") == {NODE4}, 20)
        off = await rl.withdraw_all()
        await rl.close()
        return on, off

    on, off = run(scenario())
    assert on.result.ok and off.result.ok
    assert wait_until(lambda: not lab.nexthops(f"{V4}/32"), 5), (
        "the router still routes to the node"
    )
    assert lab.bird.protocol_states()["node1_v4"] == "Established"


def test_frr_down_is_unavailable_and_retried_until_it_is_back(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]], tmp_path: Path
) -> None:
    rl, seen = reloader
    assert lab.frr is not None
    lab.frr.stop("node1")

    async def scenario() -> ReloadOutcome:
        first = await rl.apply(node_config((V4,)))
        await asyncio.sleep(0.5)  # a retry or two fail meanwhile
        await asyncio.to_thread(lab.frr.start, "node1")  # type: ignore[union-attr]
        for _ in range(100):
            if seen[-1].result.ok:
                break
            await asyncio.sleep(0.1)
        await rl.close()
        return first

    first = run(scenario())
    assert first.result is ReloadResult.UNAVAILABLE
    assert seen[-1].result.ok, seen
    assert all(o.generation == 1 for o in seen) and seen[-1].attempt >= 2
    assert wait_until(lambda: lab.nexthops(f"{V4}/32") == {NODE4}, 20)


def test_a_reload_frr_refuses_restores_the_last_good(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, _seen = reloader
    assert lab.frr is not None
    good = node_config((V4,))
    # Valid syntax (the offline check passes) that bgpd refuses: activating an unknown peer.
    bad = good + "router bgp 64512\n address-family ipv4 unicast\n  neighbor 192.0.2.99 activate\n"

    async def scenario() -> tuple[ReloadOutcome, ReloadOutcome]:
        ok = await rl.apply(good)
        failed = await rl.apply(bad)
        await rl.close()
        return ok, failed

    ok, failed = run(scenario())
    assert ok.result.ok
    assert failed.result is ReloadResult.FAILED, failed
    assert (lab.frr.dir("node1") / "frr.conf").read_text() == good
    assert rl.last_good == good and not rl.in_sync
    running = lab.frr.vtysh("node1", "show running-config")
    assert "192.0.2.99" not in running and "network 203.0.113.10/32" in running


def test_a_step_over_its_bound_is_killed_and_reported(lab: BgpLab) -> None:
    assert lab.frr is not None
    d = lab.frr.dir("node1")
    seen: list[ReloadOutcome] = []
    rl = FrrReloader(d, d, debounce=0.0, step_timeout=0.001, retry_base=5, on_outcome=seen.append)

    async def scenario() -> ReloadOutcome:
        out = await rl.apply(node_config((V4, V4B)))
        await rl.close()
        return out

    out = run(scenario())
    assert out.result is ReloadResult.TIMEOUT and "killed" in out.detail


def test_an_frr_that_restarted_empty_gets_its_config_again(
    lab: BgpLab, reloader: tuple[FrrReloader, list[ReloadOutcome]]
) -> None:
    rl, seen = reloader
    assert lab.frr is not None
    d = lab.frr.dir("node1")

    async def scenario() -> tuple[bool, bool]:
        first = await rl.apply(node_config((V4,)))
        assert first.result.ok
        poller = FrrStatePoller(d, config_dir=d, interval=0.0)
        healthy = rl.check(await poller.poll())
        # The sidecar restarts: FRR comes back with no configuration at all.
        await asyncio.to_thread(lab.frr.stop, "node1")  # type: ignore[union-attr]
        await asyncio.to_thread(lab.frr.start, "node1")  # type: ignore[union-attr]
        lost = rl.check(await poller.poll())
        for _ in range(100):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.1)
        await rl.close()
        return healthy, lost

    healthy, lost = run(scenario())
    assert not healthy and lost
    assert len(seen) == 2 and seen[1].result.ok, seen
    assert wait_until(lambda: lab.nexthops(f"{V4}/32") == {NODE4}, 20)
