"""One bounded child process for the FRR adapters: asyncio, a time bound, an output bound.

The speaker's event loop is its heartbeat, so FRR's tools (``frr-reload.py`` runs for seconds
on a large config; ``vtysh`` can hang while a daemon is stuck) never run on it: they run as
asyncio child processes, are killed when they overrun ``timeout``, and at most ``limit``
bytes of each output stream are kept (the rest is read and dropped so the child never blocks).

Children run as background work: ``SCHED_OTHER`` at ``nice`` (10 by default) whatever the
speaker's own policy. A speaker at SCHED_RR (``--realtime-priority``) would otherwise hand
its real-time class to ``frr-reload.py`` and its vtysh children, about a CPU-second of
Python that then starves FRR's bfdd and the router's BFD: measured in the lab, every reload
from such a speaker flapped 50 ms BFD sessions (``control-expired``) and reset BGP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

OUTPUT_LIMIT = 8 * 1024 * 1024


class StepTimeout(Exception):
    """The child ran longer than its bound and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"{argv[0]} ran over {timeout:.1f} s and was killed")
        self.argv = tuple(argv)
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class Finished:
    """A child that exited: its return code and (bounded) outputs."""

    returncode: int
    stdout: str
    stderr: str
    truncated: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def _drain(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    if stream is None:
        return b"", False
    kept = bytearray()
    dropped = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            dropped = True
    return bytes(kept), dropped


BACKGROUND_NICE = 10


def _background(pid: int, nice: int) -> None:
    """Make ``pid`` ordinary background work: SCHED_OTHER at ``nice``. Done from the parent
    right after the exec, before the child has started anything of its own (no preexec_fn:
    the speaker has threads)."""
    with contextlib.suppress(OSError):
        if os.sched_getscheduler(pid) != os.SCHED_OTHER:
            os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)


async def run(
    argv: Sequence[str],
    timeout: float,
    *,
    limit: int = OUTPUT_LIMIT,
    stdin: bytes | None = None,
    nice: int = BACKGROUND_NICE,
) -> Finished:
    """Run ``argv`` (no shell) as background work (see the module docstring); raise
    ``StepTimeout`` after ``timeout`` seconds (the child is killed and reaped);
    ``FileNotFoundError`` if the program does not exist."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _background(proc.pid, nice)
    try:
        if stdin is not None and proc.stdin is not None:
            proc.stdin.write(stdin)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
            proc.stdin.close()
        async with asyncio.timeout(timeout):
            (out, cut_out), (err, cut_err) = await asyncio.gather(
                _drain(proc.stdout, limit), _drain(proc.stderr, limit)
            )
            returncode = await proc.wait()
    except TimeoutError:
        await _kill(proc)
        raise StepTimeout(argv, timeout) from None
    except BaseException:  # cancelled: never leave the child behind
        await _kill(proc)
        raise
    return Finished(
        returncode=returncode,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        truncated=cut_out or cut_err,
    )


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
