"""deploy/ renders with kustomize, validates against Kubernetes' own schemas, accepts the seed
guide's MetalLB objects through our CRD schemas, and keeps the security posture we promise."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"
SEED_DIRS = (REPO / "tests" / "data" / "seeds", REPO.parent / "shared" / "seeds" / "manifests")
L2_KINDS = {"IPAddressPool", "L2Advertisement", "ServiceL2Status"}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (Debian package `kubectl`); cannot run kustomize")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _by_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _crd_schemas(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Kind -> schema of its storage version; `Kind@version` for the other served ones."""
    schemas = {}
    for crd in _by_kind(objs, "CustomResourceDefinition"):
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            assert version["name"] in ("v1beta1", "v1beta2")
            key = kind if version["storage"] else f"{kind}@{version['name']}"
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def _seed_documents() -> list[tuple[str, dict[str, Any]]]:
    for d in SEED_DIRS:
        files = sorted(d.glob("*.yaml")) if d.is_dir() else []
        if files:
            docs = []
            for f in files:
                for doc in yaml.safe_load_all(f.read_text()):
                    if doc:
                        docs.append((f.name, doc))
            return docs
    pytest.skip(f"no seed manifests in any of {[str(d) for d in SEED_DIRS]}")


def test_renders_every_piece(rendered: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    assert ("Namespace", "metallb-system") in kinds
    assert ("DaemonSet", "l2agent-speaker") in kinds
    assert ("Deployment", "l2agent-controller") in kinds
    crds = {o["metadata"]["name"] for o in _by_kind(rendered, "CustomResourceDefinition")}
    assert crds == {
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "servicel2statuses.metallb.io",
        "bgppeers.metallb.io",
        "bgpadvertisements.metallb.io",
        "bfdprofiles.metallb.io",
        "communities.metallb.io",
        "servicebgpstatuses.metallb.io",
    }
    for o in rendered:
        if o["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole"} and not o[
            "kind"
        ].startswith("ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == "metallb-system", o["metadata"]["name"]


def test_every_object_validates_against_kubernetes_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    for obj in rendered:
        # strict: unknown fields are errors, so a misspelt key cannot slip through.
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_kubernetes_validate_is_a_real_judge(rendered: list[dict[str, Any]]) -> None:
    ds = copy.deepcopy(_one(rendered, "DaemonSet", "l2agent-speaker"))
    ds["spec"]["template"]["spec"]["hostNetwrk"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSION, strict=True)


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_crd_schemas_are_structural(rendered: list[dict[str, Any]]) -> None:
    """The API server refuses non-structural v1 CRDs: every node typed, no $ref."""
    for kind, schema in _crd_schemas(rendered).items():
        for path, node in _walk(schema):
            assert "$ref" not in node, f"{kind}{path}"
            assert "type" in node, f"{kind}{path} has no type"


def test_seed_l2_objects_validate_against_our_crds(rendered: list[dict[str, Any]]) -> None:
    schemas = _crd_schemas(rendered)
    checked = 0
    for _fname, doc in _seed_documents():
        if doc.get("apiVersion") != "metallb.io/v1beta1" or doc["kind"] not in L2_KINDS:
            continue
        jsonschema.validate(doc, schemas[doc["kind"]], cls=jsonschema.Draft7Validator)
        checked += 1
    assert checked >= 8, f"only {checked} seed L2 objects found"


BGP_KINDS = {"BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"}
BGP_CASES = REPO / "tests" / "data" / "bgp"


def _schema_for(schemas: dict[str, dict[str, Any]], doc: dict[str, Any]) -> dict[str, Any]:
    version = doc["apiVersion"].split("/")[1]
    return schemas.get(f"{doc['kind']}@{version}") or schemas[doc["kind"]]


def test_bgp_objects_validate_against_our_crds(rendered: list[dict[str, Any]]) -> None:
    """The seed guide's BGP objects and every BGP golden case's (v1beta1 and v1beta2 peers).

    The guide's `passwordSecret.key` is not in MetalLB's schema either: the API server
    prunes it (a structural schema without additionalProperties: false lets it through)."""
    schemas = _crd_schemas(rendered)
    docs = [doc for _f, doc in _seed_documents()]
    for path in sorted(BGP_CASES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    checked: dict[str, int] = {}
    for doc in docs:
        if doc.get("kind") not in BGP_KINDS:
            continue
        jsonschema.validate(doc, _schema_for(schemas, doc), cls=jsonschema.Draft7Validator)
        checked[doc["kind"]] = checked.get(doc["kind"], 0) + 1
    assert set(checked) == BGP_KINDS and checked["BGPPeer"] >= 20, checked


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        ("BGPPeer", lambda o: o["spec"].pop("myASN")),
        ("BGPPeer", lambda o: o["spec"].__setitem__("peerASN", 2**32)),
        ("BGPPeer", lambda o: o["spec"].__setitem__("dynamicASN", "sideways")),
        ("BGPPeer", lambda o: o["spec"].__setitem__("peerPort", 20000)),
        ("BGPPeer", lambda o: o["spec"].__setitem__("holdTime", 90)),
        ("BGPAdvertisement", lambda o: o["spec"].__setitem__("aggregationLength", 0)),
        ("BGPAdvertisement", lambda o: o["spec"].__setitem__("communities", "1:1")),
        ("BFDProfile", lambda o: o["spec"].__setitem__("detectMultiplier", 1)),
        ("BFDProfile", lambda o: o["spec"].__setitem__("minimumTtl", 255)),
        ("Community", lambda o: o["spec"].__setitem__("communities", [{"name": 1}])),
    ],
)
def test_our_bgp_crds_reject_malformed_objects(
    rendered: list[dict[str, Any]], kind: str, mutate: Any
) -> None:
    schemas = _crd_schemas(rendered)
    base = {
        "BGPPeer": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1"},
        "BGPAdvertisement": {"aggregationLength": 32, "communities": ["1:1"]},
        "BFDProfile": {"detectMultiplier": 3, "minimumTtl": 254},
        "Community": {"communities": [{"name": "a", "value": "1:1"}]},
    }[kind]
    good = {
        "apiVersion": "metallb.io/v1beta2" if kind == "BGPPeer" else "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "metallb-system"},
        "spec": copy.deepcopy(base),
    }
    jsonschema.validate(good, schemas[kind])
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas[kind])


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        ("IPAddressPool", lambda o: o["spec"].pop("addresses")),
        ("IPAddressPool", lambda o: o["spec"].__setitem__("addresses", "10.0.0.0/24")),
        ("IPAddressPool", lambda o: o["spec"].__setitem__("autoAssign", "yes")),
        (
            "IPAddressPool",
            lambda o: o["spec"].__setitem__("serviceAllocation", {"priority": "high"}),
        ),
        (
            "L2Advertisement",
            lambda o: o["spec"].__setitem__(
                "nodeSelectors", [{"matchExpressions": [{"key": "a"}]}]
            ),
        ),
        ("L2Advertisement", lambda o: o["spec"].__setitem__("interfaces", "eth0")),
    ],
)
def test_our_crds_reject_malformed_objects(
    rendered: list[dict[str, Any]], kind: str, mutate: Any
) -> None:
    schemas = _crd_schemas(rendered)
    base = {
        "IPAddressPool": {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"addresses": ["192.0.2.0/28"]},
        },
        "L2Advertisement": {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "a", "namespace": "metallb-system"},
            "spec": {"ipAddressPools": ["p"]},
        },
    }[kind]
    jsonschema.validate(base, schemas[kind])
    bad = copy.deepcopy(base)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas[kind])


