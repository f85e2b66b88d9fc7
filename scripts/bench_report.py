#!/usr/bin/env python3
"""Prints the tables of docs/benchmarks.md from the JSON reports that
scripts/bench.sh leaves in OUT_DIR.

Usage: scripts/bench_report.py OUT_DIR FSYNC
"""
import json, os, sys
out, fsync = sys.argv[1], sys.argv[2]
def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)
def lat(op):
    l = op["latency_ms"] or {}
    return " | ".join(f"{l.get(k, 0):.2f}" for k in ("p50", "p90", "p99", "p999", "max"))
def is_node(name):
    return name not in ("dynamo-bench", "baseline-server")
def cpu_percent(report, keep):
    """CPU of the report's processes whose name `keep` accepts, summed."""
    return sum(p["cpu_percent"] for p in report["processes"] if keep(p["name"]))
def nodes(report):
    rss = max((p["rss_max_mib"] for p in report["processes"] if is_node(p["name"])), default=0)
    return f"{cpu_percent(report, is_node):.0f} | {rss:.0f}"
base = {w: load(f"baseline-{w}")["ops_per_sec"] for w in ("write", "read")}
print(f"fsync per write: {fsync}\n")
print("| target | workload | mode | ops/s | % of baseline | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | node CPU % (sum) | node RSS MiB (max) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in ("write", "read"):
    r = load(f"baseline-{w}")
    print(f"| baseline (one hop) | {w} | max | {r['ops_per_sec']:.0f} | 100 | {lat(r['operations'][w])} | {r['errors']} | - | - |")
    r = load(f"baseline-{w}-half")
    print(f"| baseline (one hop) | {w} | fixed {r['rate']:.0f}/s | {r['ops_per_sec']:.0f} | {100 * r['ops_per_sec'] / base[w]:.1f} | {lat(r['operations'][w])} | {r['errors']} | - | - |")
for w in ("write", "read", "mixed"):
    for mode in ("max", "half"):
        r = load(f"{w}-{mode}")
        ops = r["ops_per_sec"]
        ref = base["read"] if w == "read" else base["write"] if w == "write" else (base["read"] + base["write"]) / 2
        label = "max" if mode == "max" else f"fixed {r['rate']:.0f}/s"
        kinds = ["read", "write"] if w == "mixed" else [w]
        for k in kinds:
            op = r["operations"][k]
            name = w if w != "mixed" else f"mixed ({k}s)"
            print(f"| cluster | {name} | {label} | {op['ops_per_sec']:.0f} | {100 * ops / ref:.1f} | {lat(op)} | {op['errors']['total']} | {nodes(r)} |")

# The CPU a target leaves per operation on this machine, and what the load
# tool and the trivial server (both from the one-hop run, where they are
# cheapest per request) and RocksDB alone (db_bench) already take of it:
# the rest is all the store may spend on HTTP handling beyond the trivial
# server's, routing, versions and replication. The last column is what the
# three nodes spend today.
cores = os.cpu_count()
storage = load("storage")
def per_op(report, keep):
    return cpu_percent(report, keep) * 1e4 / report["ops_per_sec"]
def budget(target, workload, replicas_work, work_label):
    allowed = cores * 1e6 / (target * base[workload])
    hop = load(f"baseline-{workload}")
    tool = per_op(hop, lambda name: name == "dynamo-bench")
    server = per_op(hop, lambda name: name == "baseline-server")
    left = allowed - tool - server - replicas_work
    today = per_op(load(f"{workload}-max"), is_node)
    print(f"| {workload}s at {100 * target:.0f}% of one hop | {allowed:.1f} | {tool:.1f} | {server:.1f} "
          f"| {replicas_work:.1f} ({work_label}) | {left:.1f} | {today:.1f} |")
print(f"\nCPU per operation the targets allow on this machine ({cores} CPUs), in microseconds"
      f" (RocksDB measured without fsync):\n")
print("| target | allowed | load tool | one HTTP hop (server side) | RocksDB alone | left for everything else | the nodes today, at max |")
print("|---|---:|---:|---:|---:|---:|---:|")
get, put = storage["get_us"], storage["put_us"]
budget(0.3, "write", 3 * (get + put), f"3 replicas x ({get:.1f} get + {put:.1f} put)")
budget(0.3, "write", 3 * put, f"3 replicas x {put:.1f} put, never reading first")
budget(0.5, "read", 2 * get, f"2 replicas x {get:.1f} get")

m = load("million")
print("\nAfter loading 1,000,000 keys of 1 KiB:")
for p in m["processes"]:
    print(f"- {p['name']} (pid {p['pid']}): RSS max {p['rss_max_mib']:.0f} MiB, at end {p['rss_end_mib']:.0f} MiB")
