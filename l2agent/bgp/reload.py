"""Apply rendered frr.conf texts to a running FRR: test, reload, debounce, keep the last good.

The thin I/O adapter between the speaker and FRR (the speaker renders, this applies)::

    reloader = FrrReloader(Path("/etc/frr"), Path("/var/run/frr"))
    outcome = await reloader.apply(text)      # ReloadOutcome; .result is a ReloadResult
    outcome = await reloader.withdraw_all()   # same sessions, no prefixes (before stopping)
    await reloader.close()

``apply`` returns once the text (or a newer one given meanwhile) has been tried; a failed
attempt is retried in the background with backoff (1, 2, 4 .. 30 s) until it succeeds or a
new text replaces it, and every attempt is reported to ``on_outcome`` (metrics, logs).
Changes are debounced on the leading edge: a change after a quiet spell is applied at once
(a new Service, a planned withdraw: no added latency); changes that arrive while a reload
runs, or within ``debounce`` seconds after one, wait and only the newest text is applied, so
a burst of service updates costs at most two reloads.

One attempt, each step an asyncio child process with a time bound (never on the loop):

1. write the text as ``frr.conf.candidate`` in the config dir; FRR's offline check
   (``vtysh --config_dir D -C -f FILE``): refused -> ``INVALID``, the last good frr.conf
   stays and FRR is not touched;
2. ``vtysh -c 'show daemons'`` must list zebra and bgpd (and bfdd when the text uses BFD):
   vtysh and ``frr-reload.py`` report success when they reach only some daemons (a vty
   socket they may not open, a daemon that did not start), so an unchecked reload can
   "apply" to nothing -> ``UNAVAILABLE``; then ``frr-reload.py --test``: fails ->
   ``UNAVAILABLE``; its difference tells which sessions a graceful-restart change must
   reset;
3. the candidate becomes ``frr.conf``; ``frr-reload.py --reload``: ok -> ``APPLIED``;
   exit 1 with the graceful-restart complaint -> ``--reload`` again and, when that
   succeeds, ``clear bgp`` for the sessions whose setting changed -> ``APPLIED_AFTER_RESET``
   (see ``reload_outcome``); anything else -> ``FAILED``: the last good text is written back
   and reloaded (best effort) and the new one retried later;
4. ``frr-reload.py`` crashed (a Python traceback in step 2 or 3, FRR 8.4's ``rm_match``
   bug, not a refusal): the change is applied in two steps, first the text without the
   ``router bgp`` contexts FRR does not run yet (``show running-config``), then the whole
   text, each tested and reloaded as above -> ``APPLIED_IN_STEPS``; when that fails too ->
   ``CRASHED`` (last good restored, retried).

``--vty_socket`` points at ``run_dir`` (where FRR's daemons put their vty sockets; the
speaker needs FRR's ``frrvty`` group to open them), ``--confdir`` at ``config_dir``,
``--rundir`` (frr-reload.py's scratch files) at ``scratch_dir``, the system temporary
directory by default (FRR's run dir belongs to FRR's user). ``vtysh.conf`` is created in the
config dir when missing (``frr-reload.py`` needs the integrated config mode).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from l2agent.bgp import _proc
from l2agent.bgp.frr_state import FrrState
from l2agent.bgp.reload_outcome import (
    ConfigDiff,
    ReloadOutcome,
    ReloadResult,
    configured_neighbors,
    crash_summary,
    is_crash,
    is_graceful_restart_quirk,
    needed_daemons,
    parse_test_output,
    redact,
    retry_delay,
    sessions_to_reset,
    without_announcements,
    without_new_routers,
)

log = logging.getLogger(__name__)

DEFAULT_CONFIG_DIR = Path("/etc/frr")
DEFAULT_RUN_DIR = Path("/var/run/frr")
FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")
CONFIG_NAME = "frr.conf"
CANDIDATE_NAME = "frr.conf.candidate"
STEP_NAME = "frr.conf.step"
VTYSH_CONF = "service integrated-vtysh-config\n"


class FrrReloader:
    """Applies frr.conf texts to the FRR whose config dir and vty socket dir are given.

    ``debounce``: the least time between the end of one attempt and the start of the next
    (the first change after a quiet spell goes at once). ``step_timeout``:
    bound of each child process (``frr-reload.py`` takes about a second per few hundred
    lines here). ``retry_base``/``retry_cap``: backoff of retries, seconds.
    ``on_outcome``: called on the loop with every attempt's outcome (keep it cheap).
    ``scratch_dir``: where frr-reload.py writes its temporary files (default: ``$TMPDIR``).
    ``python``/``reload_script``/``vtysh``/``bindir``: where FRR's tools are.
    """

    def __init__(
        self,
        config_dir: Path = DEFAULT_CONFIG_DIR,
        run_dir: Path = DEFAULT_RUN_DIR,
        *,
        debounce: float = 0.5,
        step_timeout: float = 60.0,
        retry_base: float = 1.0,
        retry_cap: float = 30.0,
        on_outcome: Callable[[ReloadOutcome], None] | None = None,
        scratch_dir: Path | None = None,
        python: str = "python3",
        reload_script: Path = FRR_RELOAD,
        vtysh: str = "vtysh",
        bindir: Path = Path("/usr/bin"),
    ) -> None:
        self.config_dir = Path(config_dir)
        self.run_dir = Path(run_dir)
        self.debounce = debounce
        self.step_timeout = step_timeout
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.on_outcome = on_outcome
        self.scratch_dir = Path(scratch_dir or tempfile.gettempdir())
        self._python = python
        self._script = reload_script
        self._vtysh = vtysh
        self._bindir = bindir
        self._desired: str | None = None
        self._generation = 0
        self._applied: str | None = None
        self._last_good: str | None = None
        self._last_outcome: ReloadOutcome | None = None
        self._waiters: list[tuple[int, asyncio.Future[ReloadOutcome]]] = []
        self._wake: asyncio.Event | None = None
        self._last_done: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- the API the speaker calls ---------------------------------------------------------

    @property
    def last_good(self) -> str | None:
        """The last text FRR accepted (None before the first success)."""
        return self._last_good

    @property
    def last_outcome(self) -> ReloadOutcome | None:
        return self._last_outcome

    @property
    def in_sync(self) -> bool:
        """FRR runs the newest text given to ``apply`` (as far as the reloader knows)."""
        return self._desired is not None and self._desired == self._applied

    async def apply(self, config: str) -> ReloadOutcome:
        """Make FRR run ``config``; returns the outcome of the attempt that covered it."""
        if self._closed:
            raise RuntimeError("FrrReloader is closed")
        if not config.strip():
            raise ValueError("an empty frr.conf cannot be applied (frr-reload.py refuses it)")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._worker(), name="frr-reloader")
        assert self._wake is not None
        self._generation += 1
        self._desired = config
        future: asyncio.Future[ReloadOutcome] = loop.create_future()
        self._waiters.append((self._generation, future))
        self._wake.set()
        return await asyncio.shield(future)

    def check(self, state: FrrState) -> bool:
        """Compare FRR's reported sessions with the applied text: when a neighbor of that text
        is missing, FRR lost its configuration (the sidecar restarted empty), so the newest
        text is applied again. Returns True when that was started. Feed it every
        ``FrrStatePoller`` reading (its ``on_state``): one comparison, no process."""
        if state.error is not None or self._applied is None or self._desired is None:
            return False
        wanted = {n for n in configured_neighbors(self._applied) if _is_address(n)}
        present = {s.address for s in state.sessions}
        if wanted <= present:
            return False
        log.warning("FRR lacks sessions it was given (%s): applying frr.conf again",
                    ", ".join(sorted(wanted - present)))  # fmt: skip
        self._applied = None
        if self._wake is not None:
            self._wake.set()
        return True

    async def withdraw_all(self) -> ReloadOutcome:
        """Apply the current text without its ``network`` lines: sessions stay up, every
        prefix is withdrawn (the planned-stop step before the node stops serving)."""
        base = self._desired if self._desired is not None else self._last_good
        if base is None:
            raise RuntimeError("nothing was applied yet: there is nothing to withdraw")
        return await self.apply(without_announcements(base))

    async def close(self) -> None:
        """Stop the worker (an attempt in flight is cancelled and its child killed)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for _gen, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()

    # -- the worker ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if self._last_done is not None:
                await asyncio.sleep(max(0.0, self._last_done + self.debounce - loop.time()))
            attempt = 0
            while True:
                generation, text = self._generation, self._desired
                assert text is not None
                self._wake.clear()
                attempt += 1
                outcome = await self._attempt(text, generation, attempt)
                if outcome.result is not ReloadResult.UNCHANGED:
                    self._last_done = loop.time()
                self._report(outcome)
                if self._wake.is_set() or not outcome.result.retried:
                    break
                delay = retry_delay(attempt, self.retry_base, self.retry_cap)
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    continue
                break  # a new text arrived: debounce it like any change

    def _report(self, outcome: ReloadOutcome) -> None:
        self._last_outcome = outcome
        level = logging.INFO if outcome.result.ok else logging.WARNING
        log.log(
            level,
            "frr reload %s (generation %d, attempt %d, %.2f s)%s%s",
            outcome.result.value,
            outcome.generation,
            outcome.attempt,
            outcome.seconds,
            f", sessions reset: {', '.join(outcome.reset_sessions)}"
            if outcome.reset_sessions
            else "",
            f": {outcome.detail}" if outcome.detail else "",
        )
        keep = []
        for generation, future in self._waiters:
            if generation <= outcome.generation:
                if not future.done():
                    future.set_result(outcome)
            else:
                keep.append((generation, future))
        self._waiters = keep
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:
                log.exception("frr reload outcome callback failed")

    async def _attempt(self, text: str, generation: int, attempt: int) -> ReloadOutcome:
        started = time.monotonic()

        def done(
            result: ReloadResult, detail: str = "", reset: Sequence[str] = ()
        ) -> ReloadOutcome:
            return ReloadOutcome(
                result=result,
                generation=generation,
                seconds=time.monotonic() - started,
                detail=redact(detail),
                reset_sessions=tuple(sorted(reset)),
                attempt=attempt,
            )

        if text == self._applied:
            return done(ReloadResult.UNCHANGED)
        try:
            return await self._steps(text, done)
        except _proc.StepTimeout as exc:
            await self._restore()
            return done(ReloadResult.TIMEOUT, str(exc))
        except OSError as exc:  # a missing tool, an unwritable config dir
            return done(ReloadResult.UNAVAILABLE, f"{type(exc).__name__}: {exc}")

    async def _steps(self, text: str, done: Callable[..., ReloadOutcome]) -> ReloadOutcome:
        self._prepare_dir()
        candidate = self.config_dir / CANDIDATE_NAME
        target = self.config_dir / CONFIG_NAME
        self._write(candidate, text)
        check = await self._run(
            [self._vtysh, "--config_dir", str(self.config_dir), "-C", "-f", str(candidate)]
        )
        if check.returncode != 0:
            candidate.unlink(missing_ok=True)
            return done(ReloadResult.INVALID, check.output)
        missing = await self._missing_daemons(text)
        if missing:
            candidate.unlink(missing_ok=True)
            return done(ReloadResult.UNAVAILABLE, f"vtysh cannot reach {', '.join(missing)}")
        test = await self._run(self._reload_argv("test", candidate))
        if test.returncode != 0:
            candidate.unlink(missing_ok=True)
            if is_crash(test.output):
                return await self._in_two_steps(text, test.output, done, touched=False)
            return done(ReloadResult.UNAVAILABLE, test.output)
        os.replace(candidate, target)
        step = await self._reload(target, text, test)
        if step.ok:
            self._accepted(text)
            if step.reset is None:
                return done(ReloadResult.APPLIED)
            return done(ReloadResult.APPLIED_AFTER_RESET, reset=step.reset)
        if is_crash(step.output):
            return await self._in_two_steps(text, step.output, done, touched=True)
        await self._restore()
        return done(ReloadResult.FAILED, step.output)

    async def _reload(self, path: Path, text: str, test: _proc.Finished) -> _Step:
        """``--reload`` ``path`` (holding ``text``; ``test``: its ``--test`` run), with the
        graceful-restart quirk handled: reload again, then reset the changed sessions."""
        reload = await self._run(self._reload_argv("reload", path))
        if reload.returncode == 0:
            return _Step(True, reload.output)
        if not is_graceful_restart_quirk(reload.output):
            return _Step(False, reload.output)
        again = await self._run(self._reload_argv("reload", path))
        if again.returncode != 0:
            return _Step(False, again.output)
        reset = self._resets(parse_test_output(test.stdout), text, test.truncated)
        for peer in sorted(reset):
            await self._run(self._vtysh_argv(f"clear bgp {peer}"))
        return _Step(True, again.output, tuple(sorted(reset)))

    async def _in_two_steps(
        self, text: str, crash: str, done: Callable[..., ReloadOutcome], *, touched: bool
    ) -> ReloadOutcome:
        """frr-reload.py crashed on this change (``touched``: during ``--reload``, so FRR may
        run part of it): apply the text without its new ``router bgp`` contexts, then the
        whole text. Each step is tested and reloaded like any change."""
        why = crash_summary(crash)
        running = await self._run(self._vtysh_argv("show running-config"))
        first = without_new_routers(text, running.stdout) if running.returncode == 0 else text
        if first == text:
            log.warning("frr-reload.py crashed (%s); no new router to set apart", why)
            if touched:
                await self._restore()
            return done(ReloadResult.CRASHED, crash)
        log.warning("frr-reload.py crashed (%s): applying the change in two steps", why)
        resets: set[str] = set()
        for step_text, name in ((first, STEP_NAME), (text, CONFIG_NAME)):
            path = self.config_dir / name
            self._write(path, step_text)
            test = await self._run(self._reload_argv("test", path))
            step = await self._reload(path, step_text, test) if test.returncode == 0 else None
            if step is None or not step.ok:
                output = test.output if step is None else step.output
                await self._restore()
                (self.config_dir / STEP_NAME).unlink(missing_ok=True)
                result = ReloadResult.CRASHED if is_crash(output) else ReloadResult.FAILED
                return done(result, output)
            resets.update(step.reset or ())
        (self.config_dir / STEP_NAME).unlink(missing_ok=True)
        self._accepted(text)
        return done(ReloadResult.APPLIED_IN_STEPS, f"frr-reload.py crashed: {why}", resets)

    async def _missing_daemons(self, text: str) -> list[str]:
        """The daemons ``text`` needs that vtysh cannot reach (``show daemons``)."""
        shown = await self._run(self._vtysh_argv("show daemons"))
        reached = set(shown.stdout.split()) if shown.returncode == 0 else set()
        return [d for d in needed_daemons(text) if d not in reached]

    @staticmethod
    def _resets(diff: ConfigDiff, text: str, truncated: bool) -> frozenset[str]:
        # A cut-off difference cannot say which sessions changed: reset them all.
        return configured_neighbors(text) if truncated else sessions_to_reset(diff, text)

    def _accepted(self, text: str) -> None:
        self._applied = text
        self._last_good = text

    async def _restore(self) -> None:
        """Put the last good text back on disk and (best effort) into FRR."""
        self._applied = None
        if self._last_good is None:
            return
        target = self.config_dir / CONFIG_NAME
        try:
            self._write(target, self._last_good)
            back = await self._run(self._reload_argv("reload", target))
        except (OSError, _proc.StepTimeout) as exc:
            log.warning("could not restore the last good frr.conf: %s", exc)
            return
        if back.returncode == 0 or is_graceful_restart_quirk(back.output):
            self._applied = self._last_good

    # -- processes and files --------------------------------------------------------------

    async def _run(self, argv: Sequence[str]) -> _proc.Finished:
        return await _proc.run(argv, self.step_timeout)

    def _reload_argv(self, mode: str, config: Path) -> list[str]:
        return [
            self._python, str(self._script), f"--{mode}", "--stdout", "--log-level", "warning",
            "--vty_socket", str(self.run_dir), "--confdir", str(self.config_dir),
            "--rundir", str(self.scratch_dir), "--bindir", str(self._bindir), str(config),
        ]  # fmt: skip

    def _vtysh_argv(self, command: str) -> list[str]:
        return [self._vtysh, "--vty_socket", str(self.run_dir),
                "--config_dir", str(self.config_dir), "-c", command]  # fmt: skip

    def _prepare_dir(self) -> None:
        vtysh_conf = self.config_dir / "vtysh.conf"
        if not vtysh_conf.exists():
            self._write(vtysh_conf, VTYSH_CONF)

    def _write(self, path: Path, text: str) -> None:
        """Atomic write, mode 0640, owned like the directory (FRR's user must read it; the
        file holds BGP passwords, so nobody else may)."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            st = os.stat(self.config_dir)
            if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
                try:  # needs CAP_CHOWN, which the speaker's container does not have
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                except PermissionError:
                    pass
        os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class _Step:
    """One ``--reload`` (with the graceful-restart quirk handled): ``reset`` names the
    sessions reset for the quirk (None: no quirk)."""

    ok: bool
    output: str
    reset: tuple[str, ...] | None = None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
