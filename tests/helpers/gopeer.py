"""Build and drive a real hashicorp/memberlist peer for interop tests, in two versions.

`V0_2_2` is Debian bookworm's package (/usr/share/gocode, installed by install-deps.sh);
`V0_5_0` is Debian trixie's, the release MetalLB speakers pin, fetched by
scripts/fetch-memberlist.sh into `<repo>/.cache/memberlist-0.5.0/` (its dependencies come from
bookworm's tree: go-msgpack 0.5.5, the only one that shapes the wire, is the same in both).
The Go programs are built once per source version into `<repo>/.cache/gopeer/` in GOPATH mode
(GO111MODULE=off), as the wire spec's §13 describes; the build itself is offline. Tests skip
with a clear reason when `go` or the sources are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOPEER_SRC = REPO / "tests" / "gopeer"
GOCODE = Path("/usr/share/gocode")
CACHE = REPO / ".cache" / "gopeer"
FETCH_SCRIPT = REPO / "scripts" / "fetch-memberlist.sh"
_MEMBERLIST = Path("src") / "github.com" / "hashicorp" / "memberlist"
_FETCH_MARK_FRESH = 600.0
"""Seconds a recorded download failure stands before the next use tries again."""

_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class MemberlistSource:
    """One memberlist version's GOPATH and how to build against it."""

    version: str
    gocode: Path
    """The GOPATH tree holding this version's github.com/hashicorp/memberlist."""
    tags: tuple[str, ...] = ()
    """Build tags for tests/gopeer (memberlist_label: Config.Label exists)."""
    fetched: bool = False
    """Downloaded by scripts/fetch-memberlist.sh rather than installed as a package."""

    @property
    def labels(self) -> bool:
        return "memberlist_label" in self.tags

    @property
    def memberlist_dir(self) -> Path:
        return self.gocode / _MEMBERLIST

    @property
    def gopath(self) -> str:
        """This tree first, then bookworm's for the dependencies."""
        return f"{self.gocode}:{GOCODE}" if self.gocode != GOCODE else str(GOCODE)


V0_2_2 = MemberlistSource("0.2.2", GOCODE)
V0_5_0 = MemberlistSource(
    "0.5.0",
    REPO / ".cache" / "memberlist-0.5.0" / "usr" / "share" / "gocode",
    tags=("memberlist_label",),
    fetched=True,
)
VERSIONS = (V0_2_2, V0_5_0)


def _fetch(source: MemberlistSource) -> str | None:
    """Run the download for a fetched version if needed; why it is still missing, or None."""
    mark = REPO / ".cache" / f"memberlist-{source.version}.unavailable"
    if not (source.memberlist_dir / "memberlist.go").exists():
        fresh = mark.exists() and time.time() - mark.stat().st_mtime < _FETCH_MARK_FRESH
        if not fresh:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run([str(FETCH_SCRIPT)], capture_output=True, timeout=600, check=False)
    if (source.memberlist_dir / "memberlist.go").exists():
        return None
    if mark.exists():
        return mark.read_text().strip()
    return f"memberlist {source.version}: {FETCH_SCRIPT.name} did not provide the sources"


def skip_reason(source: MemberlistSource = V0_2_2) -> str | None:
    """Why the Go peer for `source` cannot be built here, or None (may download sources)."""
    if shutil.which("go") is None:
        return "needs the Go toolchain (`go`; Debian package golang-go)"
    if not (GOCODE / _MEMBERLIST / "memberlist.go").exists():
        return "needs golang-github-hashicorp-memberlist-dev (/usr/share/gocode)"
    if source.fetched:
        with _lock:
            return _fetch(source)
    return None


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _go_env(gopath: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=gopath,
        GOCACHE=str(CACHE / "gocache"),
        GOFLAGS="",
        CGO_ENABLED="0",
    )
    return env


