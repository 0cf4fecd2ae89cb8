"""What the L2 CRD schemas reject at admission, judged offline: jsonschema for the OpenAPI
part (patterns, enums, bounds), cel-python for the `x-kubernetes-validations` rules, and the
model's own parser as the other side of every comparison (a schema must never refuse what
MetalLB and l2agent accept, and should refuse what l2agent would leave out anyway)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from l2agent.errors import ConfigError
from l2agent.model.crds import parse_address_entry
from l2agent.model.selectors import LabelSelector

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"
DATA = (REPO / "tests" / "data", REPO.parent / "shared" / "seeds")
NS = "metallb-system"


def _schema(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"{name}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


POOL = _schema("ipaddresspools")
L2 = _schema("l2advertisements")
BGP_ADVERTISEMENT = _schema("bgpadvertisements")
BGP_PEER = _schema("bgppeers")
SELECTING = (
    ("IPAddressPool", POOL),
    ("L2Advertisement", L2),
    ("BGPAdvertisement", BGP_ADVERTISEMENT),
    ("BGPPeer", BGP_PEER),
)
ADDRESS = POOL["properties"]["spec"]["properties"]["addresses"]["items"]
ADDRESS_RE = re.compile(ADDRESS["pattern"])


def _valid(schema: dict[str, Any], obj: dict[str, Any]) -> bool:
    return jsonschema.Draft7Validator(schema).is_valid(obj)


def _pool(*addresses: Any, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"addresses": list(addresses), **spec},
    }


def _l2(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": NS},
        "spec": spec,
    }


def _documents() -> Iterator[dict[str, Any]]:
    for root in DATA:
        for path in sorted(root.rglob("*.yaml")) if root.is_dir() else []:
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except yaml.YAMLError:
                continue
            yield from (d for d in docs if isinstance(d, dict))


# ------------------------------------------------------------------ addresses (pattern)


def test_every_address_in_our_data_and_the_seed_guide_is_accepted() -> None:
    entries = [
        entry
        for doc in _documents()
        if doc.get("kind") == "IPAddressPool"
        for entry in (doc.get("spec") or {}).get("addresses") or []
    ]
    assert len(entries) >= 10
    for entry in entries:
        parse_address_entry(entry)  # l2agent accepts it ...
        assert ADDRESS_RE.search(entry), entry  # ... and so does the schema


@pytest.mark.parametrize(
    "entry",
    [
        "192.0.2.0/24",
        "192.0.2.7/32",
        "0.0.0.0/0",
        "192.0.2.10-192.0.2.20",
        "192.0.2.10 - 192.0.2.20",
        "2001:db8::/64",
        "2001:db8::1/128",
        "::/0",
        "2001:db8::10-2001:db8::20",
        "::ffff:192.0.2.1/128",
        "2001:0db8:0000:0000:0000:0000:0000:0001/128",
    ],
)
def test_the_pattern_accepts_what_metallb_accepts(entry: str) -> None:
    parse_address_entry(entry)
    assert ADDRESS_RE.search(entry)


@pytest.mark.parametrize(
    "entry",
    [
        "192.0.2.0",  # no prefix length
        "192.0.2.0/33",
        "192.0.2.256/32",
        "192.0.02.1/32",  # a leading zero (Go and Python refuse it too)
        "2001:db8::/129",
        "192.0.2.1-2001:db8::1",  # two families
        "192.0.2.0/24,",  # a typo that used to refuse the whole configuration
        "192.0.2.0/24 192.0.2.0/25",
        "pool-a",
        "",
    ],
)
def test_the_pattern_rejects_what_cannot_parse(entry: str) -> None:
    with pytest.raises(ConfigError):
        parse_address_entry(entry)
    assert not ADDRESS_RE.search(entry)
    assert not _valid(POOL, _pool(entry))


_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
_v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.tuples(_v4, st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(_v6, st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(_v6, st.integers(0, 128)).map(lambda t: f"{t[0].exploded}/{t[1]}"),
        st.tuples(_v4, _v4).map(lambda t: f"{min(t)}-{max(t)}"),
        st.tuples(_v6, _v6).map(lambda t: f"{min(t)}-{max(t)}"),
    )
)
def test_the_pattern_never_refuses_a_valid_entry(entry: str) -> None:
    parse_address_entry(entry)
    assert ADDRESS_RE.search(entry), entry


def test_other_pool_bounds() -> None:
    assert _valid(POOL, _pool("192.0.2.0/24", serviceAllocation={"priority": 0}))
    assert not _valid(POOL, _pool())  # no address at all
    assert not _valid(POOL, _pool("192.0.2.0/24", serviceAllocation={"priority": -1}))
    assert not _valid(POOL, _pool("192.0.2.0/24", autoAssign="yes"))


# ------------------------------------------------------------------ selectors


def _requirement_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every label selector requirement schema in the CRDs that select (with its path)."""

    def walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(node, dict):
            return
        if path.endswith(".matchExpressions[]"):
            yield path, node
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")

    for kind, schema in SELECTING:
        yield from walk(schema, kind)


