"""Static YAML loading: multi-document files, `kind: List`, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

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
