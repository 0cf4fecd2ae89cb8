"""How Kubernetes would run one container of a pod template, as ``podman run`` flags.

The image tests and the image benchmark run the shipped image exactly as the rendered
DaemonSet asks (``kubectl kustomize deploy/``), without a cluster: capabilities, user,
read-only root, privilege escalation, seccomp, the memory limit, the termination grace period,
environment from the downward API, ``$(VAR)`` expansion in args, memory ``emptyDir``\\ s as
tmpfs and secret volumes as read-only directories of files with the manifest's modes.

Pure: parses plain dicts and returns values. A field that would change how the container runs
but that this module does not translate raises :class:`UnsupportedPodSpec` instead of being
dropped, so a manifest change cannot silently make the tests run something else. Fields that
only matter to a scheduler or a kubelet's probes (ports, probes, requests, tolerations, ...)
are read by the callers where they need them, or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ContainerRun",
    "SecretVolume",
    "Tmpfs",
    "UnsupportedPodSpec",
    "container_run",
    "expand_args",
    "parse_quantity",
]

_QUANTITY = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

# securityContext fields translated below; any other one set in a manifest is refused.
_KNOWN_SECURITY = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "seccompProfile",
    "privileged",
    "fsGroup",
    "supplementalGroups",
}


class UnsupportedPodSpec(ValueError):
    """The pod template asks for something this translation does not reproduce."""


@dataclass(frozen=True, slots=True)
class Tmpfs:
    """A memory-backed ``emptyDir`` mounted at ``path``; ``size`` in bytes (None: no limit)."""

    path: str
    size: int | None


@dataclass(frozen=True, slots=True)
class SecretVolume:
    """A secret volume mounted read-only at ``path``: ``files`` are (key, file name, mode)."""

    path: str
    secret_name: str
    files: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """One container of a pod template, in the terms ``podman run`` needs."""

    name: str
    image: str
    args: tuple[str, ...]
    """The container's ``args`` as written (``$(VAR)`` not yet expanded; see ``expand_args``)."""
    env: tuple[tuple[str, str], ...]
    """Environment, downward-API references resolved from the ``fields`` given."""
    user: str | None
    """``UID`` or ``UID:GID``; None keeps the image's user."""
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    read_only_root: bool
    no_new_privileges: bool
    runtime_default_seccomp: bool
    tmpfs: tuple[Tmpfs, ...]
    secrets: tuple[SecretVolume, ...]
    memory_limit: int | None
    """Bytes (``resources.limits.memory``)."""
    fs_group: int | None
    """The pod's ``fsGroup``: a supplementary group of the process, and the group that owns
    secret files (the caller writes them so)."""
    supplemental_groups: tuple[int, ...]
    """The pod's ``supplementalGroups``: more supplementary groups of the process."""
    stop_timeout: int
    """Seconds from SIGTERM to SIGKILL (``terminationGracePeriodSeconds``, default 30)."""
    host_network: bool

    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    def podman_flags(self, secret_dirs: Mapping[str, str]) -> list[str]:
        """``podman run`` flags (no image, no args, no network).

        ``secret_dirs``: for each secret volume's mount path, a host directory holding its
        files with the modes of ``SecretVolume.files`` (the caller writes them).
        """
        flags: list[str] = []
        if self.user is not None:
            flags.append(f"--user={self.user}")
        if self.fs_group is not None:
            flags.append(f"--group-add={self.fs_group}")
        flags += [f"--group-add={gid}" for gid in self.supplemental_groups]
        flags += [f"--cap-drop={cap}" for cap in self.cap_drop]
        flags += [f"--cap-add={cap}" for cap in self.cap_add]
        if self.no_new_privileges:
            flags.append("--security-opt=no-new-privileges")
        if self.read_only_root:
            # podman's --read-only also mounts tmpfs on /tmp, /var/tmp and /run unless told
            # not to; Kubernetes mounts only the volumes the manifest names.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        for fs in self.tmpfs:
            size = "" if fs.size is None else f",size={fs.size}"
            flags.append(f"--tmpfs={fs.path}:rw{size},mode=0777")
        for secret in self.secrets:
            if secret.path not in secret_dirs:
                raise KeyError(f"no host directory given for the secret at {secret.path}")
            flags.append(f"--volume={secret_dirs[secret.path]}:{secret.path}:ro")
        if self.memory_limit is not None:
            flags.append(f"--memory={self.memory_limit}")
        flags.append(f"--stop-timeout={self.stop_timeout}")
        flags += [f"--env={key}={value}" for key, value in self.env]
        return flags


def parse_quantity(text: str | int) -> int:
    """A Kubernetes resource quantity (``256Mi``, ``1G``, ``1024``) in units (bytes)."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise UnsupportedPodSpec(f"quantity {text!r} not understood")
    return int(float(match["num"]) * _UNITS[match["unit"]])


def expand_args(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Kubernetes' ``$(VAR)`` expansion: defined variables expand, ``$$`` is a literal ``$``,
    and a reference to an undefined variable stays as written."""

    def one(arg: str) -> str:
        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            return env.get(name, match.group(0))

        return _VAR_REF.sub(sub, arg)

    return [one(arg) for arg in args]


