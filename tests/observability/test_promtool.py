"""Alert rules judged by Prometheus' own promtool: syntax, unit tests, and test coverage.

Coverage is checked, not trusted: every alert must have a case where it stays quiet, and a
copy of the rules with every expression neutered must make promtool fail on every alert
(so each one has a case where it must fire).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*-rules.yaml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yaml"))
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (Debian package `prometheus`)"
)


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def _alerts(rule_file: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(rule_file.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _test_file_for(rule_file: Path) -> Path:
    return RULES_DIR / "tests" / f"{rule_file.stem}.test.yaml"


def test_files_pair_up() -> None:
    assert [p.name for p in RULE_FILES] == ["l2agent-rules.yaml", "metallb-rules.yaml"]
    assert sorted(_test_file_for(r) for r in RULE_FILES) == TEST_FILES


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_check_rules(rule_file: Path) -> None:
    result = _promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_has_a_quiet_case(rule_file: Path) -> None:
    doc = yaml.safe_load(_test_file_for(rule_file).read_text())
    quiet = {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    missing = {a["alert"] for a in _alerts(rule_file)} - quiet
    assert not missing, f"alerts with no case where they must stay quiet: {sorted(missing)}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_has_a_firing_case(rule_file: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(rule_file.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = "vector(1) == 0"  # never fires
    (tmp_path / rule_file.name).write_text(yaml.safe_dump(doc))
    (tmp_path / "tests").mkdir()
    test_copy = tmp_path / "tests" / _test_file_for(rule_file).name
    shutil.copy(_test_file_for(rule_file), test_copy)
    result = _promtool("test", "rules", str(test_copy))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    unfired = [a["alert"] for a in _alerts(rule_file) if f"alertname: {a['alert']}," not in output]
    assert not unfired, f"alerts no test expects to fire: {unfired}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_alerts_say_how_bad_and_what(rule_file: Path) -> None:
    for alert in _alerts(rule_file):
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["description"], alert["alert"]


def test_prometheusrule_object_is_current_and_valid(tmp_path: Path) -> None:
    """The operator's PrometheusRule holds exactly the tested groups, and promtool accepts them."""
    result = subprocess.run(
        [sys.executable, str(RULES_DIR / "build_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    obj = yaml.safe_load((RULES_DIR / "prometheusrule.yaml").read_text())
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    assert obj["spec"]["groups"] == groups
    extracted = tmp_path / "extracted.yaml"
    extracted.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}))
    check = _promtool("check", "rules", str(extracted))
    assert check.returncode == 0, check.stdout + check.stderr
