"""Fixtures for the image tests: the rendered manifests, and the images built once per run.

The images are built by the script behind `make image` (scripts/image/build.sh) when the
first test needs them, so what is tested is this tree. Where podman cannot work (not root, a
tool missing, podman failing here) those tests skip and say why; a build that fails where
podman works is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers.image import FRR_IMAGE, IMAGE, REPO, podman_skip_reason, render_deploy


@pytest.fixture(scope="session")
def rendered() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed; cannot render deploy/")
    return render_deploy()


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Build both images with scripts/image/build.sh (as `make image` does); their names."""
    reason = podman_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    start = time.monotonic()
    build = subprocess.run(
        [str(REPO / "scripts" / "image" / "build.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if build.returncode != 0:
        pytest.fail(f"scripts/image/build.sh failed:\n{build.stdout[-3000:]}{build.stderr[-5000:]}")
    print(f"\nimages built in {time.monotonic() - start:.0f} s:\n{build.stderr[-1500:]}")
    return {"l2agent": IMAGE, "frr": FRR_IMAGE}
