"""The reloader's pure rules: frr-reload.py --test output, the graceful-restart quirk, backoff."""

from __future__ import annotations

import pytest

from l2agent.bgp.reload_outcome import (
    ConfigDiff,
    ReloadResult,
    configured_neighbors,
    crash_summary,
    is_crash,
    is_graceful_restart_quirk,
    needed_daemons,
    parse_test_output,
    redact,
    retry_delay,
    sessions_to_reset,
    without_announcements,
    without_new_routers,
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
        ReloadResult.APPLIED, ReloadResult.APPLIED_AFTER_RESET, ReloadResult.UNCHANGED,
        ReloadResult.APPLIED_IN_STEPS}  # fmt: skip
    assert {r for r in ReloadResult if r.retried} == {
        ReloadResult.FAILED, ReloadResult.UNAVAILABLE, ReloadResult.TIMEOUT,
        ReloadResult.CRASHED}  # fmt: skip


# frr-reload.py 8.4.4 --test, recorded: router-b (192.0.2.2) moved into VRF red in one change.
CRASH = """\
2026-11-29 11:27:41,756  INFO: Loading Config object from file new.conf
Traceback (most recent call last):
  File "/usr/lib/frr/frr-reload.py", line 1995, in <module>
    (lines_to_add, lines_to_del) = compare_context_objects(newconf, running)
  File "/usr/lib/frr/frr-reload.py", line 1775, in compare_context_objects
    (lines_to_add, lines_to_del) = ignore_delete_re_add_lines(
  File "/usr/lib/frr/frr-reload.py", line 1224, in ignore_delete_re_add_lines
    if rm_match:
       ^^^^^^^^
UnboundLocalError: cannot access local variable 'rm_match' where it is not associated with a value
"""
# What frr-reload.py prints when FRR refuses a line: an error, exit 1, no traceback.
REFUSAL = """\
2026-11-29 11:30:02,101 ERROR: vtysh failed to process new configuration: vtysh (mark file) \
exited with status 2:
b'line 3: % Unknown command[25]:  neighbor nonsense remote-as x'
"""
RUNNING = """\
frr version 8.4.4
hostname node1
router bgp 64512
 neighbor 192.0.2.1 remote-as 64513
 neighbor 192.0.2.2 remote-as 64514
exit
!
end
"""
MOVED = """\
route-map 192.0.2.2-red-in deny 20
exit
!
router bgp 64512
 neighbor 192.0.2.1 remote-as 64513
 address-family ipv4 unicast
  network 198.51.100.10/32
 exit-address-family
exit
!
router bgp 64512 vrf red
 neighbor 192.0.2.2 remote-as 64514
 address-family ipv4 unicast
  neighbor 192.0.2.2 route-map 192.0.2.2-red-in in
 exit-address-family
exit
!
"""


def test_a_traceback_is_a_crash_and_a_refusal_is_not() -> None:
    assert is_crash(CRASH) and not is_crash(REFUSAL)
    assert crash_summary(CRASH).startswith("UnboundLocalError: cannot access local variable")


def test_the_first_step_leaves_out_only_routers_frr_does_not_run() -> None:
    first = without_new_routers(MOVED, RUNNING)
    assert "vrf red" not in first and "192.0.2.2 remote-as" not in first
    assert "route-map 192.0.2.2-red-in deny 20" in first  # everything else goes first
    assert "router bgp 64512\n neighbor 192.0.2.1" in first and first.endswith("exit\n!\n!\n")
    # once FRR runs the VRF's router the whole text is the second step, and a text that
    # adds no router cannot be split (the crash has another cause)
    assert without_new_routers(MOVED, RUNNING + "router bgp 64512 vrf red\n") == MOVED
    assert without_new_routers(RUNNING, RUNNING) == RUNNING


def test_needed_daemons_follow_bfd_lines() -> None:
    assert needed_daemons(CONFIG) == ("zebra", "bgpd")
    assert needed_daemons(CONFIG + " neighbor 192.0.2.1 bfd\n") == ("zebra", "bgpd", "bfdd")
    assert needed_daemons(CONFIG + "bfd\n profile fast\n") == ("zebra", "bgpd", "bfdd")
    assert needed_daemons("neighbor 192.0.2.1 bfdx\n") == ("zebra", "bgpd")