def test_servicel2status_shape_matches_metallb(rendered: list[dict[str, Any]]) -> None:
    crd = _one(rendered, "CustomResourceDefinition", "servicel2statuses.metallb.io")
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for field in ("node", "serviceName", "serviceNamespace"):
        rules = [v["rule"] for v in status[field]["x-kubernetes-validations"]]
        assert rules == ["self == oldSelf"], field
    assert status["interfaces"]["items"]["properties"]["name"]["type"] == "string"


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (c,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def test_speaker_security_posture(rendered: list[dict[str, Any]]) -> None:
    ds = _one(rendered, "DaemonSet", "l2agent-speaker")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = _container(ds, "speaker")
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "SYS_NICE"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "privileged" not in sc
    ports = {(p["containerPort"], p["protocol"]) for p in c["ports"]}
    assert ports == {(7946, "TCP"), (7946, "UDP"), (7472, "TCP")}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    (secret,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret["secret"]["secretName"] == "memberlist"
    assert secret["secret"]["items"] == [{"key": "secretkey", "path": "secretkey"}]
    # always encrypted (plaintext gossip is unauthenticated): no key, no speaker
    assert not secret["secret"].get("optional", False)
    mount = [m for m in c["volumeMounts"] if m["name"] == secret["name"]]
    assert mount[0]["readOnly"] is True
    assert f"--secret-key-file={mount[0]['mountPath']}/secretkey" in c["args"]
    assert "--node-name=$(NODE_NAME)" in c["args"]
    assert "--kubeconfig=-" in c["args"]


def test_controller_security_posture(rendered: list[dict[str, Any]]) -> None:
    dep = _one(rendered, "Deployment", "l2agent-controller")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert not pod.get("hostNetwork", False)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65534
    c = _container(dep, "controller")
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "--identity=$(POD_NAME)" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def _rules(objs: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return list(_one(objs, kind, name)["rules"])


def test_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    secret_rules = []
    for role in _by_kind(rendered, "ClusterRole") + _by_kind(rendered, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role
            assert "pods" not in rule["resources"], role
            if "secrets" in rule["resources"]:
                secret_rules.append((role["kind"], role["metadata"]["name"], rule))
    # Secrets: the controller creates the gossip key and reads that one name; the speaker
    # reads BGP passwords (passwordSecret) in our own namespace only (its watch asks only
    # for kubernetes.io/basic-auth ones). Nothing else.
    assert secret_rules == [
        (
            "Role",
            "l2agent-controller",
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        ),
        (
            "Role",
            "l2agent-controller",
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["memberlist"],
                "verbs": ["get"],
            },
        ),
        (
            "Role",
            "l2agent-speaker",
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
        ),
    ]
    granted: dict[tuple[str, str], set[str]] = {}
    for kind, name, who in (
        ("ClusterRole", "l2agent:speaker", "speaker"),
        ("Role", "l2agent-speaker", "speaker"),
        ("ClusterRole", "l2agent:controller", "controller"),
        ("Role", "l2agent-controller", "controller"),
    ):
        for rule in _rules(rendered, kind, name):
            for res in rule["resources"]:
                granted.setdefault((who, res), set()).update(rule["verbs"])
    # The speaker never writes Services; the controller never deletes anything.
    assert granted[("speaker", "services")] == {"list", "watch"}
    assert granted[("speaker", "servicel2statuses")] == {"list", "watch", "create", "delete"}
    assert granted[("speaker", "servicebgpstatuses")] == {"list", "watch", "create", "delete"}
    # The controller writes the pool annotation and the ingress through services/status
    # only (as MetalLB does): no write access to Services themselves.
    assert granted[("controller", "services")] == {"list", "watch"}
    assert granted[("controller", "services/status")] == {"patch"}
    assert granted[("controller", "leases")] == {"create", "get", "update"}
    assert not any("delete" in v for (who, _), v in granted.items() if who == "controller")
    for binding in _by_kind(rendered, "ClusterRoleBinding") + _by_kind(rendered, "RoleBinding"):
        (subject,) = binding["subjects"]
        assert subject["kind"] == "ServiceAccount"
        assert subject["name"].split("-")[-1] in binding["roleRef"]["name"]


def test_network_policies_follow_the_seed(rendered: list[dict[str, Any]]) -> None:
    speaker = _one(rendered, "NetworkPolicy", "l2agent-speaker-policy")["spec"]
    assert speaker["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "speaker"}
    assert speaker["policyTypes"] == ["Ingress", "Egress"]
    ingress = {
        (p["protocol"], p["port"], bool(rule.get("from")))
        for rule in speaker["ingress"]
        for p in rule["ports"]
    }
    assert ingress == {("TCP", 7472, True), ("TCP", 7946, False), ("UDP", 7946, False)}
    (metrics_rule,) = [r for r in speaker["ingress"] if r.get("from")]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    egress = {(p["protocol"], p["port"]) for r in speaker["egress"] for p in r["ports"]}
    assert {("TCP", 6443), ("UDP", 53), ("TCP", 53), ("TCP", 7946), ("UDP", 7946)} <= egress
    controller = _one(rendered, "NetworkPolicy", "l2agent-controller-policy")["spec"]
    ingress = {(p["protocol"], p["port"]) for r in controller["ingress"] for p in r["ports"]}
    assert ingress == {("TCP", 7472)}


def _substitute(c: dict[str, Any], host_ip: str) -> list[str]:
    """The container's args as the kubelet expands them: $(VAR) from the declared env
    values, the downward-API ones made up (HOST_IP given)."""
    import re

    values = {e["name"]: e.get("value", "x") for e in c.get("env", [])}
    values["HOST_IP"] = host_ip
    return [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in c["args"]]


def test_container_args_parse_with_our_cli(rendered: list[dict[str, Any]]) -> None:
    """The manifests and `l2agent`'s argument parser agree on every flag."""
    import re

    from l2agent.cli import build_parser

    parser = build_parser()
    for kind, name, cname in (
        ("DaemonSet", "l2agent-speaker", "speaker"),
        ("Deployment", "l2agent-controller", "controller"),
    ):
        c = _container(_one(rendered, kind, name), cname)
        declared = {e["name"] for e in c.get("env", [])}
        used = {v for a in c["args"] for v in re.findall(r"\$\((\w+)\)", a)}
        assert used <= declared, f"{name}: args use undeclared env {used - declared}"
        ns = parser.parse_args(_substitute(c, "192.0.2.9"))
        assert ns.command == cname
        assert ns.kubeconfig == "-"


def test_frr_sidecar_posture_and_termination_order(rendered: list[dict[str, Any]]) -> None:
    """BGP mode: FRR beside the speaker, sharing /etc/frr and /var/run/frr; FRR outlives the
    speaker's withdraw on termination (tests/e2e/test_bgp_sidecar.py runs it as rendered)."""
    ds = _one(rendered, "DaemonSet", "l2agent-speaker")
    pod = ds["spec"]["template"]["spec"]
    frr = _container(ds, "frr")
    assert frr["image"] == "localhost/l2agent-frr:dev"
    sc = frr["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {
        "NET_ADMIN", "NET_RAW", "SYS_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID"}  # fmt: skip
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    speaker = _container(ds, "speaker")
    shared = {"frr-conf": "/etc/frr", "frr-run": "/var/run/frr"}
    for c in (frr, speaker):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"] if "subPath" not in m}
        assert {k: mounts[k] for k in shared} == shared, c["name"]
    assert "--frr-config-dir=/etc/frr" in speaker["args"]
    assert "--frr-run-dir=/var/run/frr" in speaker["args"]
    # FRR's vty sockets are group frrvty: the pod joins that group instead of DAC_OVERRIDE.
    assert pod["securityContext"]["supplementalGroups"] == [102]
    # Termination: the speaker withdraws (at most --bgp-drain, 5 s by default) while FRR's
    # preStop sleep keeps FRR running; the grace period covers the sleep and FRR's stop.
    from l2agent.cli import build_parser

    drain = build_parser().parse_args(["speaker"]).bgp_drain
    sleep = float(frr["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert "lifecycle" not in speaker
    assert sleep > drain + 2.0
    assert pod["terminationGracePeriodSeconds"] >= sleep + 5
    startup = _one(rendered, "ConfigMap", "l2agent-frr-startup")["data"]
    daemons = dict(line.split("=", 1) for line in startup["daemons"].splitlines() if "=" in line)
    assert daemons["bgpd"] == "yes" and daemons["bfdd"] == "yes"
    assert "-p 0" in daemons["bgpd_options"]  # bgpd never listens on the host network
    assert all("-P 0" in daemons[f"{d}_options"] for d in ("zebra", "bgpd", "bfdd", "staticd"))
    assert startup["vtysh.conf"].strip() == "service integrated-vtysh-config"


@pytest.mark.parametrize("host_ip", ["192.0.2.9", "2001:db8::9"])
def test_speaker_addresses_parse_on_ipv4_and_ipv6_nodes(
    rendered: list[dict[str, Any]], host_ip: str
) -> None:
    """status.hostIP is bare (no brackets) on an IPv6-primary node: host and port are
    separate flags, so gossip binds and metrics listen on the node's address and the
    declared container ports, whatever the family."""
    from l2agent.cli import build_parser
    from l2agent.speaker.main import build_membership, metrics_address

    ds = _one(rendered, "DaemonSet", "l2agent-speaker")
    c = _container(ds, "speaker")
    args = build_parser().parse_args(_substitute(c, host_ip))
    args.secret_key_file = None  # the Secret is not mounted here
    membership = build_membership(args, "node-1")
    config = membership.config  # type: ignore[attr-defined]
    ports = {(p["name"], p["containerPort"]) for p in c["ports"]}
    assert (config.bind_addr, config.bind_port) == (host_ip, 7946)
    assert ("memberlist-udp", config.bind_port) in ports
    from l2agent.health import parse_metrics_addr

    text = metrics_address(args)
    assert text is not None
    assert parse_metrics_addr(text) == (host_ip, 7472)
    assert ("monitoring", 7472) in ports
