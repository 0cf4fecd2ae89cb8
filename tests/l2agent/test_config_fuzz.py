"""Fuzzing the whole configuration path a speaker runs on a file change: the seed guide's
objects, mutated at random places (values of any YAML type, keys gone, wrong kinds), dumped
to YAML, loaded (`load_yaml_text`) and built (`build_state`).

Properties (issue 11): loading raises only `ConfigError`, building never raises (a bad
object is a problem on that object), and neither call takes more than a few milliseconds
of CPU for a file of this size (the seed guide's 19 objects build in about 1 ms).
"""

from __future__ import annotations

import copy
import gc
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2agent.errors import ConfigError
from l2agent.model.snapshot import BuildResult, build_state
from l2agent.static import load_yaml_files, load_yaml_text

SEEDS = load_yaml_files(
    sorted((Path(__file__).resolve().parents[1] / "data" / "seeds").glob("*.yaml"))
)
CALL_CPU_LIMIT = 0.02
"""CPU bound on one load or build of a seed-sized file (typically 1-3 ms; generous for a
loaded 2-core CI machine)."""

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["192.0.2.0/24", "2001:db8::/126", "192.0.2.1-192.0.2.0", "0.0.0.0/0",
                     "::/0", "Local", "Cluster", "LoadBalancer", "IPAddressPool", "List",
                     "metallb.io/v1beta1", "a" * 300, "-1", "65536"]),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested document (keys of mappings, indexes of lists)."""
    out = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated_seeds(draw: st.DrawFn) -> list[Any]:
    docs: list[Any] = copy.deepcopy(SEEDS)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(docs) - 1))
        paths = _paths(docs[i])
        path = draw(st.sampled_from(paths))
        if not path:
            docs[i] = draw(_values)
            continue
        parent = docs[i]
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_values)
    if draw(st.booleans()):
        docs.append({"apiVersion": "v1", "kind": "List", "items": draw(st.lists(_values))})
    return docs


def _cpu(fn: Any, *args: Any) -> tuple[Any, float]:
    gc.disable()  # collector pauses depend on the process's heap, not on the input
    t = time.process_time()
    try:
        return fn(*args), time.process_time() - t
    finally:
        gc.enable()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_seeds())
def test_mutated_seed_objects_cost_only_themselves_quickly(docs: list[Any]) -> None:
    text = yaml.safe_dump_all(docs, sort_keys=False)
    spent = []
    try:
        objects, cost = _cpu(load_yaml_text, text, "fuzz.yaml")
        spent.append(cost)
    except ConfigError:
        return
    result, cost = _cpu(build_state, objects)
    spent.append(cost)
    assert isinstance(result, BuildResult)
    # A second build of the same input costs the same: keep the cheaper of two tries so a
    # neighbour's burst on a shared machine is not blamed on the input.
    if cost >= CALL_CPU_LIMIT:
        spent[-1] = min(cost, _cpu(build_state, objects)[1])
    assert max(spent) < CALL_CPU_LIMIT, f"{spent} for {len(text)} bytes"


def test_the_unmutated_seeds_build_cleanly_enough() -> None:
    """The fuzz starts from objects that mostly build (the guide's files are alternatives:
    some of their pools overlap, and a BGPPeer names a Secret the guide does not hold)."""
    result = build_state(SEEDS)
    assert len(result.state.pools) >= 3 and result.state.services
    assert len(result.problems) < len(SEEDS) // 2
