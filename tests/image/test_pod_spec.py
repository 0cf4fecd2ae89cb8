"""l2agent.lab.pod_spec: the rendered manifests translate to the podman flags we expect, and
anything it would not reproduce faithfully is refused, not dropped. No podman needed."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from helpers.image import workload

from l2agent.lab.containers import static_mode_args
from l2agent.lab.pod_spec import (
    UnsupportedPodSpec,
    container_run,
    expand_args,
    parse_quantity,
)

FIELDS = {
    "spec.nodeName": "node1",
    "status.hostIP": "192.0.2.11",
    "metadata.name": "pod-a",
    "metadata.uid": "uid-a",
    "metadata.namespace": "metallb-system",
}


@pytest.fixture
def speaker(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(workload(rendered, "DaemonSet", "l2agent-speaker"))


POD = {
    "hostNetwork": True,
    "terminationGracePeriodSeconds": 12,
    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "supplementalGroups": [7]},
    "containers": [
        {
            "name": "c",
            "image": "localhost/x:dev",
            "args": ["run", "--at=$(HOST_IP):1", "--name=$(NODE_NAME)", "--kubeconfig=-"],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            ],
            "resources": {"limits": {"memory": "64Mi"}},
            "securityContext": {
                "runAsUser": 0,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
            },
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "key", "mountPath": "/etc/key", "readOnly": True},
            ],
        }
    ],
    "volumes": [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {
            "name": "key",
            "secret": {
                "secretName": "k",
                "defaultMode": 0o400,
                "items": [{"key": "a", "path": "b"}],
            },
        },
    ],
}


def test_a_pod_spec_as_podman_flags() -> None:
    run = container_run(POD, "c", FIELDS)
    assert run.podman_flags({"/etc/key": "/host/key"}) == [
        "--user=0",
        "--group-add=7",
        "--cap-drop=ALL",
        "--cap-add=NET_RAW",
        "--security-opt=no-new-privileges",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,size=1048576,mode=0777",
        "--volume=/host/key:/etc/key:ro",
        "--memory=67108864",
        "--stop-timeout=12",
        "--env=A=1",
        "--env=NODE_NAME=node1",
        "--env=HOST_IP=192.0.2.11",
    ]
    (secret,) = run.secrets
    assert (secret.secret_name, secret.files) == ("k", (("a", "b", 0o400),))
    assert static_mode_args(expand_args(run.args, run.env_map()), ["p:1"]) == [
        "run", "--at=192.0.2.11:1", "--name=node1", "--config=/etc/l2agent/cluster.yaml",
        "--join=p:1",
    ]  # fmt: skip


def test_the_rendered_speaker_daemonset_translates(speaker: dict[str, Any]) -> None:
    """Whatever else the manifest holds, its security settings reach podman as written."""
    run = container_run(speaker, "speaker", FIELDS)
    security = _container(speaker)["securityContext"]
    groups = speaker["securityContext"].get("supplementalGroups", [])
    flags = run.podman_flags({"/etc/ml_secret_key": "/host/secret"})
    assert flags[: 5 + len(groups) + len(security["capabilities"]["add"])] == [
        f"--user={security['runAsUser']}",
        *(f"--group-add={gid}" for gid in groups),
        "--cap-drop=ALL",
        *(f"--cap-add={cap}" for cap in security["capabilities"]["add"]),
        "--security-opt=no-new-privileges",
        "--read-only",
        "--read-only-tmpfs=false",
    ]
    assert "--tmpfs=/tmp:rw,size=16777216,mode=0777" in flags
    assert "--volume=/host/secret:/etc/ml_secret_key:ro" in flags
    assert f"--stop-timeout={speaker['terminationGracePeriodSeconds']}" in flags
    args = static_mode_args(expand_args(run.args, run.env_map()), ["192.0.2.12:7946"])
    assert args[:2] == ["speaker", "--config=/etc/l2agent/cluster.yaml"]
    assert "--node-name=node1" in args and args[-1] == "--join=192.0.2.12:7946"
    assert not [a for a in args if "$(" in a or a.startswith("--kubeconfig")]


def test_the_controller_deployment_as_podman_flags(rendered: list[dict[str, Any]]) -> None:
    pod = workload(rendered, "Deployment", "l2agent-controller")
    run = container_run(pod, "controller", FIELDS)
    assert not run.host_network
    assert run.podman_flags({})[:7] == [
        "--user=65534:65534",
        "--group-add=65534",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,size=16777216,mode=0777",
    ]


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = [c for c in pod["containers"] if c["name"] == "speaker"]
    return c


def _privileged(pod: dict[str, Any]) -> None:
    _container(pod)["securityContext"]["privileged"] = True


def _keeps_default_caps(pod: dict[str, Any]) -> None:
    del _container(pod)["securityContext"]["capabilities"]["drop"]


def _non_root_with_caps(pod: dict[str, Any]) -> None:
    _container(pod)["securityContext"]["runAsUser"] = 65534


def _unknown_security_field(pod: dict[str, Any]) -> None:
    _container(pod)["securityContext"]["procMount"] = "Unmasked"


def _secret_env(pod: dict[str, Any]) -> None:
    _container(pod)["env"].append(
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    )


def _cpu_limit(pod: dict[str, Any]) -> None:
    _container(pod)["resources"]["limits"]["cpu"] = "1"


def _disk_empty_dir(pod: dict[str, Any]) -> None:
    pod["volumes"][0]["emptyDir"] = {}


def _host_path(pod: dict[str, Any]) -> None:
    pod["volumes"][0] = {"name": "tmp", "hostPath": {"path": "/tmp"}}


def _sub_path(pod: dict[str, Any]) -> None:
    _container(pod)["volumeMounts"][0]["subPath"] = "x"


def _non_root_as_root(pod: dict[str, Any]) -> None:
    _container(pod)["securityContext"]["runAsNonRoot"] = True


def _unknown_field_ref(pod: dict[str, Any]) -> None:
    (node_name,) = [e for e in _container(pod)["env"] if e["name"] == "NODE_NAME"]
    node_name["valueFrom"]["fieldRef"]["fieldPath"] = "spec.serviceAccountName"


def _localhost_seccomp(pod: dict[str, Any]) -> None:
    pod["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "x"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_privileged, "privileged"),
        (_keeps_default_caps, "drop ALL"),
        (_non_root_with_caps, "UID 0 only"),
        (_unknown_security_field, "procMount"),
        (_secret_env, "only values and fieldRefs"),
        (_cpu_limit, "cpu"),
        (_disk_empty_dir, "only Memory emptyDirs"),
        (_host_path, "kind not translated"),
        (_sub_path, "subPath"),
        (_non_root_as_root, "runAsNonRoot with runAsUser 0"),
        (_unknown_field_ref, "spec.serviceAccountName"),
        (_localhost_seccomp, "Localhost"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_what_podman_would_not_reproduce_is_refused(
    speaker: dict[str, Any], change: Any, reason: str
) -> None:
    change(speaker)
    with pytest.raises(UnsupportedPodSpec, match=re.escape(reason)):
        container_run(speaker, "speaker", FIELDS)


@pytest.mark.parametrize(
    ("args", "env", "expanded"),
    [
        (["--a=$(X)"], {"X": "1"}, ["--a=1"]),
        (["$(X):$(Y)"], {"X": "h", "Y": "p"}, ["h:p"]),
        (["--a=$(MISSING)"], {}, ["--a=$(MISSING)"]),  # undefined: left as written
        (["$$(X)"], {"X": "1"}, ["$(X)"]),  # $$ escapes
        (["plain"], {"X": "1"}, ["plain"]),
    ],
)
def test_expand_args_as_kubernetes_does(
    args: list[str], env: dict[str, str], expanded: list[str]
) -> None:
    assert expand_args(args, env) == expanded


@pytest.mark.parametrize(
    ("text", "value"),
    [("256Mi", 256 * 2**20), ("16Mi", 16 * 2**20), ("1G", 10**9), ("1k", 1000), (512, 512)],
)
def test_parse_quantity(text: str | int, value: int) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_refuses_what_it_does_not_know() -> None:
    with pytest.raises(UnsupportedPodSpec):
        parse_quantity("1Ei")


def test_static_mode_replaces_the_kubeconfig_argument() -> None:
    assert static_mode_args(["speaker", "--kubeconfig", "-", "--x"], []) == [
        "speaker",
        "--config=/etc/l2agent/cluster.yaml",
        "--x",
    ]
    with pytest.raises(UnsupportedPodSpec):
        static_mode_args(["speaker"], [])
