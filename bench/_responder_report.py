"""``bench/results/responder_rate.md``: the responder benchmark's JSON held to issue 12's goals.

Each goal gets one line with the measured figure and "met" or "MISSED"; the tables below
give every point of the sweep (ours beside the kernel's, same generator, same offered rate).
"""

from __future__ import annotations

from typing import Any

__all__ = ["goals", "render"]

UNOWNED_SHARE = 0.05
RATIO = 0.95
P99_US = 1000.0
PYTHON_RATE = 130_000


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _unowned(result: dict[str, Any]) -> tuple[str, bool] | None:
    shares = []
    if result.get("unowned_flood"):
        shares.append(("alone", result["unowned_flood"]))
    floods = result.get("cluster", {}).get("floods", {})
    if floods.get("unowned"):
        shares.append(("3 speakers, busy CPUs", floods["unowned"]))
    if not shares:
        return None
    parts, ok = [], True
    for where, row in shares:
        share = row.get("responder_cpu_share", row.get("speaker_cpu_share"))
        worst = max(share.values()) if isinstance(share, dict) else share
        ok = ok and worst <= UNOWNED_SHARE
        text = f"{where}: {worst:.1%} of a core at {row['offered_per_s']:,}/s"
        idle = floods.get("idle", {}).get("speaker_cpu_share")
        if isinstance(share, dict) and idle:
            text += f" (the same speakers without a flood: {max(idle.values()):.1%})"
        parts.append(text)
    return "unowned flood, each speaker at most 5 % of a core: " + "; ".join(parts), ok


def _owned(result: dict[str, Any]) -> list[tuple[str, bool]]:
    out = []
    for row in result.get("vs_kernel", []):
        if row["generator"] == "python" and row["rate"] == PYTHON_RATE:
            out.append((
                f"owned {row['proto']} flood, Python generator at {PYTHON_RATE:,}/s: "
                f"answered/offered {row['ours']:.3f} vs the kernel's {row['kernel']:.3f} "
                f"(ratio {row['ratio']:.3f}, goal >= {RATIO})",
                row["ratio"] >= RATIO,
            ))  # fmt: skip
    return out


def _latency(result: dict[str, Any]) -> list[tuple[str, bool]]:
    out = []
    for key, row in result.get("latency_10k", {}).items():
        if not key.endswith("/l2agent") or row["p99_us"] is None:
            continue
        kernel = result["latency_10k"].get(key.replace("l2agent", "kernel"), {})
        out.append((
            f"{key.split('/')[0]} p99 at 10,000/s: {row['p99_us']:.0f} µs (p50 {row['p50_us']:.0f};"
            f" kernel p99 {kernel.get('p99_us')}, p50 {kernel.get('p50_us')}), goal <= 1 ms",
            row["p99_us"] <= P99_US,
        ))  # fmt: skip
    return out


def _cluster(result: dict[str, Any]) -> tuple[str, bool] | None:
    floods = result.get("cluster", {}).get("floods")
    if not floods:
        return None
    bad = {}
    for name, flood in floods.items():
        for node, changed in flood["changed"].items():
            hits = {
                k: v
                for k, v in changed.items()
                if k.startswith(("l2agent_gossip_", "l2agent_ownership_changes")) and v
            }
            if hits:
                bad[f"{name}/{node}"] = hits
    text = "3 speakers, both CPUs busy, full-rate floods (owned, unowned): "
    text += "no suspicion, failure or ownership change" if not bad else f"changes: {bad}"
    return text, not bad


def goals(result: dict[str, Any]) -> list[tuple[str, bool]]:
    """(line, met) for every goal the result has figures for."""
    found: list[tuple[str, bool] | None] = [_unowned(result)]
    found += _owned(result) + _latency(result) + [_cluster(result)]
    return [g for g in found if g is not None]


def _sweep_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| proto | generator | rate | offered/s (ours, kernel) | answered/offered ours | "
        "kernel | ratio | our CPU per 10k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.get("vs_kernel", []):
        lines.append(
            f"| {r['proto']} | {r['generator']} | {r['rate']} | "
            f"{r['offered_per_s']:,}, {r['kernel_offered_per_s']:,} | {r['ours']:.3f} | "
            f"{r['kernel']:.3f} | {r['ratio']:.3f} | {r['cpu_per_10k'] * 1000:.1f} ms |"
        )
    return lines


def render(result: dict[str, Any]) -> str:
    """The Markdown summary."""
    lines = [
        "# Responder rate: our data plane against the Linux kernel",
        "",
        f"`{result['command']}` at {result['when']} (kernel {result['kernel']}, Python "
        f"{result['python']}, {result['cpus']} CPUs, load {result['load_avg_at_start'][0]:.2f};"
        f" {result['seconds']} s a point; privileges: {result.get('privileges', 'root')}).",
        "",
        "## Goals (issue 12)",
        "",
    ]
    lines += [f"- {_verdict(ok)}: {text}" for text, ok in goals(result)]
    lines += ["", "## Same generator, same offered rate", "", *_sweep_table(result), ""]
    cluster = result.get("cluster")
    if cluster:
        lines += ["## Three speakers, both CPUs busy", ""]
        for name, flood in cluster["floods"].items():
            shares = ", ".join(f"{n} {v:.1%}" for n, v in flood["speaker_cpu_share"].items())
            lines.append(f"- {name}: offered {flood['offered_per_s']:,}/s; CPU {shares}")
        lines.append("")
    return "\n".join(lines)
