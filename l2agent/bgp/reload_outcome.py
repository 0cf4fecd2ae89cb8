"""What an FRR reload came to, and the pure rules the reloader decides by.

Pure (the reloader in ``l2agent.bgp.reload`` runs the processes): the result enum the speaker
and the metrics see, ``frr-reload.py --test``'s difference parsed into values, the
graceful-restart quirk and which sessions it must reset, the config that withdraws every
prefix, the retry backoff, and password redaction for logs.

The graceful-restart quirk (FRR 8.4, MetalLB PR #2386): ``frr-reload.py --reload`` applies
the difference in two passes; a ``bgp graceful-restart*`` or ``neighbor X graceful-restart``
line applied in the first pass is refused in the second ("The Graceful Restart command used
is not valid at this moment"), so the script exits 1 although the configuration is in
place. FRR also only uses a new graceful-restart setting on a session after it is reset.
The reloader therefore runs ``--reload`` once more (a fixed point: the setting no longer
differs) and, when that succeeds, resets the sessions whose setting changed (``clear bgp``),
except sessions this reload created.

The crash (FRR 8.4): ``frr-reload.py`` dies with a traceback (``UnboundLocalError:
rm_match`` in ``ignore_delete_re_add_lines``) when one difference deletes a ``neighbor X
route-map`` line and adds a whole new ``router bgp`` context (a peer moved into a new VRF),
in ``--test`` and ``--reload`` alike. That is no refusal of the text: ``is_crash`` tells
the two apart, and the reloader applies such a change in two steps, first everything but
the new ``router bgp`` contexts (``without_new_routers``), then the whole text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ConfigDiff",
    "ReloadOutcome",
    "ReloadResult",
    "configured_neighbors",
    "crash_summary",
    "is_crash",
    "is_graceful_restart_quirk",
    "needed_daemons",
    "parse_test_output",
    "redact",
    "retry_delay",
    "sessions_to_reset",
    "without_announcements",
    "without_new_routers",
]


class ReloadResult(enum.Enum):
    """How one attempt to make FRR run a configuration ended (also the metric label)."""

    APPLIED = "applied"
    """``frr-reload.py --reload`` succeeded."""
    APPLIED_AFTER_RESET = "applied_after_reset"
    """The graceful-restart quirk: applied, confirmed by a second reload, sessions whose
    graceful-restart setting changed were reset."""
    UNCHANGED = "unchanged"
    """FRR already runs exactly this text (nothing was run)."""
    INVALID = "invalid"
    """FRR's own offline check refused the text; the last good config stays; not retried
    until the text changes."""
    FAILED = "failed"
    """``--reload`` failed; the last good config was put back; retried with backoff."""
    UNAVAILABLE = "unavailable"
    """FRR's daemons did not answer (``--test`` failed on a valid text); retried."""
    TIMEOUT = "timeout"
    """A step overran its time bound and was killed; retried."""
    APPLIED_IN_STEPS = "applied_in_steps"
    """``frr-reload.py`` crashed on the change (a traceback, not a refusal); applied in two
    steps: the text without its new ``router bgp`` contexts, then the whole text."""
    CRASHED = "crashed"
    """``frr-reload.py`` crashed and applying in two steps did not help; the last good
    config was put back; retried with backoff."""

    @property
    def ok(self) -> bool:
        """FRR runs the requested configuration."""
        return self in (ReloadResult.APPLIED, ReloadResult.APPLIED_AFTER_RESET,
                        ReloadResult.UNCHANGED, ReloadResult.APPLIED_IN_STEPS)  # fmt: skip

    @property
    def retried(self) -> bool:
        """The reloader tries the same text again later by itself."""
        return self in (ReloadResult.FAILED, ReloadResult.UNAVAILABLE, ReloadResult.TIMEOUT,
                        ReloadResult.CRASHED)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """One attempt: its result, the config generation it was for, how long it took."""

    result: ReloadResult
    generation: int
    """Counts ``apply`` calls; the attempt applied the text of this call (newer calls
    supersede older ones that were still waiting)."""
    seconds: float
    detail: str = ""
    """Bounded, password-redacted output of the failing step (empty on success)."""
    reset_sessions: tuple[str, ...] = ()
    """Sessions reset for the graceful-restart quirk."""
    attempt: int = 1
    """1 for the first try of this generation, 2.. for retries."""


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """``frr-reload.py --test``'s difference between the running config and a file.

    Each line is kept with its context (``router bgp 64512`` / ``address-family ...``) as a
    tuple of stripped lines; lines to delete carry FRR's ``no`` prefix as printed.
    """

    to_delete: tuple[tuple[str, ...], ...] = ()
    to_add: tuple[tuple[str, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.to_delete and not self.to_add


_HEADERS = {"Lines To Delete": "delete", "Lines To Add": "add"}


def _entries(lines: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Lines with their context: indentation says what is inside what."""
    out: list[tuple[str, ...]] = []
    stack: list[tuple[int, str]] = []
    for raw in lines:
        if not raw.strip() or set(raw.strip()) == {"="}:
            continue
        indent = len(raw) - len(raw.lstrip())
        text = raw.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        out.append((*(t for _, t in stack), text))
        stack.append((indent, text))
    return tuple(out)


def parse_test_output(stdout: str) -> ConfigDiff:
    """Parse ``frr-reload.py --test``'s stdout (its log lines go to stderr)."""
    sections: dict[str, list[str]] = {"delete": [], "add": []}
    current: list[str] | None = None
    for line in stdout.splitlines():
        key = _HEADERS.get(line.strip())
        if key is not None:
            current = sections[key]
            continue
        if current is not None:
            current.append(line)
    return ConfigDiff(to_delete=_entries(sections["delete"]), to_add=_entries(sections["add"]))


_NEIGHBOR_REMOTE_AS = re.compile(r"^\s*neighbor\s+(\S+)\s+remote-as\s")
_NEIGHBOR_GR = re.compile(r"^(?:no\s+)?neighbor\s+(\S+)\s+graceful-restart")
_ROUTER_GR = re.compile(r"^(?:no\s+)?bgp\s+graceful-restart(?!\s+preserve-fw-state)")
_NETWORK = re.compile(r"^\s*network\s+\S+")
_PASSWORD = re.compile(r"(password\s+)\S+")
_QUIRK_MARKERS = (
    "The Graceful Restart command used is not valid at this moment",
    "Graceful restart configuration changed",
)


def configured_neighbors(config: str) -> frozenset[str]:
    """Neighbors a config text defines (``neighbor X remote-as ...``)."""
    out = set()
    for line in config.splitlines():
        match = _NEIGHBOR_REMOTE_AS.match(line)
        if match:
            out.add(match.group(1))
    return frozenset(out)


_BFD = re.compile(r"^\s*(bfd\s*$|neighbor\s+\S+\s+bfd\b)", re.MULTILINE)


def needed_daemons(config: str) -> tuple[str, ...]:
    """The FRR daemons a config text needs running: zebra and bgpd always, bfdd when any
    line asks for BFD."""
    return ("zebra", "bgpd", "bfdd") if _BFD.search(config) else ("zebra", "bgpd")


def is_graceful_restart_quirk(output: str) -> bool:
    """True when a failed ``--reload`` printed the graceful-restart complaint."""
    return any(marker in output for marker in _QUIRK_MARKERS)


_TRACEBACK = "Traceback (most recent call last):"
_ROUTER_BGP = re.compile(r"^router bgp \S+")


def is_crash(output: str) -> bool:
    """True when ``frr-reload.py`` died with a Python traceback (a bug in the script) rather
    than refusing the text (FRR's error lines, exit 1, no traceback)."""
    return _TRACEBACK in output


def crash_summary(output: str) -> str:
    """The traceback's last line (``UnboundLocalError: ...``), for logs and outcomes."""
    tail = output[output.rfind(_TRACEBACK) :] if _TRACEBACK in output else output
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _router_headers(config: str) -> set[str]:
    return {line.strip() for line in config.splitlines() if _ROUTER_BGP.match(line)}


def without_new_routers(config: str, running: str) -> str:
    """``config`` without its ``router bgp`` contexts (header to ``exit``) whose header line
    ``running`` (FRR's ``show running-config``) does not have: the first of the two steps
    that get past the crash (``is_crash``). Returns ``config`` unchanged when it adds no
    router: the crash then has another cause."""
    present = _router_headers(running)
    kept: list[str] = []
    skipping = False
    for line in config.splitlines():
        if skipping:
            if not line.startswith((" ", "\t")):
                skipping = False
                if line.strip() == "exit":
                    continue
            else:
                continue
        if _ROUTER_BGP.match(line) and line.strip() not in present:
            skipping = True
            continue
        kept.append(line)
    return "\n".join(kept) + ("\n" if config.endswith("\n") else "")


def sessions_to_reset(diff: ConfigDiff, config: str) -> frozenset[str]:
    """The neighbors of ``config`` whose graceful-restart setting ``diff`` changes (all of
    them for a router-wide change), minus the neighbors ``diff`` creates."""
    neighbors = configured_neighbors(config)
    created = set()
    for entry in diff.to_add:
        match = _NEIGHBOR_REMOTE_AS.match(entry[-1])
        if match:
            created.add(match.group(1))
    changed: set[str] = set()
    for entry in (*diff.to_delete, *diff.to_add):
        line = entry[-1]
        if _ROUTER_GR.match(line):
            changed |= neighbors
        match = _NEIGHBOR_GR.match(line)
        if match:
            changed.add(match.group(1))
    return frozenset((changed & neighbors) - created)


def without_announcements(config: str) -> str:
    """``config`` with every ``network`` line dropped: the same sessions, nothing announced
    (what a node renders before it stops serving, so peers move traffic away first)."""
    kept = [line for line in config.splitlines() if not _NETWORK.match(line)]
    return "\n".join(kept) + ("\n" if config.endswith("\n") else "")


def retry_delay(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds before retry number ``attempt`` (1-based): base, 2 x base, ... up to ``cap``."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return float(min(cap, base * 2 ** min(attempt - 1, 30)))


def redact(text: str, limit: int = 4000) -> str:
    """Output fit for a log line: passwords hidden, at most ``limit`` characters (the tail,
    where frr-reload.py says what failed)."""
    clean = _PASSWORD.sub(r"\1<redacted>", text)
    return clean if len(clean) <= limit else "..." + clean[-limit:]
