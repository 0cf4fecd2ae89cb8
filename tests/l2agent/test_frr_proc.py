"""The FRR adapters' child processes: killed past their time bound, output bounded."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading

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


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_RR needs CAP_SYS_NICE")
def test_children_of_a_realtime_speaker_run_as_background_work() -> None:
    """A speaker at SCHED_RR must not hand its real-time class to frr-reload.py."""
    seen: dict[str, int] = {}

    def speaker_thread() -> None:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))  # this thread only

        async def scenario() -> None:
            task = asyncio.ensure_future(_proc.run(["sleep", "1"], 10))
            for _ in range(100):
                await asyncio.sleep(0.01)
                pids = [p for p in os.listdir("/proc") if p.isdigit() and _comm(p) == "sleep"
                        and _ppid(p) == os.getpid()]  # fmt: skip
                if pids:
                    pid = int(pids[0])
                    seen["policy"] = os.sched_getscheduler(pid)
                    seen["nice"] = os.getpriority(os.PRIO_PROCESS, pid)
                    break
            await task

        asyncio.run(scenario())

    t = threading.Thread(target=speaker_thread)
    t.start()
    t.join(30)
    assert seen == {"policy": os.SCHED_OTHER, "nice": _proc.BACKGROUND_NICE}


def _ppid(pid: str) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])
