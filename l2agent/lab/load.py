"""Load for lab experiments: busy CPUs and ``trafgen`` floods, started and stopped by PID.

Used by the flood tests and ``bench/responder_rate.py`` alike, so both measure the same
thing. ``trafgen`` (netsniff-ng) forks its workers, so it runs in a session of its own and
the whole process group is stopped; it is told not to touch host-wide settings
(``--no-sock-mem``, ``--notouch-irq``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from l2agent.lab.netns import Lab

__all__ = ["busy_cpus", "stop_group", "trafgen", "trafgen_config"]

_SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy_cpus(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes spinning at normal priority for the duration of the block."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen([sys.executable, "-c", _SPIN], preexec_fn=_die_with_parent)
            )
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=5)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def trafgen_config(frame: bytes, directory: Path | None = None) -> Path:
    """A trafgen packet configuration sending ``frame`` as is."""
    where = directory or Path(tempfile.mkdtemp(prefix="l2trafgen-"))
    path = where / f"frame-{frame.hex()[:32]}-{len(frame)}.cfg"
    path.write_text("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")
    return path


def trafgen(
    lab: Lab,
    role: str,
    frame: bytes,
    rate: int,
    seconds: float,
    directory: Path | None = None,
    realtime: int = 0,
) -> float:
    """Send ``frame`` from ``role``'s eth0 with trafgen on one CPU at ``rate`` frames/s
    (0 = as fast as it can) for ``seconds``; returns the seconds it ran. ``realtime``: run
    it at that SCHED_RR priority (``chrt``), so other load on the machine cannot slow it."""
    cfg = trafgen_config(frame, directory)
    argv = ["chrt", "-r", str(realtime)] if realtime else []
    argv += ["trafgen", "-o", "eth0", "-i", str(cfg), "-P", "1"]
    argv += ["--no-sock-mem", "--notouch-irq", "--no-cpu-stats"]
    if rate:
        argv += ["-b", f"{rate}pps", "-n", str(int(rate * seconds))]
    start = time.perf_counter()
    proc = lab.spawn(
        role, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        if rate:
            proc.wait(timeout=seconds * 3 + 10)
        else:
            time.sleep(seconds)
    finally:
        stop_group(proc)
        lab.stop(proc)
    return time.perf_counter() - start


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGINT to the process group ``proc`` leads, then SIGKILL if a member lingers."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
