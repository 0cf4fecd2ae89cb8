"""The optional kustomize components (deploy/components/*) render on top of the base and
validate offline: core kinds against Kubernetes' schemas, the Prometheus Operator's kinds
against its CRDs; the alerts' up{job=...} name the jobs the shipped monitors create; the
operational pieces (PodDisruptionBudget, priorities, tolerations, probes) are there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPONENTS = sorted(p.name for p in (DEPLOY / "components").iterdir() if p.is_dir())
OPERATOR_CRDS = REPO / "tests" / "data" / "crds" / "prometheus-operator"
K8S_VERSION = "1.30.0"


def render(tmp_path: Path, components: tuple[str, ...]) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay: the base plus `components` (kustomize wants
    relative paths, and an overlay outside deploy/, as a user's own would be)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (Debian package `kubectl`); cannot run kustomize")
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    base = os.path.relpath(DEPLOY, overlay)
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "components": [f"{base}/components/{c}" for c in components],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (c,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def _operator_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(OPERATOR_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
        out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare (the API server would prune them silently:
    a misspelt key must fail here instead)."""
    if isinstance(obj, dict) and "properties" in schema:
        props = schema["properties"]
        out = []
        for key, value in obj.items():
            if key not in props:
                if path == "" and key in ("apiVersion", "kind", "metadata"):
                    continue
                out.append(f"{path}.{key}")
            else:
                out += _unknown_fields(value, props[key], f"{path}.{key}")
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [
            e
            for i, item in enumerate(obj)
            for e in _unknown_fields(item, schema["items"], f"{path}[{i}]")
        ]
    return []


def validate(objs: list[dict[str, Any]]) -> None:
    operator = _operator_schemas()
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            schema = operator[obj["kind"]]
            # No metaschema check: the operator's schemas use Go regex syntax ("(?i)"
            # mid-pattern) that Python's re refuses; the fields we set compile fine.
            jsonschema.Draft7Validator(schema).validate(obj)
            assert _unknown_fields(obj, schema) == [], obj["metadata"]["name"]
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "components",
    [(c,) for c in COMPONENTS] + [tuple(COMPONENTS)],
    ids=[*COMPONENTS, "all"],
)
def test_every_component_renders_and_validates(tmp_path: Path, components: tuple[str, ...]) -> None:
    objs = render(tmp_path, components)
    validate(objs)


def test_the_validator_is_a_real_judge(tmp_path: Path) -> None:
    objs = render(tmp_path, ("monitoring",))
    monitor = _one(objs, "ServiceMonitor", "l2agent-speaker")
    monitor["spec"]["endpoints"][0]["prot"] = "metrics"
    with pytest.raises(AssertionError):
        validate([monitor])
    monitor["spec"]["endpoints"][0].pop("prot")
    monitor["spec"]["endpoints"][0]["interval"] = 30
    with pytest.raises(jsonschema.ValidationError):
        validate([monitor])


