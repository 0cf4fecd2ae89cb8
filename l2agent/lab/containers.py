"""Speakers as podman containers in the lab: the shipped image, run the way the DaemonSet runs it.

Each container joins a node's namespace (``--network ns:/run/netns/<node namespace>``: a node
namespace is the "host network" the DaemonSet asks for) with the flags
:func:`l2agent.lab.pod_spec.container_run` derives from the rendered manifest: its
capabilities, user, read-only root, no privilege escalation, memory limit, grace period, its
``/tmp`` and the memberlist secret mounted where and as the manifest mounts them.

No cluster: static mode stands in for the Kubernetes source. The manifest's ``--kubeconfig``
argument becomes ``--config`` on a mounted YAML file, and ``--join`` names the other nodes;
every other argument is the manifest's, ``$(VAR)``\\ s expanded from its downward-API env.

Containers are named ``<lab prefix>-<node>`` and removed by that name at :meth:`close`, also
after a failure; the podman client of each is started with a parent-death signal, so even a
killed test leaves no container running for long.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from l2agent.lab.netns import Lab
from l2agent.lab.netns_thread import NetnsThread
from l2agent.lab.pod_spec import ContainerRun, UnsupportedPodSpec, container_run, expand_args
from l2agent.lab.speakers import METRICS_PORT, LabSpeakers

CONFIG_PATH = "/etc/l2agent/cluster.yaml"
"""Where the static-mode config file is mounted in each container."""

NAMESPACE = "metallb-system"


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def static_mode_args(args: Sequence[str], peers: Sequence[str]) -> list[str]:
    """The manifest's speaker args with the Kubernetes source swapped for the config file."""
    if not any(a == "--kubeconfig" or a.startswith("--kubeconfig=") for a in args):
        raise UnsupportedPodSpec("the speaker's args have no --kubeconfig to replace")
    out: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        if arg == "--kubeconfig":
            skip_value = True
            out.append(f"--config={CONFIG_PATH}")
        elif arg.startswith("--kubeconfig="):
            out.append(f"--config={CONFIG_PATH}")
        else:
            out.append(arg)
    return out + [f"--join={peer}" for peer in peers]