def test_operators_are_an_enum_everywhere() -> None:
    found = list(_requirement_schemas())
    # pool: 2 selector lists; L2: 3 lists and the preference; BGP advertisement: 3; peer: 1
    assert len(found) == 10
    for _path, req in found:
        assert req["properties"]["operator"]["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]
    bad = {"nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "Inn"}]}]}
    assert not _valid(L2, _l2(**bad))
    bgp = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "spec": bad}
    assert not _valid(BGP_ADVERTISEMENT, bgp)


def _rules() -> list[tuple[str, str]]:
    return [
        (path, rule["rule"])
        for path, req in _requirement_schemas()
        for rule in req.get("x-kubernetes-validations") or []
    ]


REQUIREMENTS = [
    {"key": "zone", "operator": "In", "values": ["a"]},
    {"key": "zone", "operator": "NotIn", "values": ["a", "b"]},
    {"key": "zone", "operator": "Exists"},
    {"key": "zone", "operator": "DoesNotExist", "values": []},
    {"key": "zone", "operator": "In"},
    {"key": "zone", "operator": "In", "values": []},
    {"key": "zone", "operator": "NotIn"},
    {"key": "zone", "operator": "Exists", "values": ["a"]},
    {"key": "zone", "operator": "DoesNotExist", "values": ["a"]},
]


def _model_accepts(req: dict[str, Any]) -> bool:
    try:
        LabelSelector.from_dict({"matchExpressions": [req]}, where="test")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda r: f"{r['operator']}-{r.get('values')}")
def test_the_values_rule_agrees_with_the_model(req: dict[str, Any]) -> None:
    """The CEL rule, evaluated by cel-python, refuses exactly what the model refuses."""
    celpy = pytest.importorskip("celpy")
    env = celpy.Environment()
    rules = _rules()
    assert len(rules) == 10
    for path, text in rules:
        verdict = env.program(env.compile(text)).evaluate({"self": celpy.json_to_cel(req)})
        assert bool(verdict) is _model_accepts(req), (path, req)


def test_every_rule_sits_under_bounded_lists() -> None:
    """The API server refuses a CRD whose rules' estimated cost is too high; a rule under an
    unbounded list is estimated at the largest request's worth of items. Every list above a
    rule here has maxItems."""

    def walk(node: Any, path: str, unbounded: list[str]) -> Iterator[tuple[str, list[str]]]:
        if not isinstance(node, dict):
            return
        if node.get("x-kubernetes-validations"):
            yield path, unbounded
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, f"{path}.{name}", unbounded)
        if isinstance(node.get("items"), dict):
            more = [] if "maxItems" in node else [path]
            yield from walk(node["items"], f"{path}[]", unbounded + more)

    checked = 0
    for kind, schema in SELECTING:
        for path, unbounded in walk(schema, kind, []):
            assert unbounded == [], f"{path}: no maxItems on {unbounded}"
            checked += 1
    assert checked == 12  # the 10 selector rules and BGPPeer's connectTime and graceful restart


def test_names_that_must_be_unique_are_set_lists() -> None:
    """The model refuses duplicates in these lists; the API server does for `set` lists."""
    spec = L2["properties"]["spec"]["properties"]
    pool_sa = POOL["properties"]["spec"]["properties"]["serviceAllocation"]["properties"]
    for field in (spec["ipAddressPools"], spec["interfaces"], pool_sa["namespaces"]):
        assert field["x-kubernetes-list-type"] == "set"
        assert field["items"]["minLength"] == 1


def test_the_seed_guides_selectors_pass_every_rule() -> None:
    celpy = pytest.importorskip("celpy")
    env = celpy.Environment()
    programs = [env.program(env.compile(text)) for _, text in _rules()]
    reqs = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "matchExpressions" and isinstance(value, list):
                    reqs.extend(v for v in value if isinstance(v, dict))
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    for doc in _documents():
        if doc.get("kind") in ("IPAddressPool", "L2Advertisement"):
            collect(doc.get("spec"))
    assert reqs, "no matchExpressions in the seed guide"
    for req in reqs:
        assert all(p.evaluate({"self": celpy.json_to_cel(req)}) for p in programs), req