def container_run(
    pod_spec: Mapping[str, Any], container: str, fields: Mapping[str, str]
) -> ContainerRun:
    """Translate container ``container`` of ``pod_spec`` (a template's ``spec``).

    ``fields``: the downward API's values, by field path (``spec.nodeName``,
    ``status.hostIP``, ``metadata.name``, ...), for ``env[].valueFrom.fieldRef``.
    """
    matches = [c for c in pod_spec.get("containers", []) if c.get("name") == container]
    if len(matches) != 1:
        raise UnsupportedPodSpec(f"pod spec has {len(matches)} containers named {container!r}")
    (spec,) = matches
    pod_security = dict(pod_spec.get("securityContext") or {})
    security = dict(spec.get("securityContext") or {})
    _check_security(pod_security, security)
    merged = {**pod_security, **security}  # the container's own settings win
    caps = security.get("capabilities") or {}
    seccomp = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp not in ("RuntimeDefault", "Unconfined"):
        raise UnsupportedPodSpec(f"seccomp profile {seccomp!r} is not translated")
    limits = (spec.get("resources") or {}).get("limits") or {}
    if set(limits) - {"memory"}:
        raise UnsupportedPodSpec(f"limits {sorted(set(limits) - {'memory'})} not translated")
    tmpfs, secrets = _volumes(pod_spec, spec)
    return ContainerRun(
        name=container,
        image=str(spec["image"]),
        args=tuple(str(a) for a in spec.get("args", ())),
        env=_env(spec.get("env", ()), fields),
        user=_user(merged),
        cap_drop=tuple(caps.get("drop", ())),
        cap_add=tuple(caps.get("add", ())),
        read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
        # Kubernetes' default for allowPrivilegeEscalation is true (no no_new_privs).
        no_new_privileges=security.get("allowPrivilegeEscalation", True) is False,
        runtime_default_seccomp=seccomp == "RuntimeDefault",
        tmpfs=tmpfs,
        secrets=secrets,
        memory_limit=parse_quantity(limits["memory"]) if "memory" in limits else None,
        fs_group=int(pod_security["fsGroup"]) if "fsGroup" in pod_security else None,
        supplemental_groups=tuple(int(g) for g in pod_security.get("supplementalGroups", ())),
        stop_timeout=int(pod_spec.get("terminationGracePeriodSeconds", 30)),
        host_network=bool(pod_spec.get("hostNetwork", False)),
    )


def _check_security(pod_security: Mapping[str, Any], security: Mapping[str, Any]) -> None:
    unknown = (set(pod_security) | set(security)) - _KNOWN_SECURITY
    if unknown:
        raise UnsupportedPodSpec(f"securityContext fields not translated: {sorted(unknown)}")
    for pod_only in ("fsGroup", "supplementalGroups"):
        if pod_only in security:
            raise UnsupportedPodSpec(f"{pod_only} belongs to the pod's securityContext")
    if security.get("privileged"):
        raise UnsupportedPodSpec("privileged containers are not translated")
    caps = security.get("capabilities") or {}
    # Runtimes differ in their default capability set (podman's has no NET_RAW, containerd's
    # has): only a manifest that drops them all means the same thing under both.
    if "ALL" not in caps.get("drop", ()):
        raise UnsupportedPodSpec("capabilities must drop ALL to mean the same under podman")
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    # Kubernetes gives a non-root process no ambient capabilities; podman would.
    if caps.get("add") and (uid is None or int(uid) != 0):
        raise UnsupportedPodSpec("added capabilities are translated for UID 0 only")


def _user(security: Mapping[str, Any]) -> str | None:
    uid = security.get("runAsUser")
    gid = security.get("runAsGroup")
    if uid is None:
        if gid is not None:
            raise UnsupportedPodSpec("runAsGroup without runAsUser is not translated")
        if security.get("runAsNonRoot"):
            raise UnsupportedPodSpec("runAsNonRoot without runAsUser: the image decides")
        return None
    if security.get("runAsNonRoot") and int(uid) == 0:
        raise UnsupportedPodSpec("runAsNonRoot with runAsUser 0: Kubernetes refuses to start it")
    return str(uid) if gid is None else f"{uid}:{gid}"


def _env(
    entries: Sequence[Mapping[str, Any]], fields: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for entry in entries:
        name = str(entry["name"])
        if "value" in entry:
            out.append((name, str(entry["value"])))
            continue
        ref = (entry.get("valueFrom") or {}).get("fieldRef")
        if ref is None:
            raise UnsupportedPodSpec(f"env {name}: only values and fieldRefs are translated")
        path = str(ref["fieldPath"])
        if path not in fields:
            raise UnsupportedPodSpec(f"env {name}: no value given for field {path}")
        out.append((name, fields[path]))
    return tuple(out)


def _volumes(
    pod_spec: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[tuple[Tmpfs, ...], tuple[SecretVolume, ...]]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", ())}
    tmpfs: list[Tmpfs] = []
    secrets: list[SecretVolume] = []
    for mount in spec.get("volumeMounts", ()):
        if mount.get("subPath"):
            raise UnsupportedPodSpec(f"volume {mount['name']}: subPath is not translated")
        volume = volumes[mount["name"]]
        path = str(mount["mountPath"])
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            if empty.get("medium") != "Memory":
                raise UnsupportedPodSpec(f"volume {mount['name']}: only Memory emptyDirs")
            limit = empty.get("sizeLimit")
            tmpfs.append(Tmpfs(path, parse_quantity(limit) if limit is not None else None))
        elif "secret" in volume:
            secret = volume["secret"]
            default_mode = int(secret.get("defaultMode", 0o644))
            items = secret.get("items")
            if not items:
                raise UnsupportedPodSpec(f"volume {mount['name']}: secrets need items here")
            files = tuple(
                (str(i["key"]), str(i["path"]), int(i.get("mode", default_mode))) for i in items
            )
            secrets.append(SecretVolume(path, str(secret["secretName"]), files))
        else:
            raise UnsupportedPodSpec(f"volume {mount['name']}: kind not translated")
    return tuple(tmpfs), tuple(secrets)
