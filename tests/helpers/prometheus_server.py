"""A real Prometheus (Debian's `prometheus` binary) for tests: scrape targets, load rules, query.

    with PrometheusServer(workdir, {"metallb-speaker": ["127.0.0.1:7472"]}, rule_files) as prom:
        prom.wait_for_scrapes(4)
        prom.query("l2agent_ip_owner == 1")

Listens on 127.0.0.1 only, keeps its data in ``workdir``, and is stopped by PID (terminate,
then kill) on exit, also when the test fails. Tests skip when ``PROMETHEUS`` is None.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from l2agent.lab.netns_thread import NetnsThread

PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], limit: float = 60.0) -> None:
    """Poll ``check()`` every 250 ms until true; a generous bound, for live processes."""
    deadline = time.monotonic() + limit
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError, KeyError, AssertionError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(0.25)


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (job name -> host:port list) every second."""

    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[Path] = (),
        labels: Mapping[str, str] | None = None,
        scrape_interval: str = "1s",
        netns: str | None = None,
    ) -> None:
        """``netns``: run Prometheus (and our HTTP queries to it) in that lab namespace, so
        it can scrape speakers that live there."""
        if PROMETHEUS is None:
            raise RuntimeError("prometheus binary missing (Debian package `prometheus`)")
        self.workdir = workdir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._netns = netns
        self._thread = NetnsThread(netns) if netns else None
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": list(hosts), "labels": dict(labels or {})}],
                }
                for job, hosts in targets.items()
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.config_path.write_text(yaml.safe_dump(config))

    def __enter__(self) -> PrometheusServer:
        assert PROMETHEUS is not None
        with self.log_path.open("wb") as log:
            prefix = ["ip", "netns", "exec", self._netns] if self._netns else []
            self._proc = subprocess.Popen(
                [
                    *prefix,
                    PROMETHEUS,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until("prometheus ready", self._ready, limit=30)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the process we started (by its PID), then forget it."""
        proc, self._proc = self._proc, None
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _ready(self) -> bool:
        self._check_alive()
        self._get(self.base + "/-/ready", 2)
        return True

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prometheus exited:\n{tail}")

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an HTTP API path; returns the decoded JSON document."""
        url = self.base + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        doc: dict[str, Any] = json.loads(self._get(url, 10))
        return doc

    def _get(self, url: str, timeout: float) -> bytes:
        def fetch() -> bytes:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bytes(resp.read())

        if self._thread is not None:
            return self._thread.call(fetch, timeout=timeout + 5)
        return fetch()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; raises AssertionError if Prometheus rejects the expression."""
        doc = self.api("/api/v1/query", query=expr)
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def wait_for_scrapes(self, count: int, targets: int | None = None, limit: float = 60.0) -> None:
        """Wait until every target is up and has been scraped at least ``count`` times."""

        def enough() -> bool:
            self._check_alive()
            up = self.query(f"min(count_over_time(up[5m])) >= {count}")
            healthy = self.query("count(up == 1)")
            total = targets if targets is not None else len(self.query("up"))
            return bool(up) and bool(healthy) and int(float(healthy[0]["value"][1])) == total

        wait_until(f"{count} scrapes of every target", enough, limit)