class ContainerSpeakers(LabSpeakers):
    """Speaker containers of ``image`` in a built :class:`Lab`, one per node.

    ``pod_spec``: the rendered DaemonSet's pod template ``spec``; ``container``: the name of
    its speaker container. ``podman``: the command that runs podman (with its settings),
    e.g. ``["scripts/image/podman"]``. ``secrets``: the content of each secret the manifest
    mounts, by secret name and key. ``image`` overrides the manifest's image (None: keep it).
    ``podman_extra``: more ``podman run`` flags (a benchmark's variant; the tests add none).
    """

    def __init__(
        self,
        lab: Lab,
        config: Path,
        pod_spec: Mapping[str, Any],
        *,
        podman: Sequence[str],
        secrets: Mapping[str, Mapping[str, bytes]],
        container: str = "speaker",
        image: str | None = None,
        extra: Sequence[str] = (),
        podman_extra: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        super().__init__(lab, config, extra=extra, workdir=workdir, gossip=True)
        self.podman_extra = list(podman_extra)
        self.pod_spec = pod_spec
        self.container = container
        self.podman = list(podman)
        self.image = image
        self.names: set[str] = set()
        """Every container name this object started (all removed at close)."""
        self._secret_dirs = self._write_secrets(secrets)
        self._threads: dict[str, NetnsThread] = {}

    # -- what the manifest says, for one node ---------------------------------------------

    def fields(self, node: str) -> dict[str, str]:
        """The downward API's values for ``node``'s pod."""
        address = self.address(node)
        return {
            "spec.nodeName": node,
            "status.hostIP": address,
            "status.podIP": address,  # hostNetwork: the pod's IP is the node's
            "metadata.name": f"l2agent-speaker-{node}",
            "metadata.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"l2agent-lab:{node}")),
            "metadata.namespace": NAMESPACE,
        }

    def run_spec(self, node: str) -> ContainerRun:
        return container_run(self.pod_spec, self.container, self.fields(node))

    def container_name(self, node: str) -> str:
        return f"{self.lab.prefix}-{node}"

    def podman_argv(self, node: str) -> list[str]:
        """The full ``podman run`` command for ``node``'s speaker container."""
        run = self.run_spec(node)
        if not run.host_network:
            raise UnsupportedPodSpec("the speaker pod must use the host network")
        peers = [f"{self.address(n)}:7946" for n in self.lab.node_names if n != node]
        args = static_mode_args(expand_args(run.args, run.env_map()), peers)
        return [
            *self.podman, "run", "--replace", "--pull=never",
            f"--name={self.container_name(node)}",
            f"--network=ns:/run/netns/{self.lab.netns(node)}",
            *run.podman_flags(self._secret_dirs),
            f"--volume={self.config.resolve()}:{CONFIG_PATH}:ro",
            *self.podman_extra,
            self.image or run.image,
            *args, *self.extra,
        ]  # fmt: skip

    def _write_secrets(self, secrets: Mapping[str, Mapping[str, bytes]]) -> dict[str, str]:
        """Write each secret volume's files as Kubernetes does: owned by root (group fsGroup
        when the pod sets one), with the manifest's modes, in a directory of their own."""
        run = container_run(self.pod_spec, self.container, self.fields(self.lab.node_names[0]))
        dirs: dict[str, str] = {}
        for volume in run.secrets:
            where = self.workdir / f"secret-{volume.secret_name}"
            where.mkdir(mode=0o755, exist_ok=True)
            for key, name, mode in volume.files:
                path = where / name
                path.write_bytes(secrets[volume.secret_name][key])
                os.chown(path, 0, run.fs_group if run.fs_group is not None else 0)
                path.chmod(mode)
            dirs[volume.path] = str(where)
        return dirs

    # -- life cycle --------------------------------------------------------------------------

    def start(self, node: str) -> subprocess.Popen[Any]:
        """Start ``node``'s container (attached: its output goes to ``workdir/<node>.log``)."""
        log = self._logs.get(node)
        if log is None:
            log = self._logs[node] = open(self.workdir / f"{node}.log", "ab")  # noqa: SIM115
        argv = self.podman_argv(node)
        self.names.add(self.container_name(node))
        proc: subprocess.Popen[Any] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent
        )
        self.speakers[node] = proc
        return proc

    def terminate(self, node: str, timeout: float | None = None) -> int:
        """``podman stop``: SIGTERM, SIGKILL after the manifest's grace period; exit code."""
        proc = self.speakers.pop(node)
        grace = self.run_spec(node).stop_timeout
        self._podman("stop", f"--time={grace}", self.container_name(node), timeout=grace + 30)
        return proc.wait(timeout=timeout or grace + 30)

    def kill(self, node: str) -> None:
        """SIGKILL the container's process (no goodbye)."""
        proc = self.speakers.pop(node)
        self._podman("kill", "--signal=KILL", self.container_name(node))
        proc.wait(timeout=30)

    def main_pid(self, node: str) -> int:
        """The host PID of the container's main process (the speaker)."""
        out = self._podman("inspect", "--format={{.State.Pid}}", self.container_name(node))
        return int(out.strip())

    def wait_ready(self, node: str, timeout: float = 30.0) -> float:
        """Poll ``/readyz`` from the node's namespace until it answers 200; the monotonic
        time it first did. Raises TimeoutError (or if the container exited)."""
        thread = self._threads.get(node)
        if thread is None:
            thread = self._threads[node] = NetnsThread(self.lab.netns(node))
        url = f"http://{self.address(node)}:{METRICS_PORT}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if thread.call(_http_ok, url):
                return time.monotonic()
            proc = self.speakers.get(node)
            if proc is not None and proc.poll() is not None:
                raise TimeoutError(f"{node}'s container exited ({proc.returncode}) before ready")
            time.sleep(0.01)
        raise TimeoutError(f"{node} not ready after {timeout} s")

    def close(self) -> None:
        """Remove every container started (SIGTERM, SIGKILL after 3 s), then the rest."""
        for name in sorted(self.names):
            with contextlib.suppress(Exception):
                self._podman("rm", "--force", "--time=3", name, timeout=60)
        for thread in self._threads.values():
            thread.close()
        self._threads.clear()
        super().close()

    def _podman(self, *args: str, timeout: float = 60.0) -> str:
        proc = subprocess.run(
            [*self.podman, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
