"""Sans-IO rule: core modules import no socket, clock, thread, RNG, Kubernetes or netlink.

Walks the AST of each core module and, transitively, of every project module it imports
(and the packages' ``__init__`` files, which run on import). A listed module that does not
exist fails the test (a rename must update the list, not silently drop the check).
``import random`` is allowed only under ``if TYPE_CHECKING:`` (cores are handed a
``random.Random``; annotations need no runtime import with ``from __future__ import
annotations``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("l2agent", "gossip")
FORBIDDEN = frozenset(
    {
        "socket",
        "asyncio",
        "time",
        "threading",
        "random",
        "kubernetes",
        "pyroute2",
        "subprocess",
        "select",
    }
)

CORE_MODULES = (
    "l2agent.packets",
    "l2agent.responder.decide",
    "l2agent.responder.bpf",
    "l2agent.responder.filter",
    "l2agent.responder.templates",
    "l2agent.responder.budget",
    "l2agent.announce.schedule",
    "l2agent.announce.defense",
    "l2agent.interfaces.inventory",
    "l2agent.model",
    "l2agent.allocator",
    "l2agent.election",
    "l2agent.plan",
    "l2agent.service_ips",
    "l2agent.bgp.plan",
    "l2agent.bgp.frr_config",
    "l2agent.bgp.report",
    "l2agent.speaker.ownership",
    "l2agent.speaker.membership",
    "l2agent.speaker.placement",
    "l2agent.kube.heartbeat",
    "l2agent.controller.planner",
    "l2agent.kube.ratelimit",
    "l2agent.bgp.frr_state",
    "l2agent.bgp.reload_outcome",
    "l2agent.bgp.sessions",
)


def _gossip_cores() -> list[str]:
    """gossip/*.py except __main__; gossip/aio and gossip/sim are adapters, not cores."""
    return sorted(
        f"gossip.{p.stem}" if p.stem != "__init__" else "gossip"
        for p in (ROOT / "gossip").glob("*.py")
        if p.name != "__main__.py"
    )


def _files(module: str) -> list[Path]:
    """Files that run when ``module`` is imported: its own file(s) and parent __init__s.
    An l2agent package counts with every module inside it (the package is the core);
    the ``gossip`` root counts only its __init__ (its sub-packages are adapters)."""
    parts = module.split(".")
    base = ROOT.joinpath(*parts)
    out = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    if base.is_dir() and module == "gossip":
        out.append(base / "__init__.py")
    elif base.is_dir():
        out.extend(sorted(base.rglob("*.py")))
    elif base.with_suffix(".py").is_file():
        out.append(base.with_suffix(".py"))
    else:
        return []
    return [p for p in out if p.is_file()]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every runtime import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = rel[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join((*anchor, node.module) if node.module else anchor)
            else:
                base = node.module or ""
            out.append((node.lineno, base))
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def _violations(module: str) -> list[str]:
    seen: set[Path] = set()
    todo = _files(module)
    bad: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for line, name in _imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top in FORBIDDEN:
                bad.append(f"{where} imports {name}")
            elif top in PROJECT:
                todo.extend(_project_file(name))
    return sorted(set(bad))


def _project_file(name: str) -> list[Path]:
    """The file(s) a project import runs (without pulling in whole sub-packages)."""
    parts = name.split(".")
    out = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    out.append(ROOT.joinpath(*parts).with_suffix(".py"))
    return [p for p in out if p.is_file()]


ALL = [*CORE_MODULES, *_gossip_cores()]


@pytest.mark.parametrize("module", ALL)
def test_core_module_is_sans_io(module: str) -> None:
    base = ROOT.joinpath(*module.split("."))
    assert base.is_dir() or base.with_suffix(".py").is_file(), (
        f"{module} is listed as a sans-IO core but does not exist: update CORE_MODULES"
    )
    bad = _violations(module)
    assert not bad, (
        f"{module} is a sans-IO core but imports I/O, clock or RNG modules at runtime "
        "(take a clock value / random.Random as an argument; put annotation-only imports "
        "under `if TYPE_CHECKING:`):\n  " + "\n  ".join(bad)
    )


def test_checker_catches_violations(tmp_path: Path) -> None:
    """The walker sees through relative imports, aliases and TYPE_CHECKING blocks."""
    src = tmp_path / "mod.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "import os, time as t\n"
        "from socket import AF_PACKET\n"
        "if TYPE_CHECKING:\n"
        "    import random\n"
        "def f():\n"
        "    import asyncio\n"
        "    __import__('select')\n"
    )
    tops = {name.split(".")[0] for _, name in _imports_any(src)}
    assert tops & FORBIDDEN == {"time", "socket", "asyncio", "select"}


def _imports_any(path: Path) -> list[tuple[int, str]]:
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return _imports(path)
    finally:
        ROOT = saved
