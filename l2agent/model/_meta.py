"""Shared reading of `metadata` and small typed getters for the model's `from_dict`s."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from l2agent.errors import ConfigError

EMPTY: Mapping[str, str] = MappingProxyType({})


def ref(obj: Mapping[str, Any]) -> str:
    """`Kind ns/name` (or `Kind name`) for messages, tolerant of broken objects."""
    kind = obj.get("kind", "?") if isinstance(obj, Mapping) else "?"
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") or "<unnamed>"
    ns = meta.get("namespace")
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def metadata(
    obj: Mapping[str, Any], *, default_namespace: str = ""
) -> tuple[str, str, Mapping[str, str], Mapping[str, str]]:
    """(name, namespace, labels, annotations); a missing name is a `ConfigError`."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ConfigError(f"{ref(obj)}: metadata is missing")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{ref(obj)}: metadata.name is missing")
    ns = meta.get("namespace") or default_namespace
    if not isinstance(ns, str):
        raise ConfigError(f"{ref(obj)}: metadata.namespace must be a string")
    return (
        name,
        ns,
        string_map(meta.get("labels"), f"{ref(obj)}: labels"),
        string_map(meta.get("annotations"), f"{ref(obj)}: annotations"),
    )


def string_map(raw: Any, where: str) -> Mapping[str, str]:
    """A read-only str->str mapping; YAML scalars are turned into their text."""
    if raw is None:
        return EMPTY
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[str(k)] = "" if v is None else str(v)
    return MappingProxyType(out)


def mapping(raw: Any, where: str) -> Mapping[str, Any]:
    """`raw` as a mapping (None -> empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    return raw


def str_list(raw: Any, where: str, *, unique: bool = False) -> tuple[str, ...]:
    """A list of non-empty strings (None -> empty); duplicates rejected when `unique`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where} must be a list")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str | int) or isinstance(item, bool) or str(item) == "":
            raise ConfigError(f"{where}: {item!r} is not a non-empty string")
        text = str(item)
        if unique and text in out:
            raise ConfigError(f"{where}: duplicate entry {text!r}")
        out.append(text)
    return tuple(out)


def boolean(raw: Any, default: bool, where: str) -> bool:
    """A YAML boolean (None -> default)."""
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise ConfigError(f"{where} must be true or false, got {raw!r}")
    return raw


def empty() -> Mapping[str, str]:
    """Default factory for label/annotation fields (a shared read-only empty mapping)."""
    return EMPTY
