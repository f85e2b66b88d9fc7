"""A three-node cluster of `dynamo-node serve` processes on loopback, for
tests that look at it with real tools (tests/observability/run.sh)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_binary() -> Path:
    """The dynamo-node run.sh built (or $DYNAMO_NODE_BIN)."""
    path = Path(os.environ.get("DYNAMO_NODE_BIN", REPO / "target" / "debug" / "dynamo-node"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run tests/observability/run.sh, which builds it")
    return path


def artifacts_dir() -> Path:
    """Where tests keep artefacts worth looking at after a run."""
    path = Path(os.environ.get("DYNAMO_ARTIFACTS", REPO / "target" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request; the status and body, also for 4xx and 5xx answers."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if `process` has not exited after `grace` s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(what: str, check, timeout: float, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """The first truthy result of `check()`, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Node:
    """One node process: its id, zone, client and internal addresses."""

    id: str
    zone: str
    client: str
    internal: str
    data_dir: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the client port."""
        return f"http://{self.client}"

    @property
    def admin_url(self) -> str:
        """Base URL of the internal (node-to-node and admin) port."""
        return f"http://{self.internal}"

    def ready(self) -> bool:
        try:
            return http("GET", f"{self.url}/readyz", timeout=2.0)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is not None:
            stop_process(self.process, 10.0)


@dataclass
class Cluster:
    """Three nodes in three zones, n = 3, r = w = 2."""

    nodes: list[Node]

    def start(self) -> None:
        peers = [f"--peer={n.id}={n.internal},{n.zone}" for n in self.nodes]
        for node in self.nodes:
            command = [
                str(node_binary()),
                "serve",
                f"--node-id={node.id}",
                f"--zone={node.zone}",
                f"--listen={node.client}",
                f"--internal-listen={node.internal}",
                f"--data-dir={node.data_dir}",
                "--initial-cluster-state=new",
                *peers,
                *node.extra_args,
            ]
            env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), **node.extra_env}
            log = node.log_path.open("ab")
            node.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        for node in self.nodes:
            wait_until(f"{node.id} ready", node.ready, READY_TIMEOUT)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def put(self, key: str, value: bytes, node: int = 0) -> int:
        return http("PUT", f"{self.nodes[node].url}/v1/kv/{key}", value)[0]

    def get(self, key: str, node: int = 0) -> tuple[int, bytes]:
        return http("GET", f"{self.nodes[node].url}/v1/kv/{key}")

    def status(self, node: int = 0) -> dict:  # type: ignore[type-arg]
        return json.loads(http("GET", f"{self.nodes[node].url}/v1/status")[1])


def make_cluster(
    tmp_path: Path, extra_args: list[str] | None = None, extra_env: dict[str, str] | None = None
) -> Cluster:
    """Three nodes (n1, n2, n3 in zones z1, z2, z3), not started."""
    nodes = []
    for i in range(1, 4):
        nodes.append(
            Node(
                id=f"n{i}",
                zone=f"z{i}",
                client=f"127.0.0.1:{free_port()}",
                internal=f"127.0.0.1:{free_port()}",
                data_dir=tmp_path / f"n{i}",
                log_path=tmp_path / f"n{i}.log",
                extra_args=list(extra_args or []),
                extra_env=dict(extra_env or {}),
            )
        )
    return Cluster(nodes)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A started three-node cluster, stopped after the test (logs kept in
    the test's directory when it fails)."""
    started = make_cluster(tmp_path)
    try:
        started.start()
        yield started
    finally:
        started.stop()
