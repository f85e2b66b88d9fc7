#!/usr/bin/env python3
"""Prints the tables of docs/benchmarks.md from the JSON reports that
scripts/bench.sh leaves in OUT_DIR.

  scripts/bench_report.py OUT_DIR FSYNC [--images DIR]

FSYNC (true or false: whether the nodes ran with DYNAMO_FSYNC) is printed
above the tables. OUT_DIR holds one dynamo-bench JSON report per run
(baseline-{write,read}[-half], {write,read,mixed}-{max,half},
slow-{healthy,paused}, million) and
storage.json from scripts/storage-floor.sh. The tables need the standard
library only; --images also draws them (runs-throughput.png,
runs-latency.png) with matplotlib (Debian: python3-matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = dict[str, Any]

PERCENTILES = ("p50", "p90", "p99", "p999", "max")
# The load tool and the one-hop server; every other monitored process is a node.
NOT_NODES = ("dynamo-bench", "baseline-server")
BASELINE_WORKLOADS = ("write", "read")
CLUSTER_WORKLOADS = ("write", "read", "mixed")
# Issue 18's throughput targets, as shares of the one-hop baseline: the
# budget table says how much CPU per operation they leave.
WRITE_TARGET = 0.20
READ_TARGET = 0.35

THROUGHPUT_HEADER = (
    "| target | workload | mode | ops/s | % of baseline | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
    "| errors | node CPU % (sum) | node RSS MiB (max) |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)
SLOW_HEADER = (
    "| node 3 | operation | mode | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
)
BUDGET_HEADER = (
    "| target | allowed | load tool | one HTTP hop (server side) | RocksDB alone "
    "| left for everything else | the nodes today, at max |\n"
    "|---|---:|---:|---:|---:|---:|---:|"
)


def load(out_dir: Path, name: str) -> Report:
    """The report `name`.json of OUT_DIR."""
    with open(out_dir / f"{name}.json") as f:
        return json.load(f)


def latency_columns(operation: Report) -> str:
    """The latency percentiles of one operation type, in ms (0 when none)."""
    latency = operation["latency_ms"] or {}
    return " | ".join(f"{latency.get(p, 0):.2f}" for p in PERCENTILES)


def is_node(name: str) -> bool:
    return name not in NOT_NODES


def cpu_percent(report: Report, keep: Callable[[str], bool]) -> float:
    """CPU of the report's processes whose name `keep` accepts, summed."""
    return sum(p["cpu_percent"] for p in report["processes"] if keep(p["name"]))


def node_columns(report: Report) -> str:
    """The nodes' CPU (summed) and largest RSS."""
    rss = max((p["rss_max_mib"] for p in report["processes"] if is_node(p["name"])), default=0)
    return f"{cpu_percent(report, is_node):.0f} | {rss:.0f}"


def cpu_us_per_op(report: Report, keep: Callable[[str], bool]) -> float:
    """CPU microseconds per operation of the processes `keep` accepts."""
    return cpu_percent(report, keep) * 1e4 / report["ops_per_sec"]


def mode_label(report: Report, mode: str) -> str:
    return "max" if mode == "max" else f"fixed {report['rate']:.0f}/s"


def print_throughput_table(out_dir: Path, baseline: dict[str, float]) -> None:
    """Throughput and latency of the one-hop baseline, then of the cluster
    as a share of the baseline, with the nodes' CPU and memory."""
    print(THROUGHPUT_HEADER)
    for workload in BASELINE_WORKLOADS:
        for mode in ("max", "half"):
            report = load(out_dir, f"baseline-{workload}" + ("" if mode == "max" else "-half"))
            ops = report["ops_per_sec"]
            share = "100" if mode == "max" else f"{100 * ops / baseline[workload]:.1f}"
            latency = latency_columns(report["operations"][workload])
            print(
                f"| baseline (one hop) | {workload} | {mode_label(report, mode)} | {ops:.0f} | {share} "
                f"| {latency} | {report['errors']} | - | - |"
            )
    for workload in CLUSTER_WORKLOADS:
        if workload == "mixed":
            reference = (baseline["read"] + baseline["write"]) / 2
            kinds = ["read", "write"]
        else:
            reference = baseline[workload]
            kinds = [workload]
        for mode in ("max", "half"):
            report = load(out_dir, f"{workload}-{mode}")
            share = 100 * report["ops_per_sec"] / reference
            for kind in kinds:
                operation = report["operations"][kind]
                name = workload if workload != "mixed" else f"mixed ({kind}s)"
                print(
                    f"| cluster | {name} | {mode_label(report, mode)} | {operation['ops_per_sec']:.0f} "
                    f"| {share:.1f} | {latency_columns(operation)} | {operation['errors']['total']} "
                    f"| {node_columns(report)} |"
                )


