"""One-minute soak in CI: 10 % loss on every link and a busy CPU never move an IP.

The full 10-minute version is `make soak` (bench/soak.py); both count the speakers' own
l2agent_ownership_changes counters, read from /metrics before and after.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.mark.skipif(
    shutil.which("iptables") is None or shutil.which("ip6tables") is None,
    reason="needs iptables/ip6tables for the random loss (scripts/install-deps.sh installs them)",
)
def test_one_minute_soak_moves_no_ip(tmp_path: Path) -> None:
    from bench.soak import run_soak

    report = run_soak(1.0, loss=0.1, workdir=tmp_path)
    print(report)
    assert report["minutes"] >= 0.99
    # The loss really happened (the kernel's DROP rule counters), and the owners after the
    # soak are the ones elected before it.
    assert all(node["dropped"] > 0 for node in report["per_node"].values()), report["per_node"]
    assert report["owners_after"] == {ip: [n] for ip, n in report["owners_before"].items()}
    assert report["ownership_changes"] == 0, report["per_node"]
