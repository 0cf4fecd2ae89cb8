"""The reloader's pure rules: frr-reload.py --test output, the graceful-restart quirk, backoff."""

from __future__ import annotations

import pytest

from l2agent.bgp.reload_outcome import (
    ConfigDiff,
    ReloadResult,
    configured_neighbors,
    is_graceful_restart_quirk,
    needed_daemons,
    parse_test_output,
    redact,
    retry_delay,
    sessions_to_reset,
    without_announcements,
)

# frr-reload.py --test (FRR 8.4.4) on a fresh bgpd, as printed on stdout.
FRESH = """
Lines To Delete
===============
no hostname vm
ip forwarding

Lines To Add
============
hostname node1
router bgp 64512
 bgp graceful-restart-disable
router bgp 64512
 neighbor 192.0.2.1 remote-as 64500
router bgp 64512
 address-family ipv4 unicast
  network 203.0.113.10/32
"""

# Turning graceful restart on for an existing neighbor.
GR_ON = """
Lines To Delete
===============
router bgp 64512
 no bgp graceful-restart-disable

Lines To Add
============
router bgp 64512
 neighbor 192.0.2.1 graceful-restart
"""

CONFIG = """router bgp 64512
  bgp graceful-restart-disable
  neighbor 192.0.2.1 remote-as 64500
  neighbor 2001:db8::1 remote-as 64500
  neighbor 192.0.2.1 password s3cret
  address-family ipv4 unicast
    network 203.0.113.10/32
    network 203.0.113.11/32
  exit-address-family
  address-family ipv6 unicast
    network 2001:db8:113::10/128
  exit-address-family
"""


def test_parse_keeps_each_line_with_its_context() -> None:
    diff = parse_test_output(FRESH)
    assert ("no hostname vm",) in diff.to_delete and ("ip forwarding",) in diff.to_delete
    assert ("router bgp 64512", "bgp graceful-restart-disable") in diff.to_add
    assert (
        "router bgp 64512",
        "address-family ipv4 unicast",
        "network 203.0.113.10/32",
    ) in diff.to_add
    assert not diff.empty and parse_test_output("").empty


def test_new_neighbors_are_not_reset_by_a_router_wide_change() -> None:
    assert sessions_to_reset(parse_test_output(FRESH), CONFIG) == {"2001:db8::1"}


def test_neighbor_graceful_restart_change_resets_every_existing_session_for_router_wide() -> None:
    # The router-wide line went away (GR_ON deletes it): every configured session resets.
    assert sessions_to_reset(parse_test_output(GR_ON), CONFIG) == {"192.0.2.1", "2001:db8::1"}


def test_only_the_neighbor_whose_setting_changed_is_reset() -> None:
    diff = ConfigDiff(to_add=(("router bgp 64512", "neighbor 2001:db8::1 graceful-restart"),))
    assert sessions_to_reset(diff, CONFIG) == {"2001:db8::1"}
    preserve = ConfigDiff(to_add=(("router bgp 64512", "bgp graceful-restart preserve-fw-state"),))
    assert sessions_to_reset(preserve, CONFIG) == frozenset()
    removed = ConfigDiff(
        to_delete=(("router bgp 64512", "no neighbor 192.0.2.9 graceful-restart"),)
    )
    assert sessions_to_reset(removed, CONFIG) == frozenset()  # no longer configured


def test_quirk_detection() -> None:
    out = (
        "Graceful restart configuration changed, reset all peers to take effect\n"
        "% The Graceful Restart command used is not valid at this moment.\n"
        "line 22: Failure to communicate[13] to bgpd, line:  bgp graceful-restart-disable\n"
    )
    assert is_graceful_restart_quirk(out)
    assert not is_graceful_restart_quirk("line 3: % Unknown command[25]:  neighbor foo")


def test_withdrawn_config_keeps_sessions_and_drops_every_network() -> None:
    out = without_announcements(CONFIG)
    assert "network" not in out
    assert configured_neighbors(out) == configured_neighbors(CONFIG) == {"192.0.2.1", "2001:db8::1"}
    assert out.endswith("\n") and "address-family ipv6 unicast" in out


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry_delay(10_000, base=0.5, cap=3) == 3
    with pytest.raises(ValueError):
        retry_delay(0)


def test_redact_hides_passwords_and_bounds_length() -> None:
    assert "s3cret" not in redact(CONFIG) and "password <redacted>" in redact(CONFIG)
    long = redact("x" * 10_000, limit=100)
    assert len(long) == 103 and long.startswith("...")


def test_result_classes() -> None:
    assert {r for r in ReloadResult if r.ok} == {
        ReloadResult.APPLIED, ReloadResult.APPLIED_AFTER_RESET, ReloadResult.UNCHANGED}  # fmt: skip
    assert {r for r in ReloadResult if r.retried} == {
        ReloadResult.FAILED, ReloadResult.UNAVAILABLE, ReloadResult.TIMEOUT}  # fmt: skip


def test_needed_daemons_follow_bfd_lines() -> None:
    assert needed_daemons(CONFIG) == ("zebra", "bgpd")
    assert needed_daemons(CONFIG + " neighbor 192.0.2.1 bfd\n") == ("zebra", "bgpd", "bfdd")
    assert needed_daemons(CONFIG + "bfd\n profile fast\n") == ("zebra", "bgpd", "bfdd")
    assert needed_daemons("neighbor 192.0.2.1 bfdx\n") == ("zebra", "bgpd")