def print_budget_table(out_dir: Path, baseline: dict[str, float], cores: int) -> None:
    """The CPU a target leaves per operation on this machine, and what the
    load tool and the trivial server (both from the one-hop run, where they
    are cheapest per request) and RocksDB alone (db_bench) already take of
    it: the rest is all the store may spend on HTTP handling beyond the
    trivial server's, routing, versions and replication. The last column is
    what the three nodes spend today."""

    def budget_row(target: float, workload: str, storage_us: float, storage_label: str) -> None:
        allowed = cores * 1e6 / (target * baseline[workload])
        hop = load(out_dir, f"baseline-{workload}")
        tool = cpu_us_per_op(hop, lambda name: name == "dynamo-bench")
        server = cpu_us_per_op(hop, lambda name: name == "baseline-server")
        left = allowed - tool - server - storage_us
        today = cpu_us_per_op(load(out_dir, f"{workload}-max"), is_node)
        print(
            f"| {workload}s at {100 * target:.0f}% of one hop | {allowed:.1f} | {tool:.1f} | {server:.1f} "
            f"| {storage_us:.1f} ({storage_label}) | {left:.1f} | {today:.1f} |"
        )

    print(
        f"\nCPU per operation the targets allow on this machine ({cores} CPUs), in microseconds"
        f" (RocksDB measured without fsync):\n"
    )
    print(BUDGET_HEADER)
    storage = load(out_dir, "storage")
    get, put = storage["get_us"], storage["put_us"]
    budget_row(WRITE_TARGET, "write", 3 * (get + put), f"3 replicas x ({get:.1f} get + {put:.1f} put)")
    budget_row(WRITE_TARGET, "write", 3 * put, f"3 replicas x {put:.1f} put, never reading first")
    budget_row(READ_TARGET, "read", 2 * get, f"2 replicas x {get:.1f} get")


def print_slow_replica(out_dir: Path) -> None:
    """The mixed open-loop load on two nodes of three, with the third
    healthy and then stopped for the whole window."""
    print("\nA slow replica: 50/50 open loop on nodes 1 and 2; node 3 healthy, then stopped (SIGSTOP):\n")
    print(SLOW_HEADER)
    for name, third in (("slow-healthy", "healthy"), ("slow-paused", "stopped")):
        report = load(out_dir, name)
        for kind in ("read", "write"):
            operation = report["operations"][kind]
            print(
                f"| {third} | {kind}s | {mode_label(report, 'half')} | {operation['ops_per_sec']:.0f} "
                f"| {latency_columns(operation)} | {operation['errors']['total']} |"
            )


def print_memory(out_dir: Path) -> None:
    """Memory of every process after loading a million keys."""
    print("\nAfter loading 1,000,000 keys of 1 KiB:")
    for p in load(out_dir, "million")["processes"]:
        print(
            f"- {p['name']} (pid {p['pid']}): RSS max {p['rss_max_mib']:.0f} MiB, "
            f"at end {p['rss_end_mib']:.0f} MiB"
        )


def cluster_runs(out_dir: Path) -> list[tuple[str, Report]]:
    """(label, operation figures) of every cluster run, per operation type."""
    runs = []
    for workload in CLUSTER_WORKLOADS:
        kinds = ["read", "write"] if workload == "mixed" else [workload]
        for mode in ("max", "half"):
            report = load(out_dir, f"{workload}-{mode}")
            for kind in kinds:
                name = workload if workload != "mixed" else f"mixed {kind}s"
                runs.append((f"{name}\n{mode_label(report, mode)}", report["operations"][kind]))
    return runs


def plot(out_dir: Path, baseline: dict[str, float], images: Path) -> None:
    """Throughput at maximum against the one-hop baseline, and the latency
    percentiles of every cluster run."""
    plt = pyplot()
    images.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, cluster, hop = [], [], []
    for workload in BASELINE_WORKLOADS:
        labels.append(f"{workload}s")
        cluster.append(load(out_dir, f"{workload}-max")["ops_per_sec"])
        hop.append(baseline[workload])
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], hop, width=0.4, label="one HTTP hop (baseline)")
    bars = ax.bar([x + 0.2 for x in xs], cluster, width=0.4, label="3-node cluster")
    for bar, ops, ref in zip(bars, cluster, hop, strict=True):
        ax.annotate(
            f"{100 * ops / ref:.0f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center"
        )
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("operations per second")
    ax.set_title("Maximum throughput, same window", fontsize=10)
    ax.legend()
    save(fig, images / "runs-throughput.png")

    runs = cluster_runs(out_dir)
    fig, ax = plt.subplots(figsize=(11, 4))
    shown = ("p50", "p99", "p999")
    width = 0.8 / len(shown)
    for i, p in enumerate(shown):
        values = [(op["latency_ms"] or {}).get(p, 0) for _, op in runs]
        ax.bar(
            [x + (i - 1) * width for x in range(len(runs))],
            values,
            width=width,
            label=p.replace("999", "99.9"),
        )
    ax.set_xticks(range(len(runs)), [label for label, _ in runs], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles of each cluster run", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend()
    save(fig, images / "runs-latency.png")


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: object, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="the JSON reports of scripts/bench.sh")
    parser.add_argument("fsync", metavar="FSYNC", help="whether the nodes ran with fsync (printed as is)")
    parser.add_argument("--images", type=Path, help="also draw the tables as PNG plots into this directory")
    args = parser.parse_args()
    baseline = {w: load(args.out_dir, f"baseline-{w}")["ops_per_sec"] for w in BASELINE_WORKLOADS}
    print(f"fsync per write: {args.fsync}\n")
    print_throughput_table(args.out_dir, baseline)
    print_budget_table(args.out_dir, baseline, os.cpu_count())
    print_slow_replica(args.out_dir)
    print_memory(args.out_dir)
    if args.images:
        plot(args.out_dir, baseline, args.images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
