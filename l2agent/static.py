"""Static configuration: Kubernetes objects from multi-document YAML files.

The same shape `kubectl get -o yaml` prints (single objects, several documents, or
`kind: List`), so an agent with no cluster reads what a cluster would have served.
Loading is the only I/O here; `l2agent.model.build_state` validates what it returns.

Parsing uses libyaml (`yaml.CSafeLoader`, about 8x faster than the pure-Python loader)
when PyYAML has it. A file is refused whole, with a `ConfigError` naming it, when it is
larger than `MAX_FILE_BYTES`, holds more than `MAX_OBJECTS` objects, nests deeper than the
parser allows, or fails in any other way: nothing a file holds escapes as another exception.

What a hostile file costs is bounded before the expensive part where it can be: documents
are counted in the raw text (a C-speed scan) and a `kind: List` by its items before they
are built, so a file of 100,000 tiny documents is refused in milliseconds, not after a
second of parsing. The cyclic collector is paused while a file parses: the growing node
graph of one large document made every collection walk it again (a 100,000-item List took
11 s to compose instead of 1.4 s).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from l2agent.errors import ConfigError
from l2agent.model.snapshot import expand_lists

__all__ = [
    "CONFIG_SUFFIXES",
    "DEMO_CONFIG",
    "MAX_FILE_BYTES",
    "MAX_OBJECTS",
    "config_files",
    "demo_config_path",
    "demo_config_text",
    "load_yaml_files",
    "load_yaml_text",
]

log = logging.getLogger(__name__)

#: Package resource name of the embedded demo configuration (3 lab nodes, IPv4 + dual stack).
DEMO_CONFIG = "data/demo.yaml"
#: Files a configuration directory contributes, as `kubectl apply -f DIR` reads them.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
#: Largest configuration file read (16 MiB holds ~40,000 Services).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Most objects one file may hold (reading stops at the next one): parsing 20,000 takes about
#: a second, off the loop, and a file of 100,000 tiny documents is refused after that.
MAX_OBJECTS = 20_000

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def demo_config_path() -> Path:
    """The embedded demo configuration (`l2agent/data/demo.yaml`), the one locator."""
    return Path(__file__).parent / DEMO_CONFIG


def demo_config_text() -> str:
    """The embedded demo configuration's YAML."""
    return demo_config_path().read_text(encoding="utf-8")


def config_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files behind `--config` arguments: a file as given, a directory as its
    `*.yaml`/`*.yml`/`*.json` files (sorted by name, not recursive), in argument order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                sorted(p for p in path.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())
            )
        else:
            out.append(path)
    return out


def load_yaml_text(text: str, source: str = "<string>") -> list[dict[str, Any]]:
    """Parse multi-document YAML into objects; `kind: List` items are expanded.

    Empty documents are skipped.  Raises `ConfigError(source, line)` for a syntax error or a
    document that is not a mapping, so a bad file is reported where it is broken.
    """
    out: list[dict[str, Any]] = []
    if _documents_at_most(text) > MAX_OBJECTS:
        raise ConfigError(f"more than {MAX_OBJECTS} documents", source=source)
    constructor = yaml.SafeLoader("")
    try:
        with _collector_paused():
            _load_into(out, text, source, constructor)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError("nested too deeply", source=source) from None
    finally:
        constructor.dispose()
    return out


def _load_into(
    out: list[dict[str, Any]], text: str, source: str, constructor: yaml.SafeLoader
) -> None:
    for node in yaml.compose_all(text, Loader=_Loader):
        if node is None:
            continue
        line = node.start_mark.line + 1
        if len(out) + _items_declared(node) > MAX_OBJECTS:  # a List may hold many
            raise ConfigError(f"more than {MAX_OBJECTS} objects", source=source, line=line)
        doc = constructor.construct_document(node)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(
                f"expected a Kubernetes object (a mapping), got a {type(doc).__name__}",
                source=source,
                line=line,
            )
        for obj in expand_lists([doc]):
            if not isinstance(obj, dict):
                raise ConfigError(
                    "a List item is not a Kubernetes object (a mapping)", source=source, line=line
                )
            out.append(obj)
        if len(out) > MAX_OBJECTS:  # nested Lists
            raise ConfigError(f"more than {MAX_OBJECTS} objects", source=source, line=line)


def _documents_at_most(text: str) -> int:
    """An upper bound on the documents in `text`: every separator starts a line with ---."""
    return text.count("\n---") + 1


def _items_declared(node: yaml.Node) -> int:
    """What a composed document costs in objects before it is built: the length of its
    `items` sequence (a List's objects), else one."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "items" and isinstance(value, yaml.SequenceNode):
                return max(1, len(value.value))
    return 1


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic collection while a file parses (see the module docstring); the node graph
    holds no cycles a collection could free before the file is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_yaml_files(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read every file (directories: see `config_files`) in order and concatenate their
    objects. JSON files read as YAML (JSON is YAML's flow style).

    Raises `ConfigError` naming the file (and line) for an unreadable or invalid file.
    """
    out: list[dict[str, Any]] = []
    for path in config_files(paths):
        name = os.fspath(path)
        try:
            objects = load_yaml_text(_read_bounded(name), source=name)
        except ConfigError:
            raise
        except Exception as exc:  # nothing in a file may escape as anything else
            raise ConfigError(f"cannot load: {type(exc).__name__}: {exc}", source=name) from None
        log.debug("loaded %d objects from %s", len(objects), name)
        out.extend(objects)
    return out


def _read_bounded(name: str) -> str:
    """The file's text, refused past `MAX_FILE_BYTES` without reading further."""
    try:
        with open(name, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", source=name) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES} bytes", source=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read: {exc}", source=name) from None
