"""Fixtures of the control-plane tests: a real Kubernetes control plane
(testbed/), the kubelet stand-in (harness/kubelet.py) and the operator
installed from the chart (harness/operator.py).

`testbed` gives each test its own plane in a temporary directory (started in
about 12 s) and stops everything it started afterwards, even when the test
fails; a failing test gets a "testbed diagnostics" section in its report
(DynamoCluster status, pods and their events, operator and harness logs).

Environment:
  DYNAMO_CP_CARGO_BUILD=1   run `nice -n 10 cargo build -p dynamo-node -p dynamo-operator`
                            first (also done when a binary is missing)
  DYNAMO_CP_REPO=DIR        test another tree (e.g. `git archive HEAD | tar -x -C DIR`):
                            its crds/, helm/, manifests/, scripts/ and target/debug
  DYNAMO_CP_BINARIES=DIR    take dynamo-node and dynamo-operator from DIR
  DYNAMO_CP_PREVIOUS_NODE=FILE  the previous release's dynamo-node (image
                            `dynamo-node-previous`); default: what
                            scripts/build-previous-node.sh builds and prints
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from harness.controlplane import build_binaries
from harness.paths import binaries_dir, product_root
from harness.testbed import Testbed

logging.getLogger("harness").setLevel(logging.INFO)


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so fixtures clean up.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def testbed_bin() -> Path:
    """testbed/build.sh's bin dir (builds once per machine, ~6 min cold)."""
    return build_binaries()


@pytest.fixture(scope="session")
def dynamo_binaries() -> Path:
    """target/debug with dynamo-node and dynamo-operator."""
    target = binaries_dir()
    missing = [name for name in ("dynamo-node", "dynamo-operator") if not (target / name).exists()]
    if missing or os.environ.get("DYNAMO_CP_CARGO_BUILD") == "1":
        subprocess.run(
            ["nice", "-n", "10", "cargo", "build", "-p", "dynamo-node", "-p", "dynamo-operator"],
            cwd=product_root(),
            check=True,
            timeout=3600,
        )
    return target


@pytest.fixture
def testbed(
    request: pytest.FixtureRequest, tmp_path: Path, testbed_bin: Path, dynamo_binaries: Path
) -> Iterator[Testbed]:
    if os.geteuid() != 0:
        pytest.skip("the control-plane tests need root (mount namespaces, /etc/hosts)")
    bed = Testbed(tmp_path, testbed_bin)
    request.node.testbed = bed
    try:
        bed.start_plane()
        yield bed
    finally:
        bed.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    bed = getattr(item, "testbed", None)
    if bed is not None and report.when == "call" and report.failed:
        text = bed.diagnostics()
        (bed.directory / "diagnostics.txt").write_text(text)
        report.sections.append(("testbed diagnostics", f"{bed.artifacts()}\n{text}"))
    if bed is not None and report.when == "call":
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in bed.timings.items())
        report.sections.append(("testbed timings", timings))
    return report
