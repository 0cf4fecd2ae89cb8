"""Every YAML document of the seed guide loads: L2 and BGP kinds accepted, none rejected.

Runs on the committed copy in tests/data/seeds/ always, and on the shared seed folder
(`<repo>/../shared/seeds/manifests`) when it exists, so a changed guide is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from l2agent.allocator import allocate
from l2agent.model import BGP_KINDS, build_state
from l2agent.model.problems import ProblemReason
from l2agent.plan import plan
from l2agent.static import load_yaml_files

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "tests" / "data" / "seeds"
SHARED = REPO.parent / "shared" / "seeds" / "manifests"

L2_KINDS = {"IPAddressPool", "L2Advertisement", "Service"}


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml"))


def _check_group(path: Path) -> None:
    objects = load_yaml_files([path])
    assert objects, f"{path.name} has no documents"
    result = build_state(objects)
    # the only objects left out are BGPPeers waiting for what another file (or `kubectl
    # create secret`) provides: a Secret or a BFDProfile
    waiting = [p for p in result.problems if p.reason is ProblemReason.MISSING_REFERENCE]
    assert result.problems == tuple(waiting), f"{path.name}: {result.problems}"
    assert {p.kind for p in waiting} <= {"BGPPeer"}
    kinds = [o["kind"] for o in objects]
    assert set(kinds) <= L2_KINDS | BGP_KINDS, f"{path.name}: unexpected kinds {set(kinds)}"
    st = result.state
    assert len(st.bgp_peers) + len(waiting) == kinds.count("BGPPeer")
    assert len(st.bgp_advertisements) == kinds.count("BGPAdvertisement")
    assert len(st.bfd_profiles) == kinds.count("BFDProfile")
    assert len(st.communities) == kinds.count("Community")
    assert len(st.pools) == kinds.count("IPAddressPool")
    assert len(st.advertisements) == kinds.count("L2Advertisement")
    assert len(st.services) == kinds.count("Service")
    # planning never crashes on any group, whatever class the services ask for
    for lb_class in {None, *(s.load_balancer_class for s in st.services)}:
        plan(st, ["node-a", "node-b"], "node-a", lb_class=lb_class)


@pytest.mark.parametrize("path", _files(COMMITTED), ids=lambda p: p.name)
def test_committed_seed_group_loads(path: Path) -> None:
    _check_group(path)


def test_committed_copy_is_complete() -> None:
    assert len(_files(COMMITTED)) == 7


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared seed folder {SHARED} is absent")
def test_shared_seed_guide_loads_and_matches_committed_copy() -> None:
    shared = _files(SHARED)
    assert shared
    for path in shared:
        _check_group(path)
    assert {p.name for p in shared} == {p.name for p in _files(COMMITTED)}


def test_layer2_pool_group_as_written() -> None:
    st = build_state(load_yaml_files([COMMITTED / "01-layer2-pool.yaml"])).state
    (pool,) = st.pools
    assert pool.avoid_buggy_ips and pool.auto_assign
    assert pool.size() == 51
    (ad,) = st.advertisements
    assert ad.applies_to_pool(pool)
    assert ad.selects_node({"kubernetes.io/os": "linux"}) and not ad.selects_node({})


def test_lb_class_groups_allocate_from_their_pinned_pools() -> None:
    objects = load_yaml_files(
        [COMMITTED / "05-lb-classes.yaml", COMMITTED / "06-multi-tier-services.yaml"]
    )
    result = build_state(objects)
    assert result.ok
    external = allocate(result.state, lb_class="metallb.io/external")
    web = external["default/web-frontend-lb"]
    assert getattr(web, "pool", None) == "external-pool"
    assert [str(i) for i in getattr(web, "ips", ())] == ["192.168.1.100"]
    internal = allocate(result.state, lb_class="metallb.io/internal")
    assert {k: getattr(v, "pool", None) for k, v in internal.results.items()} == {
        "default/api-gateway-lb": "internal-pool",
        "default/internal-app": "internal-pool",
    }


def test_bgp_peers_wait_for_the_secrets_the_guide_creates_with_kubectl() -> None:
    result = build_state(load_yaml_files([COMMITTED / "03-bgp-advanced.yaml"]))
    assert [(p.name, p.reason, p.message) for p in result.problems] == [
        (
            "core-router-primary",
            ProblemReason.MISSING_REFERENCE,
            "BGPPeer core-router-primary: passwordSecret metallb-system/bgp-auth-primary not "
            "found; peer not used yet",
        ),
        (
            "core-router-secondary",
            ProblemReason.MISSING_REFERENCE,
            "BGPPeer core-router-secondary: passwordSecret metallb-system/bgp-auth-secondary "
            "not found; peer not used yet",
        ),
    ]
    assert {p.reason for p in result.stale} == {ProblemReason.MISSING_REFERENCE}
    (profile,) = result.state.bfd_profiles
    assert profile.echo_mode and profile.minimum_ttl == 254
    (aliases,) = result.state.communities
    assert [(a, str(v)) for a, v in aliases.aliases] == [
        ("high-priority", "65000:100"),
        ("backup-path", "65000:200"),
        ("no-export", "65535:65281"),
    ]
