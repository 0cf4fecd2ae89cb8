"""ServiceL2Status API writes during a forced split: two speakers both claim one Service.

``python -m bench.l2status_split [--seconds 3] [--label after]``. Two `KubeSource`s (the
speaker's Kubernetes side, each with its own API client) against the fake API server
(tests/helpers/fake_apiserver.py, reached over HTTP by the real `kubernetes` client) both
report that they announce `default/web`, as two speakers do during a partition. For
`--seconds` the fake server counts every write to servicel2statuses (POST creates, PATCH
status writes, DELETEs): `writes_per_second` over the whole run, start-up included, and
`steady_writes_per_second` after the first second (a settled split writes nothing). The
result is merged into ``bench/results/l2status_split.json`` under `--label`, with the
commit measured, so the same script run on an older tree (``PYTHONPATH=<old tree> python
bench/l2status_split.py --label before --commit <sha>``) gives the before/after pair.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "l2status_split.json"
NS = "metallb-system"


def _fake_apiserver() -> ModuleType:
    path = REPO / "tests" / "helpers" / "fake_apiserver.py"
    spec = importlib.util.spec_from_file_location("_bench_fake_apiserver", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _commit(tree: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _writes(api: Any) -> int:
    return sum(len(api.requests_for(m, "/servicel2statuses")) for m in ("POST", "PATCH", "DELETE"))


def measure(seconds: float) -> dict[str, Any]:
    """Run the split for `seconds` after both speakers have synced; count the writes."""
    import l2agent
    from l2agent.kube.convert import new_api_client
    from l2agent.kube.source import KubeSource, SourceConfig
    from l2agent.kube.watch import WatchConfig
    from l2agent.model.crds import InterfaceSelection

    fake = _fake_apiserver()
    config = SourceConfig(
        watch=WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2),
        debounce=0.02,
    )
    with fake.FakeApiServer() as api:
        for name in ("node-1", "node-2"):
            api.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
            }
        )
        clients = [new_api_client(None, host=api.url) for _ in range(2)]
        sources = [
            KubeSource(
                c,
                namespace=NS,
                node_name=f"node-{i + 1}",
                on_snapshot=lambda r: None,
                config=config,
            ).start()
            for i, c in enumerate(clients)
        ]
        try:
            deadline = time.monotonic() + 10
            while not all(s.synced for s in sources) and time.monotonic() < deadline:
                time.sleep(0.01)
            start = time.monotonic()
            for s in sources:
                s.report_announcements({"default/web": InterfaceSelection(True)})
            time.sleep(1.0)
            after_first_second = _writes(api)
            time.sleep(max(0.0, seconds - 1.0))
            elapsed = time.monotonic() - start
            counts = {
                verb: len(api.requests_for(method, "/servicel2statuses"))
                for verb, method in (
                    ("creates", "POST"),
                    ("status_writes", "PATCH"),
                    ("deletes", "DELETE"),
                )
            }
            left = len(api.items("ServiceL2Status"))
        finally:
            for s in sources:
                s.stop()
            for c in clients:
                c.close()
    total = sum(counts.values())
    steady = (total - after_first_second) / max(elapsed - 1.0, 1e-9)
    return {
        "code": str(Path(l2agent.__file__).resolve().parents[1]),
        "commit": _commit(Path(l2agent.__file__).resolve().parents[1]),
        "seconds": round(elapsed, 3),
        **counts,
        "writes": total,
        "writes_per_second": round(total / elapsed, 2),
        "steady_writes_per_second": round(steady, 2),
        "objects_at_end": left,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--label", default="after")
    ap.add_argument("--commit", help="the commit measured, when its tree is no git checkout")
    args = ap.parse_args(argv)
    result = measure(args.seconds)
    if args.commit:
        result["commit"] = args.commit
    result["python"] = platform.python_version()
    print(json.dumps({args.label: result}, indent=2))
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[args.label] = result
    if "before" in data and "after" in data and data["after"]["writes_per_second"] > 0:
        data["ratio_before_over_after"] = round(
            data["before"]["writes_per_second"] / data["after"]["writes_per_second"], 1
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
