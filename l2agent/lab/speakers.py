"""Real `l2agent speaker` processes in the lab, one per node, joined by gossip.

Used by `make demo`, the end-to-end failover tests and the failover benchmark alike, so all
three measure the same thing: speakers started exactly as a user starts them, a UDP echo
server per node, and a prober in the client namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from gossip.addresses import GOSSIP_PORT
from l2agent.health import METRICS_PORT
from l2agent.lab.netns import CLIENT, Lab, wait_until
from l2agent.lab.prober import Probe, from_json

__all__ = ["GOSSIP_PORT", "METRICS_PORT", "LabSpeakers"]


class LabSpeakers:
    """Speakers, echo servers and probers in a built :class:`Lab`.

    ``config``: the YAML every speaker reads. ``extra``: more speaker arguments (e.g.
    ``--gossip-preset lan``). ``gossip=False`` runs them in static mode (no gossip; members
    are the config's Node objects). ``wrapper``: a command the speaker runs under (the
    benchmarks' ``setpriv`` giving it exactly the DaemonSet's capabilities). ``frr_dir``:
    BGP mode, the node's FRR directory (config and vty sockets, ``LabFrr.dir``) passed as
    ``--frr-config-dir``/``--frr-run-dir``. ``secret_key_files``: each node's
    ``--secret-key-file`` (the gossip is encrypted; a node missing from it gets none). Logs
    go to ``workdir/<node>.log``.
    """

    def __init__(
        self,
        lab: Lab,
        config: Path,
        *,
        extra: Sequence[str] = (),
        workdir: Path | None = None,
        gossip: bool = True,
        wrapper: Sequence[str] = (),
        frr_dir: Callable[[str], Path] | None = None,
        secret_key_files: Mapping[str, Path] | None = None,
    ) -> None:
        self.lab = lab
        self.frr_dir = frr_dir
        self.secret_key_files = dict(secret_key_files or {})
        self.config = config
        self.extra = tuple(extra)
        self.wrapper = tuple(wrapper)
        self.gossip = gossip
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="l2lab-"))
        self.speakers: dict[str, subprocess.Popen[Any]] = {}
        self.echoes: dict[str, subprocess.Popen[Any]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def address(self, node: str) -> str:
        return str(self.lab.nodes[node].ipv4)

    def speaker_argv(self, node: str) -> list[str]:
        me = self.address(node)
        argv = [
            *self.wrapper,
            sys.executable, "-m", "l2agent.cli", "speaker",
            "--node-name", node,
            "--config", str(self.config),
            "--metrics-addr", f"{me}:{METRICS_PORT}",
        ]  # fmt: skip
        if self.frr_dir is not None:
            d = str(self.frr_dir(node))
            argv += ["--frr-config-dir", d, "--frr-run-dir", d]
        if not self.gossip:  # static mode: members are the Node objects of the config
            return argv + list(self.extra)
        argv += ["--bind-addr", f"{me}:{GOSSIP_PORT}"]
        if node in self.secret_key_files:
            argv += ["--secret-key-file", str(self.secret_key_files[node])]
        for other in self.lab.node_names:
            if other != node:
                argv += ["--join", f"{self.address(other)}:{GOSSIP_PORT}"]
        return argv + list(self.extra)

    def start_echo(self, node: str) -> None:
        self.echoes[node] = self.lab.spawn(
            node, [sys.executable, "-m", "l2agent.lab.echo", "--name", node]
        )

    def start(self, node: str) -> subprocess.Popen[Any]:
        """Start ``node``'s speaker (log appended to ``workdir/<node>.log``)."""
        log = self._logs.get(node)
        if log is None:
            log = self._logs[node] = open(self.workdir / f"{node}.log", "ab")  # noqa: SIM115
        proc = self.lab.spawn(node, self.speaker_argv(node), stdout=log, stderr=log)
        self.speakers[node] = proc
        return proc

    def start_all(self) -> None:
        for node in self.lab.node_names:
            self.start_echo(node)
        for node in self.lab.node_names:
            self.start(node)

    def kill(self, node: str) -> None:
        """SIGKILL the speaker (no goodbye)."""
        proc = self.speakers.pop(node)
        proc.kill()
        proc.wait(timeout=5)

    def terminate(self, node: str, timeout: float = 10.0) -> int:
        """SIGTERM the speaker (planned handover) and wait for it to exit."""
        proc = self.speakers.pop(node)
        proc.terminate()
        return proc.wait(timeout=timeout)

    def log_text(self, node: str) -> str:
        path = self.workdir / f"{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- observation through each speaker's HTTP endpoint, from its own namespace ----------
    # (reachable even while the node's cable is pulled)

    def fetch(self, node: str, path: str, timeout: float = 2.0) -> str | None:
        url = f"http://{self.address(node)}:{METRICS_PORT}{path}"
        code = (
            "import sys,urllib.request as u\n"
            f"sys.stdout.write(u.urlopen({url!r}, timeout={timeout}).read().decode())"
        )
        try:
            return self.lab.exec(node, [sys.executable, "-c", code], timeout=timeout + 5)
        except Exception:
            return None

    def status(self, node: str) -> dict[str, Any] | None:
        text = self.fetch(node, "/status")
        return json.loads(text) if text else None

    def samples(self, node: str, *names: str) -> dict[str, float]:
        """Samples of the named metric families from ``node``'s /metrics, keyed by the
        sample's text before the value (name and labels), e.g.
        ``l2agent_gossip_suspicions_raised_total``."""
        out: dict[str, float] = {}
        for line in (self.fetch(node, "/metrics") or "").splitlines():
            if line.startswith(names) and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def owners(self) -> dict[str, set[str]]:
        """IP -> the nodes announcing it, from every running speaker's /status."""
        out: dict[str, set[str]] = {}
        for node in self.speakers:
            doc = self.status(node)
            for row in (doc or {}).get("ownership", []):
                if row.get("announcing"):
                    out.setdefault(row["ip"], set()).add(node)
        return out

    def wait_members(self, timeout: float = 20.0) -> None:
        """Wait until every running speaker sees every running speaker alive. Until then an
        IP can have exactly one announcing node that is not its owner for good (a speaker
        that has not heard of the others yet announces alone)."""
        names = set(self.speakers)

        def joined() -> bool:
            for node in names:
                doc = self.status(node) or {}
                alive = {m["name"] for m in doc.get("members", []) if m.get("state") == "alive"}
                if not names <= alive:
                    return False
            return True

        if not wait_until(joined, timeout, interval=0.2):
            raise TimeoutError(f"{sorted(names)} did not all see each other in {timeout} s")

    def wait_owners(self, ips: Sequence[str], timeout: float = 20.0) -> dict[str, str]:
        """Wait until each IP has exactly one announcing node; return IP -> owner."""
        result: dict[str, str] = {}

        def settled() -> bool:
            owners = self.owners()
            if all(len(owners.get(ip, ())) == 1 for ip in ips):
                result.update({ip: next(iter(owners[ip])) for ip in ips})
                return True
            return False

        if not wait_until(settled, timeout, interval=0.2):
            raise TimeoutError(f"no single owner for {list(ips)} after {timeout} s")
        return result

    def probe(
        self,
        target: str,
        duration: float,
        interval: float = 0.002,
        *,
        role: str = CLIENT,
        flows: int = 1,
    ) -> subprocess.Popen[Any]:
        """Start a prober in ``role``'s namespace (the LAN client; ``remote`` behind the
        router in a BGP lab) with ``flows`` source sockets; :meth:`probes` collects it."""
        out = self.workdir / f"probe-{target}-{time.monotonic_ns()}.json"
        argv = [
            sys.executable, "-m", "l2agent.lab.prober", "--target", target,
            "--interval", str(interval), "--duration", str(duration), "--out", str(out),
            "--flows", str(flows),
        ]  # fmt: skip
        proc = self.lab.spawn(role, argv)
        proc.out_path = out  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def probes(proc: subprocess.Popen[Any], timeout: float = 60.0) -> list[Probe]:
        proc.wait(timeout=timeout)
        return from_json(Path(proc.out_path).read_text())  # type: ignore[attr-defined]

    def close(self) -> None:
        for proc in list(self.speakers.values()) + list(self.echoes.values()):
            self.lab.stop(proc)
        self.speakers.clear()
        self.echoes.clear()
        for log in self._logs.values():
            log.close()
        self._logs.clear()
