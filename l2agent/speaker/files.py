"""The static configuration source: files and directories given with `--config`.

Reads them (`l2agent.static`), builds the state and offers it to the speaker, on start, on
SIGHUP and whenever a file (or a directory's listing) changes. A file that cannot be read
or parsed keeps the last good configuration and is retried when it changes again, not on
every check.

Reading and building run off the event loop (a worker thread): a huge file must not hold
the loop, whose gossip answers are the node's heartbeat. Whatever a file holds, the
watcher survives it: every failure is a rejected configuration, logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from l2agent.errors import ConfigError
from l2agent.model.snapshot import BuildResult, build_state
from l2agent.static import config_files, load_yaml_files

__all__ = ["ConfigFiles"]

log = logging.getLogger(__name__)


class ConfigFiles:
    """`paths` (files or directories) offered to `offer` (the speaker's `offer`)."""

    def __init__(
        self,
        paths: Sequence[Path],
        offer: Callable[[BuildResult], bool],
        *,
        on_unreadable: Callable[[], None] | None = None,
        check_interval: float = 1.0,
    ) -> None:
        self.paths = tuple(paths)
        self._offer = offer
        self._on_unreadable = on_unreadable
        self.check_interval = check_interval
        """Seconds between looks at the modification times (SIGHUP is instant)."""
        self._stamps: dict[Path, float] = {}
        self._loading: asyncio.Task[bool] | None = None
        self._again = False

    def read(self) -> BuildResult | ConfigError:
        """Read, parse and build everything (no event loop needed: a worker thread runs
        it); a failure of any kind comes back as the error, never raised."""
        # Remember what we read, good or bad: a bad file is retried when it changes again
        # (or on SIGHUP), not every second.
        self._stamps = self._current_stamps()
        try:
            return build_state(load_yaml_files(self.paths))
        except ConfigError as exc:
            return exc
        except Exception as exc:  # a configuration must never take the speaker down
            log.exception("unexpected failure reading the configuration")
            return ConfigError(f"cannot load: {type(exc).__name__}: {exc}")

    def load(self) -> bool:
        """(Re)read everything here and now and offer it; True if it could be read (a bad
        object in it costs only itself), False when a file cannot be read or parsed."""
        return self._apply(self.read())

    async def load_off_loop(self) -> bool:
        """`load`, with the reading and parsing in a worker thread."""
        return self._apply(await asyncio.to_thread(self.read))

    def _apply(self, result: BuildResult | ConfigError) -> bool:
        if isinstance(result, ConfigError):
            log.error("config rejected, keeping the last good one: %s", result)
            if self._on_unreadable is not None:
                self._on_unreadable()
            return False
        whole = self._offer(result)
        log.info(
            "config loaded from %s%s",
            ", ".join(str(p) for p in self.paths),
            "" if whole else " (objects left out: see above)",
        )
        return True

    def reload(self) -> None:
        """SIGHUP: read everything again, changed or not (off the loop; a reload asked
        while one runs happens once more when it ends)."""
        if self._loading is not None and not self._loading.done():
            self._again = True
            return
        self._loading = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> bool:
        applied = False
        while True:
            self._again = False
            try:
                applied = await self.load_off_loop()
            except Exception:
                log.exception("configuration reload failed")
            if not self._again:
                return applied

    def changed(self) -> bool:
        """A file's (or a directory listing's) modification time differs from the last load."""
        return self._current_stamps() != self._stamps

    async def watch(self) -> None:
        """Reload whenever something changed (runs until cancelled, whatever a file holds)."""
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                if self.changed():
                    await self.load_off_loop()
            except Exception:  # the watcher must outlive any file
                log.exception("configuration watch step failed; watching on")

    def _current_stamps(self) -> dict[Path, float]:
        try:
            listed = config_files(p for p in self.paths if p.is_dir())
        except OSError:  # a directory vanished between the two looks: next check sees it
            listed = []
        return {p: _mtime(p) for p in [*self.paths, *listed]}


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0
