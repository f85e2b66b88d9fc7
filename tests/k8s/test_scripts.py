"""The packaging's shell scripts parse and are shellcheck-clean; the Python
ones compile; the benchmark report computes its CPU budget right.
(e2e/run.sh cannot run without a cluster; this is what is checked of it
here.)"""

from __future__ import annotations

import py_compile
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SHELL_SCRIPTS = sorted(
    [
        *REPO.glob("scripts/*.sh"),
        *REPO.glob("e2e/*.sh"),
        *REPO.glob("tests/docker/*.sh"),
        *REPO.glob("testbed/*.sh"),
        *REPO.glob("testbed/controlplane/*.sh"),
        *REPO.glob("tests/controlplane/*.sh"),
        *REPO.glob("tests/api/*.sh"),
    ]
)
# Sourced by the scripts above: no shebang, no `set`, checked the same way.
SHELL_LIBRARIES = sorted(REPO.glob("scripts/lib/*.sh"))
PYTHON_SCRIPTS = sorted(
    [
        *REPO.glob("scripts/*.py"),
        *REPO.glob("e2e/*.py"),
        *REPO.glob("tests/docker/*.py"),
        *REPO.glob("testbed/*.py"),
    ]
)


def test_the_scripts_exist():
    names = {p.relative_to(REPO).as_posix() for p in SHELL_SCRIPTS + PYTHON_SCRIPTS}
    assert {
        "e2e/run.sh",
        "scripts/docker-base.sh",
        "scripts/build-images.sh",
        "scripts/render-manifests.py",
        "tests/docker/cluster.py",
    } <= names


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shell_script(path):
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "bash shebang"
    assert "set -euo pipefail" in text
    check_bash(path, "--external-sources")


