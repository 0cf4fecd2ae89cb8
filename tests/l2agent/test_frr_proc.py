"""The FRR adapters' child processes: killed past their time bound, output bounded."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from l2agent.bgp import _proc


def test_overrun_is_killed_and_reaped() -> None:
    async def scenario() -> int:
        before = set(os.listdir("/proc"))
        with pytest.raises(_proc.StepTimeout):
            await _proc.run(["sleep", "30"], 0.2)
        after = {p for p in os.listdir("/proc") if p.isdigit()} - before
        return sum(1 for p in after if _comm(p) == "sleep")

    assert asyncio.run(scenario()) == 0


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def test_output_is_bounded_and_the_child_still_finishes() -> None:
    done = asyncio.run(_proc.run(["head", "-c", "300000", "/dev/zero"], 10, limit=1000))
    assert done.returncode == 0 and done.truncated and len(done.stdout) == 1000


def test_stdin_and_exit_code() -> None:
    assert shutil.which("sh")
    done = asyncio.run(_proc.run(["sh", "-c", "cat; exit 3"], 10, stdin=b"hello"))
    assert (done.returncode, done.stdout, done.truncated) == (3, "hello", False)
