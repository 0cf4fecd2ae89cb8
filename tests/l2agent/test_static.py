"""Static YAML loading: multi-document files, `kind: List`, errors naming file and line."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2agent.errors import ConfigError
from l2agent.static import load_yaml_files, load_yaml_text


def test_multi_document_and_list_expanded(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(
        "kind: Node\nmetadata: {name: n1}\n---\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  metadata: {name: n2}\n"
        "- kind: Node\n  metadata: {name: n3}\n"
    )
    b = tmp_path / "b.yaml"
    b.write_text("# only a comment\n")
    objs = load_yaml_files([a, b])
    assert [o["metadata"]["name"] for o in objs] == ["n1", "n2", "n3"]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Node\nmetadata:\n  name: [n1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_files([bad])
    assert info.value.source == str(bad)
    assert info.value.line is not None and info.value.line >= 3
    assert str(bad) in str(info.value)


def test_non_mapping_document_names_its_line() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml:4: .*list"):
        load_yaml_text("kind: Node\nmetadata: {name: a}\n---\n- 1\n- 2\n", "f.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml_files([tmp_path / "nope.yaml"])


def test_tags_are_not_executed() -> None:
    with pytest.raises(ConfigError):
        load_yaml_text("!!python/object/apply:os.system ['true']\n", "evil.yaml")


# Hostile files (issue 11, item 7): each is refused whole, as a ConfigError naming it.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML"),  # flow nesting
        ("".join("  " * i + "- \n" for i in range(3000)), "nesting"),  # block nesting
        ("a: &x [1]\nb: *y\n", "invalid YAML"),  # unknown alias
        ("kind: Node\n\x00\n", "invalid YAML"),
    ],
)
def test_hostile_yaml_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_yaml_files([path])
    assert info.value.source == str(path)


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from l2agent.static import MAX_FILE_BYTES

    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_files([path])


_yamlish = st.text(
    alphabet=st.sampled_from(list("abk:-[]{},&*!|>'\"#\n \t0123456789")), max_size=600
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yamlish)
def test_fuzz_the_loader_raises_only_config_errors_quickly(text: str) -> None:
    gc.disable()  # collector pauses depend on the process's heap, not on the input
    t = time.process_time()
    try:
        load_yaml_text(text, "fuzz.yaml")
    except ConfigError:
        pass
    finally:
        spent = time.process_time() - t
        gc.enable()
    assert spent < 0.05


def test_a_file_of_too_many_objects_is_refused() -> None:
    from l2agent.static import MAX_OBJECTS

    text = "".join(
        f"---\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(MAX_OBJECTS + 1)
    )
    with pytest.raises(ConfigError, match=f"more than {MAX_OBJECTS} documents"):
        load_yaml_text(text, "many.yaml")


def test_too_many_documents_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's 100,000-document file costs a scan of its text, not a parse."""
    import yaml

    def no_parse(*_args: object, **_kw: object) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(yaml, "compose_all", no_parse)
    text = "".join(f"---\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(100_000))
    with pytest.raises(ConfigError, match="documents"):
        load_yaml_text(text, "many.yaml")


def test_a_long_list_is_refused_before_its_items_are_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from l2agent.static import MAX_OBJECTS

    def no_build(*_args: object, **_kw: object) -> None:
        raise AssertionError("the items were built")

    monkeypatch.setattr(yaml.SafeLoader, "construct_document", no_build)
    items = "".join(
        f"- {{kind: ConfigMap, metadata: {{name: c{i}}}}}\n" for i in range(MAX_OBJECTS + 1)
    )
    with pytest.raises(ConfigError, match=f"more than {MAX_OBJECTS} objects"):
        load_yaml_text("apiVersion: v1\nkind: List\nitems:\n" + items, "list.yaml")


def test_the_collector_runs_again_after_a_file(tmp_path: Path) -> None:
    import gc

    with pytest.raises(ConfigError):
        load_yaml_text("a: [\n", "bad.yaml")
    load_yaml_text("kind: Node\nmetadata: {name: n1}\n", "good.yaml")
    assert gc.isenabled()