@pytest.mark.parametrize("path", SHELL_LIBRARIES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shell_library(path):
    assert path.read_text().startswith("# shellcheck shell=bash\n"), "says its shell to shellcheck"
    check_bash(path)


def check_bash(path, *shellcheck_flags):
    """`bash -n`, then shellcheck (skipped when it is not installed)."""
    subprocess.run(["bash", "-n", str(path)], check=True)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/k8s-tests.sh installs it with apt)")
    result = subprocess.run([shellcheck, *shellcheck_flags, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", PYTHON_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_python_script_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_e2e_cluster_matches_the_crd():
    from conftest import load_yaml_all, render_manifests, validate_dynamocluster

    out = subprocess.run(
        [str(REPO / "e2e" / "run.sh"), "--print-cluster-spec"], check=True, capture_output=True, text=True
    ).stdout
    assert not render_manifests.yaml11_ambiguities(out)
    (cluster,) = load_yaml_all(out)
    validate_dynamocluster(cluster)
    assert len(cluster["spec"]["zones"]) == 3


def _report(ops, processes, kinds, rate=None):
    """A dynamo-bench JSON report with what scripts/bench_report.py reads."""
    latency = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 4.0, "max": 5.0}
    return {
        "ops_per_sec": ops,
        "rate": rate,
        "errors": 0,
        "operations": {
            k: {"ops_per_sec": ops / len(kinds), "latency_ms": latency, "errors": {"total": 0}} for k in kinds
        },
        "processes": [
            {"pid": i, "name": name, "cpu_percent": cpu, "rss_max_mib": 100.0, "rss_end_mib": 90.0}
            for i, (name, cpu) in enumerate(processes)
        ],
    }


def test_bench_report_budget(tmp_path):
    """The budget table: CPU a target allows per operation, minus the load
    tool and trivial server (from the one-hop run) and RocksDB alone."""
    import json
    import os

    reports = {"storage": {"get_us": 5.0, "put_us": 10.0}}
    for w, ops in (("write", 100_000), ("read", 200_000)):
        # 100% CPU at 100k ops/s is 10 us per op; 80% is 8 us.
        reports[f"baseline-{w}"] = _report(
            ops, [("dynamo-bench", ops / 1e3), ("baseline-server", ops / 1.25e3)], [w]
        )
        reports[f"baseline-{w}-half"] = _report(ops / 2, [], [w], rate=ops / 2)
    for w in ("write", "read", "mixed"):
        kinds = ["read", "write"] if w == "mixed" else [w]
        nodes = [("dynamo-bench", 20.0)] + [("dynamo-node", 50.0)] * 3
        reports[f"{w}-max"] = _report(10_000, nodes, kinds)
        reports[f"{w}-half"] = _report(5_000, nodes, kinds, rate=5_000)
    reports["million"] = _report(1_000, [("dynamo-node", 10.0)], ["read"])
    for name in ("slow-healthy", "slow-paused"):
        reports[name] = _report(4_000, nodes, ["read", "write"], rate=4_000)
    for name, report in reports.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    out = subprocess.run(
        [str(REPO / "scripts" / "bench_report.py"), str(tmp_path), "false"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split(" | ") for line in out.splitlines() if " of one hop |" in line]
    cores = os.cpu_count()
    write_allowed = cores * 1e6 / (0.2 * 100_000)
    read_allowed = cores * 1e6 / (0.35 * 200_000)
    # columns: target, allowed, tool, server, RocksDB, left, nodes today
    assert [r[1:4] for r in rows] == [[f"{write_allowed:.1f}", "10.0", "8.0"]] * 2 + [
        [f"{read_allowed:.1f}", "10.0", "8.0"]
    ]
    assert rows[0][4].startswith("45.0 (3 replicas x (5.0 get + 10.0 put))")
    assert rows[1][4].startswith("30.0 (3 replicas x 10.0 put")
    assert rows[2][4].startswith("10.0 (2 replicas x 5.0 get)")
    assert [r[5] for r in rows] == [
        f"{write_allowed - 63:.1f}",
        f"{write_allowed - 48:.1f}",
        f"{read_allowed - 28:.1f}",
    ]
    # the three nodes at 50% each over 10,000 ops/s: 150 us per operation
    assert [r[6].rstrip(" |") for r in rows] == ["150.0"] * 3
    # the slow-replica table: node 3 healthy, then stopped, reads and writes
    slow = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith(("| healthy", "| stopped"))]
    assert slow == [
        ["| healthy", "reads"],
        ["| healthy", "writes"],
        ["| stopped", "reads"],
        ["| stopped", "writes"],
    ]


def test_e2e_cluster_objects():
    """e2e/cluster_objects.py finds the pods and the client Service a
    DynamoCluster owns, as e2e/run.sh reads them from kubectl."""
    import json

    def owned_by(kind, name):
        return {"ownerReferences": [{"kind": kind, "name": name}]}

    def pod(name, statefulset, ready, **metadata):
        return {
            "kind": "Pod",
            "metadata": {"name": name, **owned_by("StatefulSet", statefulset), **metadata},
            "spec": {"containers": [{"image": "dynamo-node:1"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }

    pods = [
        {"kind": "StatefulSet", "metadata": {"name": "e2e-a", **owned_by("DynamoCluster", "e2e")}},
        {"kind": "StatefulSet", "metadata": {"name": "other-a", **owned_by("DynamoCluster", "other")}},
        pod("e2e-a-0", "e2e-a", ready=True),
        pod("e2e-a-1", "e2e-a", ready=False),
        pod("e2e-a-2", "e2e-a", ready=True, deletionTimestamp="2026-01-01T00:00:00Z"),
        pod("other-a-0", "other-a", ready=True),
    ]
    services = [
        {
            "metadata": {"name": "e2e-peers", **owned_by("DynamoCluster", "e2e")},
            "spec": {"clusterIP": "None"},
        },
        {"metadata": {"name": "e2e", **owned_by("DynamoCluster", "e2e")}, "spec": {"clusterIP": "10.0.0.1"}},
    ]

    def run(command, items):
        return subprocess.run(
            [sys.executable, str(REPO / "e2e" / "cluster_objects.py"), command, "e2e"],
            input=json.dumps({"items": items}),
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    assert run("pods", pods) == "e2e-a-0 ready dynamo-node:1\ne2e-a-1 notready dynamo-node:1\n"
    assert run("client-service", services) == "e2e\n"
    assert run("client-service", services[:1]) == ""


def test_bench_scale_report(tmp_path):
    """The "how cost grows" tables: per key count the throughput, the
    memory and disk per key, and the transfer rates of rebuild and join."""
    import json

    for keys in (1_000_000, 100_000):
        summary = {
            "keys": keys,
            "value_size": 256,
            "transfer_keys_per_sec": 1_000_000,
            "load_secs": keys / 10_000,
            "nodes": [
                {"node": i, "rss_kib": keys * 200 // 1024, "disk_bytes": keys * 400 - i} for i in (1, 2, 3)
            ],
            "rebuild": {"secs": keys / 50_000, "moved": {"keys": 2 * keys, "bytes": keys * 1024}},
            "join": {"secs": keys / 25_000, "moved": {"keys": keys, "bytes": keys * 512}},
        }
        (tmp_path / f"scale-{keys}.json").write_text(json.dumps(summary))
        for op in ("write", "read"):
            report = _report(keys / 100, [], [op])
            (tmp_path / f"scale-{keys}-{op}.json").write_text(json.dumps(report))
    out = subprocess.run(
        [str(REPO / "scripts" / "bench_scale_report.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [
        line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith(("| 100 k", "| 1 M"))
    ]
    # fewest keys first: throughput (writes, reads), footprint, transfers
    assert [r[:3] for r in rows[:4]] == [
        ["100 k", "writes", "1,000"],
        ["100 k", "reads", "1,000"],
        ["1 M", "writes", "10,000"],
        ["1 M", "reads", "10,000"],
    ]
    # about 200 bytes of RSS a key (19 MiB), 400 bytes of disk (38 MiB)
    assert rows[4] == ["100 k", "10", "19", "200", "38", "400"]
    # a rebuilt replica receives each key from both other replicas
    assert rows[6][0] == "100 k" and rows[6][-1] == "100,000" and rows[7][-1] == "25,000"
    assert rows[8][:4] == ["1 M", "rebuild node 3", "20.0", "2,000,000"]


def test_profile_components(tmp_path):
    """Each sample counts once, for the innermost frame that names a
    component: an allocation RocksDB asks for is allocation, a RocksDB
    frame under the node's storage code is RocksDB."""
    folded = tmp_path / "write.folded"
    folded.write_text(
        "tokio-rt-worker;dynamo_node::storage::writer::prepare;rocksdb::DBImpl::GetImpl 50\n"
        "tokio-rt-worker;rocksdb::DBImpl::GetImpl;mi_malloc 20\n"
        "tokio-rt-worker;hyper::proto::h1::dispatch::poll;axum::routing::Router::call 20\n"
        "tokio-rt-worker;[unknown] 10\n"
    )
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "profile_components.py"), str(folded)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.strip("| ").split(" | ") for line in out.splitlines()[2:]]
    assert rows == [
        ["RocksDB (lookups, writes, flushes, compactions)", "50.0%"],
        ["allocation", "20.0%"],
        ["routing and middleware (axum, tower)", "20.0%"],
        ["other", "10.0%"],
    ]
