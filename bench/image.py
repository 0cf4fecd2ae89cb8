"""The image: what its size is made of, and how long a speaker takes from `podman run` to ready.

Usage: ``python -m bench.image [--trials 7]`` (root, podman; builds the images first with
``scripts/image/build.sh``, as ``make image`` does, so the numbers are this tree's). Writes
``bench/results/image.json`` and ``bench/results/image.md``.

Size: the images as podman stores them, the virtual environment and its largest
packages measured inside the image, and what ``scripts/image/slim-venv.sh`` removes
(measured by installing the same wheels into the same base, before and after).

Start-up, in a two-node lab where node2's speaker container already runs (so joining is one
round trip, as in a cluster): node1's speaker is started ``--trials`` times, and the time from
the start command to the first 200 from ``/readyz`` (polled every 10 ms from node1's
namespace) is recorded for

- the container as the rendered DaemonSet runs it (``l2agent.lab.containers``);
- the same container without the shipped bytecode (``PYTHONPYCACHEPREFIX`` on an empty
  tmpfs: Python compiles every module from source, as it would with no ``__pycache__``);
- the peer: the same speaker as a plain process on the host, same namespace, same arguments.

Measured, not asserted; on a shared 2-core machine, run it under ``flock /work/.cpu.lock``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from l2agent.lab.containers import ContainerSpeakers
from l2agent.lab.netns import Lab
from l2agent.lab.netns_thread import NetnsThread
from l2agent.lab.speakers import METRICS_PORT, LabSpeakers
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PODMAN = [str(REPO / "scripts" / "image" / "podman")]
IMAGE = "localhost/l2agent:dev"
FRR_IMAGE = "localhost/l2agent-frr:dev"
COMMAND = "flock /work/.cpu.lock .venv/bin/python -m bench.image"

# Runs in the image: sizes (kB) of the venv, of each package, and of the bytecode.
_SIZES = r"""
import json, os, subprocess
site = "/opt/l2agent/lib/python3.11/site-packages"
def du(path):
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout
    return int(out.split()[0])
def subdirs(path):
    return [n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))
            and not n.endswith((".dist-info", "__pycache__"))]
packages = {n: du(os.path.join(site, n)) for n in subdirs(site)}
k8s_dir = os.path.join(site, "kubernetes")
k8s = {n: du(os.path.join(k8s_dir, n)) for n in subdirs(k8s_dir)}
pyc = 0
for root, dirs, files in os.walk("/opt/l2agent"):
    if os.path.basename(root) == "__pycache__":
        pyc += sum(os.path.getsize(os.path.join(root, f)) for f in files)
print(json.dumps({"venv_kb": du("/opt/l2agent"), "packages_kb": packages,
                  "bytecode_kb": pyc // 1024, "kubernetes_kb": k8s,
                  "python_stdlib_kb": du("/usr/lib/python3.11")}))