def test_the_base_needs_no_prometheus_operator(tmp_path: Path) -> None:
    assert COMPONENTS == ["beside-metallb", "monitoring"]
    kinds = {o["apiVersion"] for o in render(tmp_path, ())}
    assert not any(v.startswith("monitoring.coreos.com/") for v in kinds)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def monitor_jobs(objs: list[dict[str, Any]]) -> dict[str, str]:
    """job -> component, as the Prometheus Operator names the jobs of each ServiceMonitor:
    the Service's `jobLabel` label value when set, else the Service's name. Every endpoint
    port must exist on the Service and reach a container port of the selected pods."""
    services = [o for o in objs if o["kind"] == "Service"]
    workloads = [o for o in objs if o["kind"] in ("DaemonSet", "Deployment")]
    jobs: dict[str, str] = {}
    for mon in (o for o in objs if o["kind"] == "ServiceMonitor"):
        spec = mon["spec"]
        namespaces = spec["namespaceSelector"]["matchNames"]
        chosen = [
            s
            for s in services
            if s["metadata"]["namespace"] in namespaces
            and _selects(spec["selector"], s["metadata"].get("labels") or {})
        ]
        assert chosen, f"ServiceMonitor {mon['metadata']['name']} selects no Service"
        for svc in chosen:
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            pods = [
                w
                for w in workloads
                if all(
                    w["spec"]["template"]["metadata"]["labels"].get(k) == v
                    for k, v in svc["spec"]["selector"].items()
                )
            ]
            assert len(pods) == 1, svc["metadata"]["name"]
            container_ports = {
                p["name"]
                for c in pods[0]["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for ep in spec["endpoints"]:
                assert ep["port"] in ports
                assert ports[ep["port"]]["targetPort"] in container_ports
            label = spec.get("jobLabel")
            job = (svc["metadata"].get("labels") or {}).get(label) if label else None
            jobs[job or svc["metadata"]["name"]] = svc["metadata"]["labels"][
                "app.kubernetes.io/component"
            ]
    return jobs


def test_alerts_name_the_jobs_the_monitors_create(tmp_path: Path) -> None:
    objs = render(tmp_path, ("monitoring",))
    (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    alert_jobs = {m for e in exprs for m in re.findall(r'\bup\{[^}]*job="([^"]+)"', e)}
    jobs = monitor_jobs(objs)
    assert jobs == {"metallb-controller": "controller", "metallb-speaker": "speaker"}
    assert alert_jobs == set(jobs)


def test_the_seed_guides_servicemonitors_find_our_services(tmp_path: Path) -> None:
    """The guide's ServiceMonitors (in namespace monitoring, selecting component labels
    and port "metrics") scrape the base's Services, under the jobs its alerts name."""
    guide = [
        {
            "kind": "ServiceMonitor",
            "metadata": {"name": f"metallb-{c}", "namespace": "monitoring"},
            "spec": {
                "namespaceSelector": {"matchNames": ["metallb-system"]},
                "selector": {"matchLabels": {"app.kubernetes.io/component": c}},
                "endpoints": [{"port": "metrics", "interval": "30s", "path": "/metrics"}],
            },
        }
        for c in ("controller", "speaker")
    ]
    objs = render(tmp_path, ())
    assert monitor_jobs(objs + guide) == {
        "metallb-controller": "controller",
        "metallb-speaker": "speaker",
    }


def _env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


@pytest.mark.parametrize("components", [(), ("beside-metallb",)], ids=["base", "beside-metallb"])
def test_ports_agree_everywhere(tmp_path: Path, components: tuple[str, ...]) -> None:
    """The gossip and metrics ports the speaker and controller are told (env values in
    their args) are the container ports, the metrics Services' targets and what the
    NetworkPolicies open; beside MetalLB none of them is one MetalLB uses."""
    objs = render(tmp_path, components)
    speaker = _container(_one(objs, "DaemonSet", "l2agent-speaker"), "speaker")
    controller = _container(_one(objs, "Deployment", "l2agent-controller"), "controller")
    env_s, env_c = _env(speaker), _env(controller)
    gossip, metrics = int(env_s["GOSSIP_PORT"]), int(env_s["METRICS_PORT"])
    assert int(env_c["METRICS_PORT"]) == metrics
    assert {(p["containerPort"], p["protocol"]) for p in speaker["ports"]} == {
        (gossip, "TCP"),
        (gossip, "UDP"),
        (metrics, "TCP"),
    }
    assert [p["containerPort"] for p in controller["ports"]] == [metrics]
    for name in ("metallb-controller", "metallb-speaker"):
        (port,) = _one(objs, "Service", name)["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == (
            "metrics",
            metrics,
            "monitoring",
        )
    policy = _one(objs, "NetworkPolicy", "l2agent-speaker-policy")["spec"]
    opened = {(p["protocol"], p["port"]) for r in policy["ingress"] for p in r["ports"]}
    assert opened == {("TCP", metrics), ("TCP", gossip), ("UDP", gossip)}
    egress = {(p["protocol"], p["port"]) for r in policy["egress"] for p in r["ports"]}
    assert {("TCP", gossip), ("UDP", gossip)} <= egress
    policy = _one(objs, "NetworkPolicy", "l2agent-controller-policy")["spec"]
    assert {(p["protocol"], p["port"]) for r in policy["ingress"] for p in r["ports"]} == {
        ("TCP", metrics)
    }
    if components:
        assert gossip != 7946 and metrics not in (7472, 7473)
        assert env_s["LB_CLASS"] == env_c["LB_CLASS"] != ""
    else:
        assert (gossip, metrics) == (7946, 7472)
        assert env_s["LB_CLASS"] == env_c["LB_CLASS"] == ""


def test_operations(tmp_path: Path) -> None:
    """PodDisruptionBudget for the controller, priorities on both, the controller may run
    on control-plane nodes, and both have liveness probes on /healthz."""
    objs = render(tmp_path, ())
    dep = _one(objs, "Deployment", "l2agent-controller")
    pdb = _one(objs, "PodDisruptionBudget", "l2agent-controller")
    assert pdb["spec"]["minAvailable"] == 1 < dep["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    ds = _one(objs, "DaemonSet", "l2agent-speaker")
    assert ds["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"
    pod = dep["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    tolerated = {(t["key"], t["effect"]) for t in pod["tolerations"]}
    assert ("node-role.kubernetes.io/control-plane", "NoSchedule") in tolerated
    for workload, name in ((dep, "controller"), (ds, "speaker")):
        probe = _container(workload, name)["livenessProbe"]
        assert probe["httpGet"]["path"] == "/healthz"
        assert probe["periodSeconds"] * probe.get("failureThreshold", 3) <= 60


def test_the_speakers_join_list_follows_the_daemonsets_placement(tmp_path: Path) -> None:
    """`placement` (which Node objects the speaker joins) says what deploy/speaker.yaml
    says about where the DaemonSet runs."""
    from l2agent.speaker.placement import SPEAKER_NODE_SELECTOR, SPEAKER_TOLERATIONS

    pod = _one(render(tmp_path, ()), "DaemonSet", "l2agent-speaker")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == dict(SPEAKER_NODE_SELECTOR)
    assert pod["tolerations"] == [t.manifest() for t in SPEAKER_TOLERATIONS]
    assert "affinity" not in pod  # placement.runs_speaker does not read node affinity
