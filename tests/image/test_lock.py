"""The lock files pin everything pyproject.toml asks for, with hashes, and `make` and the
image install the same pins; one image name is used everywhere. No network, no podman."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers.image import IMAGE, REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RUNTIME = REPO / "requirements" / "runtime.lock"
DEV = REPO / "requirements" / "dev.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RELOCK = "pyproject.toml changed without its lock: run `make lock` and commit requirements/"


def parse_lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, sha256 hashes) for every pin of a pip-compile lock file."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", line)
        if pin:
            name = str(canonicalize_name(pin[1]))
            assert name not in pins, f"{path.name}: {name} pinned twice"
            pins[name] = (pin[2], frozenset())
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            version, hashes = pins[name]
            pins[name] = (version, hashes | {digest})
    return pins


def _assert_pinned(requirements: list[str], pins: dict[str, Any], lock: Path) -> None:
    for text in requirements:
        req = Requirement(text)
        name = str(canonicalize_name(req.name))
        assert name in pins, f"{name} is not in {lock.name}: {RELOCK}"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, outside {req.specifier}: {RELOCK}"
        )


def test_runtime_lock_pins_every_dependency() -> None:
    _assert_pinned(PYPROJECT["project"]["dependencies"], parse_lock(RUNTIME), RUNTIME)


def test_dev_lock_pins_tests_tools_and_the_build_backend() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = [*extras["test"], *extras["dev"], *PYPROJECT["build-system"]["requires"]]
    _assert_pinned(wanted, parse_lock(DEV), DEV)


def test_make_and_the_image_install_the_same_pins() -> None:
    runtime, dev = parse_lock(RUNTIME), parse_lock(DEV)
    differ = {name: (pin, dev.get(name)) for name, pin in runtime.items() if dev.get(name) != pin}
    assert differ == {}, f"requirements/dev.lock differs from runtime.lock: {RELOCK}"


@pytest.mark.parametrize("lock", [RUNTIME, DEV], ids=lambda p: p.name)
def test_every_pin_has_hashes(lock: Path) -> None:
    pins = parse_lock(lock)
    assert len(pins) > 10
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []


def test_one_image_name_everywhere() -> None:
    assert IMAGE == "localhost/l2agent:dev"
    kustomization = (REPO / "deploy" / "kustomization.yaml").read_text()
    assert "newName: localhost/l2agent\n" in kustomization and "newTag: dev\n" in kustomization
    build = (REPO / "scripts" / "image" / "build.sh").read_text()
    assert f"image=${{IMAGE:-{IMAGE}}}" in build
    assert IMAGE in (REPO / "Makefile").read_text()


def test_rendered_workloads_use_the_built_image(rendered: list[dict[str, Any]]) -> None:
    images = {
        (o["kind"], c["name"]): c["image"]
        for o in rendered
        if o["kind"] in ("DaemonSet", "Deployment")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images[("DaemonSet", "speaker")] == IMAGE
    assert images[("Deployment", "controller")] == IMAGE