"""


def podman(*args: str, timeout: float = 300.0) -> str:
    proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format={{.Size}}", name).strip())


def measure_sizes() -> dict[str, Any]:
    labels = json.loads(podman("image", "inspect", IMAGE))[0]["Labels"]
    base = labels["org.opencontainers.image.base.name"]
    frr_base = json.loads(podman("image", "inspect", FRR_IMAGE))[0]["Labels"][
        "org.opencontainers.image.base.name"
    ]
    python = "--entrypoint=/opt/l2agent/bin/python"
    inside = json.loads(podman("run", "--rm", "--network=none", python, IMAGE, "-c", _SIZES))
    return {
        "image_bytes": image_size(IMAGE),
        "base_bytes": image_size(base),
        "frr_image_bytes": image_size(FRR_IMAGE),
        "frr_base_bytes": image_size(frr_base),
        "base": base,
        **inside,
        "slimming": measure_slimming(base),
    }


def measure_slimming(base: str) -> dict[str, int]:
    """Install the same wheels into the same base as the build does; sizes before and
    after scripts/image/slim-venv.sh (kB)."""
    script = (
        "set -e; python3 -m venv /v >/dev/null; "
        "/v/bin/python -m pip install -q --no-index --only-binary=:all: --find-links /w "
        "--require-hashes -r /lock; "
        "/v/bin/python -m pip install -q --no-index --no-deps /d/l2agent-*.whl; "
        "/v/bin/python -m pip uninstall -q -y pip setuptools; "
        "du -sk /v | cut -f1; du -sk /v/lib/python3.11/site-packages/kubernetes/aio | cut -f1; "
        "sh /slim /v >/dev/null; du -sk /v | cut -f1"
    )
    cache = REPO / ".cache" / "image"
    out = podman(
        "run", "--rm", "--network=none",
        f"--volume={cache / 'wheelhouse'}:/w:ro", f"--volume={cache / 'dist'}:/d:ro",
        f"--volume={REPO / 'requirements' / 'runtime.lock'}:/lock:ro",
        f"--volume={REPO / 'scripts' / 'image' / 'slim-venv.sh'}:/slim:ro",
        base, "sh", "-c", script,
    )  # fmt: skip
    before, aio, after = (int(x) for x in out.split())
    return {"venv_before_kb": before, "kubernetes_aio_kb": aio, "venv_after_kb": after}


def _ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def time_to_ready(thread: NetnsThread, url: str, start: Callable[[], Any], limit: float) -> float:
    """Seconds from calling ``start()`` to the first 200 from ``url``."""
    t0 = time.monotonic()
    start()
    while time.monotonic() - t0 < limit:
        if thread.call(_ready, url):
            return time.monotonic() - t0
        time.sleep(0.01)
    raise TimeoutError(f"not ready after {limit} s")


def measure_startup(trials: int, workdir: Path) -> dict[str, list[float]]:
    rendered = [
        d
        for d in yaml.safe_load_all(
            subprocess.run(
                ["kubectl", "kustomize", str(REPO / "deploy")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        if d
    ]
    (daemonset,) = [o for o in rendered if o["kind"] == "DaemonSet"]
    secret = base64.b64encode(os.urandom(128))
    key_file = workdir / "secretkey"
    key_file.write_bytes(secret)
    key_file.chmod(0o400)
    results: dict[str, list[float]] = {"container": [], "container_no_bytecode": [], "host": []}
    with Lab(2, vips=[vip(0, 4)]) as lab:
        containers = ContainerSpeakers(
            lab, demo_config_path(), daemonset["spec"]["template"]["spec"], podman=PODMAN,
            secrets={"memberlist": {"secretkey": secret}}, workdir=workdir,
        )  # fmt: skip
        host = LabSpeakers(
            lab, demo_config_path(), workdir=workdir, extra=["--secret-key-file", str(key_file)]
        )
        thread = NetnsThread(lab.netns("node1"))
        url = f"http://{containers.address('node1')}:{METRICS_PORT}/readyz"
        try:
            containers.start("node2")
            containers.wait_ready("node2", timeout=60)
            for _ in range(trials):
                for variant in results:
                    if variant == "host":
                        results[variant].append(
                            time_to_ready(thread, url, lambda: host.start("node1"), 60)
                        )
                        host.terminate("node1")
                        continue
                    containers.podman_extra = (
                        ["--env=PYTHONPYCACHEPREFIX=/tmp/no-bytecode"]
                        if variant == "container_no_bytecode"
                        else []
                    )
                    results[variant].append(
                        time_to_ready(thread, url, lambda: containers.start("node1"), 60)
                    )
                    containers.terminate("node1")
                    podman("rm", containers.container_name("node1"))  # not counted next time
        finally:
            thread.close()
            host.close()
            containers.close()
    return results


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
        "n": len(samples),
    }


def _mb(value_bytes: float) -> str:
    return f"{value_bytes / 1e6:.0f} MB"


def render_markdown(doc: dict[str, Any]) -> str:
    s = doc["sizes"]
    su = {k: _summary(v) for k, v in doc["startup_seconds"].items()}
    packages = sorted(s["packages_kb"].items(), key=lambda kv: -kv[1])[:8]
    k8s = sorted(s["kubernetes_kb"].items(), key=lambda kv: -kv[1])[:3]
    slim = s["slimming"]
    host = su["host"]["median"]
    lines = [
        f"Image size and start-up ({doc['when']}, {doc['revision']}, kernel {doc['kernel']}; "
        f"`{COMMAND}`)",
        "",
        "| image | size | of which base |",
        "|---|---:|---:|",
        f"| {IMAGE} | {_mb(s['image_bytes'])} | {_mb(s['base_bytes'])} (Debian bookworm "
        f"minbase + python3, python3-venv, frr, frr-pythontools; mmdebstrap) |",
        f"| {FRR_IMAGE} | {_mb(s['frr_image_bytes'])} | {_mb(s['frr_base_bytes'])} (the "
        f"same base) |",
        "",
        f"The virtual environment is {s['venv_kb'] / 1024:.0f} MB (Python's standard library "
        f"in the base: {s['python_stdlib_kb'] / 1024:.0f} MB); bytecode is "
        f"{s['bytecode_kb'] / 1024:.0f} MB of it. Largest packages:",
        "",
        "| package | MB |",
        "|---|---:|",
        *(f"| {name} | {kb / 1024:.1f} |" for name, kb in packages),
        "",
        "Inside kubernetes: "
        + ", ".join(f"`{d}/` {kb / 1024:.0f} MB" for d, kb in k8s)
        + f". `scripts/image/slim-venv.sh` removes `kubernetes/aio` (the asyncio twin of the "
        f"client, {slim['kubernetes_aio_kb'] / 1024:.0f} MB with its bytecode; l2agent uses "
        f"the synchronous client) and packages' test suites: the venv goes from "
        f"{slim['venv_before_kb'] / 1024:.0f} MB to {slim['venv_after_kb'] / 1024:.0f} MB.",
        "",
        "Start-up of node1's speaker, from the start command to the first 200 on `/readyz` "
        f"(node2's container already running; {su['container']['n']} trials each):",
        "",
        "| how it runs | min | median | max | median vs host process |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "container": "container, as the DaemonSet runs it (`podman run`)",
        "container_no_bytecode": "same, without the shipped bytecode",
        "host": "peer: plain process on the host, same netns and arguments",
    }
    for key, label in names.items():
        row = su[key]
        lines.append(
            f"| {label} | {row['min']:.2f} s | {row['median']:.2f} s | {row['max']:.2f} s | "
            f"{row['median'] / host:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--skip-build", action="store_true", help="measure the images as they are")
    args = ap.parse_args(argv)
    if not args.skip_build:
        env = {**os.environ, "PYTHON": sys.executable}
        subprocess.run([str(REPO / "scripts" / "image" / "build.sh")], check=True, env=env)
    workdir = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip())
    revision = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "revision": revision,
        "kernel": platform.release(),
        "command": COMMAND,
        "sizes": measure_sizes(),
        "startup_seconds": measure_startup(args.trials, workdir),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "image.json").write_text(json.dumps(doc, indent=2) + "\n")
    markdown = render_markdown(doc)
    (RESULTS / "image.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
