#!/usr/bin/env python3
"""Prints the "how cost grows" tables of docs/benchmarks.md from what
scripts/bench-scale.sh leaves in OUT_DIR, and draws them as PNG plots.

  scripts/bench_scale_report.py OUT_DIR [IMAGES_DIR]

OUT_DIR holds, per key count K, scale-K.json (load, footprint, rebuild and
join figures) and the dynamo-bench reports scale-K-write.json and
scale-K-read.json. The plots (scale-throughput.png, scale-latency.png,
scale-transfers.png) go to IMAGES_DIR when it is given; they need
matplotlib (Debian: python3-matplotlib).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench_report import pyplot, save

Report = dict[str, Any]

OPERATIONS = ("write", "read")
PERCENTILES = (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))
MIB = 1024 * 1024


def load(out: Path) -> list[tuple[Report, dict[str, Report]]]:
    """Each key count's summary with its bench reports, fewest keys first."""
    runs = []
    for path in out.glob("scale-*.json"):
        parts = path.stem.split("-")
        if len(parts) != 2:
            continue
        summary = json.loads(path.read_text())
        keys = summary["keys"]
        reports = {op: json.loads((out / f"scale-{keys}-{op}.json").read_text()) for op in OPERATIONS}
        runs.append((summary, reports))
    return sorted(runs, key=lambda run: run[0]["keys"])


def latency(report: Report, op: str) -> dict[str, float]:
    return report["operations"][op]["latency_ms"] or {}


def keys_label(keys: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if keys >= size and keys % size == 0:
            return f"{keys // size} {unit}"
    return str(keys)


def throughput_table(runs: list[tuple[Report, dict[str, Report]]]) -> str:
    lines = [
        "| keys | operation | ops/s | p50 ms | p99 ms | p99.9 ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for summary, reports in runs:
        for op in OPERATIONS:
            report = reports[op]
            stats = report["operations"][op]
            lat = latency(report, op)
            cells = [f"{lat.get(p, float('nan')):.2f}" for p, _ in PERCENTILES]
            lines.append(
                f"| {keys_label(summary['keys'])} | {op}s | {stats['ops_per_sec']:,.0f} | "
                + " | ".join(cells)
                + f" | {stats['errors']['total']} |"
            )
    return "\n".join(lines)


def footprint_table(runs: list[tuple[Report, dict[str, Report]]]) -> str:
    lines = [
        "| keys | load time s | RSS MiB (per node, max) | RSS bytes per key | disk MiB (per node, max) "
        "| disk bytes per key per replica |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for summary, _ in runs:
        keys = summary["keys"]
        rss = max(n["rss_kib"] for n in summary["nodes"]) * 1024
        disk = max(n["disk_bytes"] for n in summary["nodes"])
        lines.append(
            f"| {keys_label(keys)} | {summary['load_secs']:.0f} | {rss / MIB:.0f} | {rss / keys:.0f} "
            f"| {disk / MIB:.0f} | {disk / keys:.0f} |"
        )
    return "\n".join(lines)


def transfer_table(runs: list[tuple[Report, dict[str, Report]]]) -> str:
    lines = [
        "| keys | change | time s | keys received | MiB received | keys/s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for summary, _ in runs:
        for change, what in (("rebuild", "rebuild node 3"), ("join", "add node 4")):
            figures = summary[change]
            moved = figures["moved"]
            rate = moved["keys"] / figures["secs"] if figures["secs"] else 0
            lines.append(
                f"| {keys_label(summary['keys'])} | {what} | {figures['secs']:.1f} | {moved['keys']:,} "
                f"| {moved['bytes'] / MIB:,.0f} | {rate:,.0f} |"
            )
    return "\n".join(lines)


def plot(runs: list[tuple[Report, dict[str, Report]]], images: Path) -> None:
    """Draws throughput, latency percentiles and transfer times against
    the key count."""
    plt = pyplot()
    keys = [summary["keys"] for summary, _ in runs]
    value_size = runs[0][0]["value_size"]
    images.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(6, 4))
    for op in OPERATIONS:
        ax.plot(keys, [r[op]["operations"][op]["ops_per_sec"] for _, r in runs], marker="o", label=f"{op}s")
    finish(ax, f"Maximum throughput, 3 nodes, {value_size} B values", "operations per second")
    ax.set_ylim(bottom=0)
    save(fig, images / "scale-throughput.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, op in zip(axes, OPERATIONS, strict=True):
        for key, label in PERCENTILES:
            ax.plot(keys, [latency(r[op], op).get(key) for _, r in runs], marker="o", label=label)
        finish(ax, f"{op}s at maximum throughput", "latency (ms)")
        ax.set_yscale("log")
    save(fig, images / "scale-latency.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for change, label in (("rebuild", "rebuild a wiped replica"), ("join", "add a fourth node")):
        ax.plot(keys, [summary[change]["secs"] for summary, _ in runs], marker="o", label=label)
    finish(ax, "Time until every partition is in place", "seconds")
    ax.set_yscale("log")
    save(fig, images / "scale-transfers.png")


def finish(ax: Any, title: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("keys")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("images", type=Path, nargs="?")
    args = parser.parse_args()
    runs = load(args.out)
    if not runs:
        sys.exit(f"no scale-*.json reports in {args.out}")
    summary = runs[0][0]
    rate = summary["transfer_keys_per_sec"]
    print(f"values of {summary['value_size']} bytes; transfers at most {rate:,} keys/s\n")
    print(throughput_table(runs), end="\n\n")
    print(footprint_table(runs), end="\n\n")
    print(transfer_table(runs))
    if args.images:
        plot(runs, args.images)


if __name__ == "__main__":
    main()