def build_peer(source: MemberlistSource = V0_2_2) -> Path:
    """The memberlist peer binary (tests/gopeer/*.go) for one version, built on first use."""
    files = sorted(GOPEER_SRC.glob("*.go"))
    out = CACHE / f"gopeer-{source.version}-{_digest(*files, extra=source.gopath)}"
    with _lock:
        if not out.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(f".tmp{os.getpid()}")
            cmd = ["go", "build", "-o", str(tmp)]
            if source.tags:
                cmd += ["-tags", ",".join(source.tags)]
            subprocess.run(
                [*cmd, "."],
                cwd=GOPEER_SRC,
                env=_go_env(source.gopath),
                check=True,
                capture_output=True,
                timeout=300,
            )
            tmp.rename(out)
    return out


def build_golden_tool(source: MemberlistSource = V0_2_2) -> Path:
    """The golden-vector/judge tool: tests/gopeer/golden compiled inside a copy of memberlist."""
    golden = GOPEER_SRC / "golden" / "zz_golden.go"
    main = GOPEER_SRC / "golden" / "main.go.txt"
    out = CACHE / f"golden-{source.version}-{_digest(golden, main, extra=source.gopath)}"
    with _lock:
        if not out.exists():
            work = CACHE / f"gopath-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            pkg = work / _MEMBERLIST
            shutil.copytree(source.memberlist_dir, pkg, symlinks=True)
            for test_file in pkg.rglob("*_test.go"):
                test_file.unlink()
            shutil.copy(golden, pkg / "zz_golden.go")
            tool = work / "src" / "goldentool"
            tool.mkdir(parents=True)
            shutil.copy(main, tool / "main.go")
            tmp = out.with_suffix(f".tmp{os.getpid()}")
            try:
                subprocess.run(
                    ["go", "build", "-o", str(tmp), "."],
                    cwd=tool,
                    env=_go_env(f"{work}:{source.gopath}"),
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                tmp.rename(out)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return out


def free_port() -> int:
    """A port that is free on 127.0.0.1 for both UDP and TCP (memberlist uses both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


class JsonLinesProcess:
    """A child process that prints JSON lines; lines are collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _pump(self, timeout: float) -> bool:
        try:
            self.seen.append(self.lines.get(timeout=timeout))
        except queue.Empty:
            return False
        return True

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first line (already seen or future) matching `pred`; AssertionError on timeout."""
        for item in self.seen:
            if pred(item):
                return item
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._pump(min(left, 0.2)) and pred(self.seen[-1]):
                return self.seen[-1]
        raise AssertionError(
            f"{self.argv[0]}: no matching line in {timeout}s; seen {self.seen[-20:]}; "
            f"stderr {''.join(self.stderr)[-2000:]}"
        )

    def wait_event(self, event: str, node: str | None = None, timeout: float = 10.0) -> dict:
        return self.wait_for(
            lambda e: e.get("event") == event and (node is None or e.get("node") == node),
            timeout,
        )

    def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL by PID: a crash with no goodbye."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


class GoPeer(JsonLinesProcess):
    """One running Go memberlist member (see tests/gopeer/main.go for its protocol)."""

    def __init__(self, binary: Path, name: str, port: int, **flags: str) -> None:
        argv = [str(binary), "-name", name, "-port", str(port)]
        for key, value in flags.items():
            argv.append(f"-{key.replace('_', '-')}={value}")  # one word: also for bool flags
        super().__init__(argv)
        self.name = name
        self.port = port
        ready = self.wait_for(lambda e: e.get("event") in ("ready", "error"))
        if ready["event"] == "error":
            self.close()
            raise RuntimeError(f"go peer {name} failed: {ready}")

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        """Run one stdin command and return its reply line."""
        verb = line.split()[0]
        start = len(self.seen)
        self.send_line(line)
        want = "members" if verb == "members" else "done"

        def match(e: dict[str, Any]) -> bool:
            return e.get("event") == want and (want == "members" or e.get("cmd") == verb)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.seen[start:]:
                if match(item):
                    self.seen.remove(item)  # so the next identical command waits for its own
                    return item
            self._pump(0.2)
        raise AssertionError(f"go peer {self.name}: no reply to {line!r}; seen {self.seen[-10:]}")

    def alive_members(self) -> set[str]:
        return {m["node"] for m in self.command("members")["members"] if m["state"] == 0}


@contextlib.contextmanager
def go_peers(binary: Path) -> Iterator[list[GoPeer]]:
    """Collect started peers and kill whatever is still running at the end, pass or fail."""
    peers: list[GoPeer] = []
    try:
        yield peers
    finally:
        for peer in peers:
            peer.close()


class PyMember(JsonLinesProcess):
    """One `python -m gossip --commands` member in a child process (killable by PID)."""

    def __init__(self, name: str, port: int, *args: str) -> None:
        import sys

        argv = [sys.executable, "-m", "gossip", "--name", name, "--bind", f"127.0.0.1:{port}"]
        argv += ["--commands", *args]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        super().__init__(argv, env=env)
        self.name = name
        self.port = port
        self.wait_event("ready", timeout=20)

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        verb = line.split()[0]
        start = len(self.seen)
        self.send_line(line)
        want = "members" if verb == "members" else "done"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.seen[start:]:
                if item.get("event") == want and (want == "members" or item.get("cmd") == verb):
                    self.seen.remove(item)
                    return item
            self._pump(0.2)
        raise AssertionError(f"{self.name}: no reply to {line!r}; seen {self.seen[-10:]}")

    def alive_members(self) -> set[str]:
        return {m["node"] for m in self.command("members")["members"] if m["state"] == 0}

    def terminate(self) -> None:
        """SIGTERM: the CLI leaves gracefully and exits 0."""
        os.kill(self.proc.pid, signal.SIGTERM)


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


_CPU_GO_FLAGS = {
    "lan": {"preset": "lan"},
    "wan": {"preset": "wan"},
    "local": {"preset": "local"},
    "fast": {
        "preset": "lan",
        "probe_interval": "20ms",
        "probe_timeout": "10ms",
        "gossip_interval": "10ms",
        "suspicion_mult": "3",
        "push_pull_interval": "10s",
    },
}


def measure_cpu(preset: str, seconds: float) -> dict[str, Any]:
    """CPU one real Python member uses in a 3-member cluster with two Go peers.

    The member's own getrusage (user + system) from after its join until SIGTERM, as printed
    by `python -m gossip` in its "stopped" line.
    """
    binary = build_peer()
    flags = _CPU_GO_FLAGS[preset]
    port = free_port()
    members: list[JsonLinesProcess] = []
    try:
        members.append(GoPeer(binary, "go1", port, **flags))
        members.append(GoPeer(binary, "go2", free_port(), join=f"127.0.0.1:{port}", **flags))
        py = PyMember("py1", free_port(), "--preset", preset, "--join", f"127.0.0.1:{port}")
        members.append(py)
        py.wait_event("joined")
        time.sleep(seconds)
        py.terminate()
        stopped = py.wait_event("stopped", timeout=30)
        return {
            "preset": preset,
            "cpu_seconds": stopped["cpu_seconds"],
            "wall_seconds": stopped["wall_seconds"],
            "cpu_per_second": stopped["cpu_seconds"] / stopped["wall_seconds"],
            "false_failures": sum(1 for e in py.seen if e.get("event") == "fail"),
            "suspicions": sum(1 for e in py.seen if e.get("event") == "suspect"),
        }
    finally:
        for member in members:
            member.close()


if __name__ == "__main__":
    import sys

    # python tests/helpers/gopeer.py cpu PRESET SECONDS
    if len(sys.argv) == 4 and sys.argv[1] == "cpu":
        print(json.dumps(measure_cpu(sys.argv[2], float(sys.argv[3]))))
