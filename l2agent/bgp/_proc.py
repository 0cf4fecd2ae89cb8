"""One bounded child process for the FRR adapters: asyncio, a time bound, an output bound.

The speaker's event loop is its heartbeat, so FRR's tools (``frr-reload.py`` runs for seconds
on a large config; ``vtysh`` can hang while a daemon is stuck) never run on it: they run as
asyncio child processes, are killed when they overrun ``timeout``, and at most ``limit``
bytes of each output stream are kept (the rest is read and dropped so the child never blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
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


async def run(
    argv: Sequence[str], timeout: float, *, limit: int = OUTPUT_LIMIT, stdin: bytes | None = None
) -> Finished:
    """Run ``argv`` (no shell); raise ``StepTimeout`` after ``timeout`` seconds (the child is
    killed and reaped); ``FileNotFoundError`` if the program does not exist."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
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
