"""Run the lab's speakers with exactly the privileges the shipped DaemonSet gives them.

What is shipped is what is measured: `deploy/speaker.yaml` runs the speaker as root with
every capability dropped but the ones it adds, and with `no_new_privs`
(`allowPrivilegeEscalation: false`). `daemonset_wrapper()` reads that securityContext and
returns the `setpriv` command line that puts a lab speaker in the same state: bounding set
reduced to those capabilities (root's permitted and effective sets follow it at exec),
inheritable and ambient sets empty, no_new_privs set. The container runtime's seccomp
profile (RuntimeDefault) and read-only root are not reproduced; neither bears on timing.
`process_privileges(pid)` reads back what a running speaker holds, for the results.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PRIVILEGES", "SPEAKER_MANIFEST", "daemonset_wrapper", "process_privileges"]

SPEAKER_MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "speaker.yaml"
PRIVILEGES = ("daemonset", "root")
"""`--privileges` choices: the DaemonSet's (default) or the lab's full root."""

# linux/capability.h numbers of the capabilities a manifest may name (append as needed).
_CAP_BITS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11,
    "NET_ADMIN": 12,
    "NET_RAW": 13,
    "IPC_LOCK": 14,
    "SYS_CHROOT": 18,
    "SYS_PTRACE": 19,
    "SYS_ADMIN": 21,
    "SYS_NICE": 23,
    "SYS_RESOURCE": 24,
}
_BITS_CAP = {bit: name for name, bit in _CAP_BITS.items()}


def speaker_security_context(manifest: Path = SPEAKER_MANIFEST) -> dict[str, Any]:
    """The speaker container's securityContext in the DaemonSet manifest."""
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "DaemonSet":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c["name"] == "speaker":
                    return dict(c.get("securityContext") or {})
    raise ValueError(f"no speaker container in a DaemonSet of {manifest}")


def daemonset_wrapper(manifest: Path = SPEAKER_MANIFEST) -> list[str]:
    """`setpriv ... --` giving a root process the DaemonSet's capabilities and nothing else."""
    sc = speaker_security_context(manifest)
    caps = sc.get("capabilities") or {}
    if caps.get("drop") != ["ALL"]:
        raise ValueError(f"expected capabilities.drop [ALL] in {manifest}, got {caps}")
    if sc.get("runAsUser", 0) != 0 or sc.get("privileged"):
        raise ValueError(f"the lab reproduces root with dropped capabilities only: {sc}")
    added = [str(c).upper().removeprefix("CAP_") for c in caps.get("add") or []]
    unknown = [c for c in added if c not in _CAP_BITS]
    if unknown:
        raise ValueError(f"capabilities {unknown} unknown to bench/_privileges.py")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("setpriv missing (Debian package util-linux)")
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in added)])
    argv = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set={bounding}"]
    if sc.get("allowPrivilegeEscalation") is False:
        argv.append("--no-new-privs")
    return [*argv, "--"]


def _caps(mask: int) -> list[str]:
    return sorted(_BITS_CAP.get(b, f"bit{b}") for b in range(64) if mask >> b & 1)


_RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)


def process_privileges(pid: int) -> dict[str, Any]:
    """What a running process holds: effective capabilities, no_new_privs, the
    scheduling policy and priority (SCHED_RR only when SYS_NICE did its job)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    raw = os.sched_getscheduler(pid)
    # the speaker sets SCHED_RESET_ON_FORK with SCHED_RR (its children start at SCHED_OTHER);
    # the kernel reports it or-ed into the policy
    policy = raw & ~_RESET_ON_FORK
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO"}
    return {
        "effective_capabilities": _caps(int(fields["CapEff"], 16)),
        "bounding_capabilities": _caps(int(fields["CapBnd"], 16)),
        "no_new_privs": fields.get("NoNewPrivs") == "1",
        "scheduler": names.get(policy, str(policy)),
        "rt_priority": os.sched_getparam(pid).sched_priority,
        "reset_on_fork": bool(raw & _RESET_ON_FORK),
    }
