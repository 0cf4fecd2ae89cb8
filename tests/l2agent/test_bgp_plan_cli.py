"""`l2agent plan` in BGP mode: sessions and per-service announcements, `--node N --frr`."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import jsonschema

from l2agent import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "bgp"
SEEDS = Path(__file__).resolve().parents[1] / "data" / "seeds"

ANNOUNCEMENT = {
    "type": "object",
    "required": ["peer", "prefix", "communities", "local_pref", "local_pref_sent"],
    "properties": {
        "peer": {"type": "string"},
        "prefix": {"type": "string"},
        "communities": {"type": "array", "items": {"type": "string"}},
        "local_pref": {"type": ["integer", "null"]},
        "local_pref_sent": {"type": "boolean"},
    },
}
BGP_SCHEMA = {
    "type": "object",
    "required": ["bgp"],
    "properties": {
        "bgp": {
            "type": "object",
            "required": ["sessions", "services"],
            "properties": {
                "sessions": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "services": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["namespace", "name", "announcing", "not_announcing"],
                        "properties": {
                            "announcing": {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": ANNOUNCEMENT},
                            },
                            "not_announcing": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }
    },
}


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["plan", *argv])
    return rc, out.getvalue(), err.getvalue()


def test_table_shows_who_announces_what_to_whom() -> None:
    rc, out, _ = _run("--config", str(DATA / "etp-local.yaml"))
    assert rc == 0
    assert "default/local    198.51.100.10  pool  -      -           BGP from 1 node(s)" in out
    section = out[out.index("BGP sessions") :]
    assert section.splitlines() == [
        "BGP sessions (BGPPeer nodeSelectors):",
        "  node1: router",
        "  node2: router",
        "",
        "BGP announcements (every eligible node announces):",
        "  default/cluster (198.51.100.11, pool pool):",
        "    node1 -> router: 198.51.100.11/32",
        "    node2 -> router: 198.51.100.11/32",
        "  default/local (198.51.100.10, pool pool):",
        "    node1 -> router: 198.51.100.10/32",
        "    node2: noLocalEndpoint",
    ]


def test_table_shows_attributes_and_what_ebgp_does_not_carry() -> None:
    _, out, _ = _run("--config", str(DATA / "ibgp-localpref.yaml"))
    assert "node1 -> ebgp: 198.51.100.10/32 localPref 300 (eBGP: not sent)" in out
    assert "node1 -> ibgp: 198.51.100.10/32 localPref 300\n" in out
    _, out, _ = _run("--config", str(DATA / "seed-bgp-advanced.yaml"))
    assert "worker-1 -> core-router-primary: 10.0.3.201/32 communities 65000:100,no-export" in out
    assert "worker-3: noPeers" in out


def test_json_carries_the_bgp_explanation() -> None:
    rc, out, _ = _run("--config", str(DATA / "communities.yaml"), "--output", "json")
    assert rc == 0
    doc = json.loads(out)
    jsonschema.validate(doc, BGP_SCHEMA)
    assert doc["bgp"]["sessions"] == {"node1": ["router"]}
    web = next(s for s in doc["bgp"]["services"] if s["name"] == "web")
    (a,) = web["announcing"]["node1"]
    assert a["prefix"] == "198.51.100.10/32" and a["local_pref"] == 50 and a["local_pref_sent"]
    assert a["communities"] == [
        "large:64512:1:2",
        "large:4200000000:7:8",
        "64512:100",
        "64512:200",
        "65535:65281",
    ]


def test_frr_prints_the_golden_with_passwords_redacted_unless_asked() -> None:
    golden = (DATA / "passwords.node1.frr.conf").read_text()
    rc, out, err = _run("--config", str(DATA / "passwords.yaml"), "--node", "node1", "--frr")
    assert rc == 0 and err == ""
    assert "literal-pw" not in out and out.count("password <redacted>") == 2
    rc, out, _ = _run(
        "--config", str(DATA / "passwords.yaml"), "--node", "node1", "--frr", "--show-passwords"
    )
    assert rc == 0 and out == golden


def test_frr_reports_what_waits_and_needs_a_node() -> None:
    rc, out, err = _run("--config", str(SEEDS / "02-bgp-pool.yaml"), "--node", "n", "--frr")
    assert rc == 0 and "router bgp" not in out
    assert "waiting: BGPPeer router-1: references non existing BFDProfile default-bfd" in err
    rc, _, err = _run("--config", str(DATA / "passwords.yaml"), "--frr")
    assert rc == 2 and "--frr needs --node" in err
