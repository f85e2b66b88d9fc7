#!/usr/bin/env python3
"""Three dynamo-node containers on a private Docker network, under faults.

Builds the node image from the host's debug binary (scripts/build-images.sh,
which runs `cargo build -p dynamo-node` and makes the debootstrapped base image
once), starts three containers with static peers (container names as hosts,
N=3 R=2 W=2, one zone each), then writes through one node while it

  1. runs healthy,
  2. has one container stopped (`docker stop`),
  3. also has another disconnected from the network (`docker network
     disconnect`): writes need W=2 of 3 replicas, so they answer 503 now,
  4. gets the network back and the stopped container restarted,

and finally reads every acknowledged write from each node and compares the
value byte for byte. Only writes answered 204 count as acknowledged; a write
that failed or timed out is not required to be readable (it may be: Dynamo
keeps partial writes).

All requests go from the host to 127.0.0.1, to ports Docker publishes for the
containers. Containers and the network are removed on exit, also on failure or
Ctrl-C. Exits 0 with a SKIP line if no Docker engine is reachable.

Standard library only.

  tests/docker/cluster.py                the test; the image is removed after it
  tests/docker/cluster.py --keep-image   keep the image dynamo-node:cluster-test-PID
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_ID = f"{os.getpid()}"
PREFIX = f"dynamo-cluster-test-{RUN_ID}"
NETWORK = PREFIX
IMAGE_TAG = f"cluster-test-{RUN_ID}"  # per run: concurrent runs do not retag each other's image
IMAGE = f"{os.environ.get('IMAGE_PREFIX', '')}dynamo-node:{IMAGE_TAG}"
NODES = [("n1", "z1"), ("n2", "z2"), ("n3", "z3")]
WRITER = "n1"  # never stopped nor disconnected: every write goes through it
STOPPED = "n2"  # docker stop, later docker start
CUT = "n3"  # docker network disconnect, later connect

REQUEST_TIMEOUT_S = 5.0


def log(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def result_line(passed: bool) -> int:
    """Prints the closing `passed, failed` line; the exit status that goes with it."""
    print(f"cluster: {int(passed)} passed, {int(not passed)} failed", flush=True)
    return 0 if passed else 1


def docker(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    """Runs `docker ARGS`; raises RuntimeError if it fails and `check` is set."""
    result = subprocess.run(
        ["docker", *args],
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed ({result.returncode}): {(result.stderr or '').strip()}"
        )
    return result


def container(node: str) -> str:
    """The name of the container of `node`."""
    return f"{PREFIX}-{node}"


class Cluster:
    """The network and containers of one run, removed by cleanup()."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.network = False

    def start(self) -> None:
        """Creates the network and starts a container per node."""
        docker("network", "create", "--driver", "bridge", NETWORK)
        self.network = True
        peers = " ".join(f"{node}={container(node)}:7000,{zone}" for node, zone in NODES)
        for node, zone in NODES:
            name = container(node)
            environment = {
                "DYNAMO_NODE_ID": node,
                "DYNAMO_ZONE": zone,
                "DYNAMO_PEERS": peers,
                "DYNAMO_INITIAL_CLUSTER_STATE": "new",
                "DYNAMO_N": "3",
                "DYNAMO_R": "2",
                "DYNAMO_W": "2",
                "DYNAMO_PARTITIONS": "64",
                "DYNAMO_REQUEST_TIMEOUT_MS": "500",
                "DYNAMO_WORKER_THREADS": "2",
            }
            env_args = [arg for key, value in environment.items() for arg in ("--env", f"{key}={value}")]
            docker(
                "run",
                "--detach",
                "--name",
                name,
                "--hostname",
                node,
                "--network",
                NETWORK,
                "--publish",
                "127.0.0.1::7000",
                *env_args,
                IMAGE,
            )
            self.created.append(name)

    def port(self, node: str) -> int:
        """The host port on 127.0.0.1 that Docker publishes for `node`'s 7000."""
        out = docker("port", container(node), "7000/tcp").stdout
        for line in out.splitlines():
            host, _, port = line.strip().rpartition(":")
            if host == "127.0.0.1":
                return int(port)
        raise RuntimeError(f"{container(node)} publishes no 127.0.0.1 port: {out!r}")

    def cleanup(self) -> None:
        """Removes the containers and the network (whatever was created)."""
        for name in self.created:
            docker("rm", "--force", "--volumes", name, check=False)
        if self.network:
            docker("network", "rm", NETWORK, check=False)
        self.created, self.network = [], False

    def logs(self) -> None:
        """Prints the last log lines of every container."""
        for name in self.created:
            result = docker("logs", "--tail", "30", name, check=False)
            log(f"--- last log lines of {name} ---")
            print((result.stdout or "") + (result.stderr or ""), flush=True)


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:`port`: the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def key_path(key: str) -> str:
    """The API path of `key`."""
    return "/v1/kv/" + urllib.parse.quote(key, safe="")


def wait_until(what: str, predicate: Callable[[], bool], timeout_s: float) -> None:
    """Calls `predicate` until it holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            last_error = error
        time.sleep(0.25)
    raise AssertionError(
        f"timed out after {timeout_s:.0f} s waiting for {what}"
        + (f" (last error: {last_error})" if last_error else "")
    )


def is_ready(cluster: Cluster, node: str) -> bool:
    """Whether `node` answers /readyz with 200."""
    return request(cluster.port(node), "GET", "/readyz")[0] == 200


def sees_all_alive(cluster: Cluster, node: str) -> bool:
    """Whether `node` knows every node and sees every peer alive."""
    status, body = request(cluster.port(node), "GET", "/v1/status")
    if status != 200:
        return False
    members = json.loads(body)["members"]
    return len(members) == len(NODES) and all(m["state"] == "alive" for m in members if m["id"] != node)


def write_phase(cluster: Cluster, phase: str, count: int, acked: dict[str, bytes]) -> dict[str, int]:
    """Writes `count` new keys through WRITER; records the acknowledged ones."""
    port = cluster.port(WRITER)
    outcomes: dict[str, int] = {}
    for i in range(count):
        key = f"{phase}/{i:04d}"
        value = f"{phase}:{i}:{os.urandom(6).hex()}".encode()
        try:
            status, _ = request(port, "PUT", key_path(key), value)
            outcome = str(status)
        except (OSError, http.client.HTTPException) as error:
            status, outcome = None, type(error).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if status == 204:
            acked[key] = value
    log(f"phase {phase}: {count} writes -> {outcomes}")
    return outcomes


def report_views(cluster: Cluster) -> None:
    """Logs how each node sees its peers."""
    for node, _ in NODES:
        status, body = request(cluster.port(node), "GET", "/v1/status")
        if status != 200:
            log(f"WARNING: {node} /v1/status answered {status}")
            continue
        members = json.loads(body)["members"]
        view = ", ".join(f"{m['id']}={m['state']}" for m in members)
        stale = [m["id"] for m in members if m["id"] != node and m["state"] != "alive"]
        log(f"{node} sees {view}")
        if stale:
            log(f"WARNING: {node} sees {', '.join(stale)} as not alive")


def verify(cluster: Cluster, acked: dict[str, bytes]) -> list[str]:
    """Reads every acknowledged key from every node: what differs."""
    problems = []
    for node, _ in NODES:
        port = cluster.port(node)
        for key, value in acked.items():
            status, body = request(port, "GET", key_path(key))
            if status != 200 or body != value:
                problems.append(f"via {node}: {key}: expected 200 {value!r}, got {status} {body[:80]!r}")
    return problems


def docker_engine() -> str | None:
    """The Docker engine's version; None (with a SKIP line) if there is none."""
    if shutil.which("docker") is None:
        print("SKIP tests/docker/cluster.py: no docker command on PATH", flush=True)
        return None
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], text=True, capture_output=True, check=False
    )
    if info.returncode != 0:
        print(f"SKIP tests/docker/cluster.py: no Docker engine reachable ({info.stderr.strip()})", flush=True)
        return None
    return info.stdout.strip()


def build_image(started: float) -> bool:
    """Builds IMAGE with scripts/build-images.sh; False if that failed."""
    build = subprocess.run(
        [os.path.join(REPO, "scripts", "build-images.sh"), "--tag", IMAGE_TAG, "node"], cwd=REPO, check=False
    )
    if build.returncode != 0:
        log("building the node image failed")
        return False
    log(f"image {IMAGE} ready after {time.monotonic() - started:.0f} s")
    return True


def start_cluster(cluster: Cluster, acked: dict[str, bytes]) -> None:
    """Starts the nodes and waits until they are ready, run unprivileged,
    acknowledge a first write (recorded in `acked`) and see each other."""
    cluster.start()
    for node, _ in NODES:
        wait_until(f"{node} /readyz", lambda n=node: is_ready(cluster, n), 60)
    uid = docker("exec", container(WRITER), "id", "-u").stdout.strip()
    assert uid == "10001", f"the node runs as uid {uid}, not the unprivileged 10001"

    # The first writes also establish the peer connections.
    wait_until(
        "a first acknowledged write",
        lambda: request(cluster.port(WRITER), "PUT", key_path("warmup"), b"w")[0] == 204,
        60,
    )
    acked["warmup"] = b"w"
    for node, _ in NODES:
        wait_until(f"{node} to see every peer alive", lambda n=node: sees_all_alive(cluster, n), 30)


def write_under_faults(cluster: Cluster, acked: dict[str, bytes]) -> None:
    """Writes while healthy, with one node stopped, and with a second one
    cut off too; checks which writes W=2 allows."""
    healthy = write_phase(cluster, "healthy", 150, acked)
    assert healthy.get("204") == 150, f"a healthy cluster refused writes: {healthy}"

    log(f"docker stop {container(STOPPED)}")
    docker("stop", "--time", "5", container(STOPPED))
    one_down = write_phase(cluster, "one-down", 150, acked)
    assert one_down.get("204", 0) == 150, (
        f"with one of three replicas down, W=2 writes must still succeed: {one_down}"
    )

    log(f"docker network disconnect {NETWORK} {container(CUT)}")
    docker("network", "disconnect", NETWORK, container(CUT))
    two_down = write_phase(cluster, "two-down", 20, acked)
    assert two_down.get("204", 0) == 0, (
        f"with only the coordinator reachable, a W=2 write cannot be acknowledged: {two_down}"
    )


def heal(cluster: Cluster, acked: dict[str, bytes]) -> None:
    """Reconnects the cut node, restarts the stopped one, waits until every
    node sees every peer alive, then checks that writes succeed again."""
    log(f"docker network connect {NETWORK} {container(CUT)}; docker start {container(STOPPED)}")
    docker("network", "connect", NETWORK, container(CUT))
    docker("start", container(STOPPED))
    wait_until(f"{STOPPED} /readyz after restart", lambda: is_ready(cluster, STOPPED), 60)
    wait_until(f"{CUT} /readyz after reconnecting", lambda: is_ready(cluster, CUT), 60)
    # Every node must see every peer alive again, the cut one included:
    # its connections were opened from the address it had before the
    # disconnect, and a node drops a connection that stays silent for a
    # whole request timeout and dials again.
    for node, _ in NODES:
        wait_until(f"{node} to see every peer alive again", lambda n=node: sees_all_alive(cluster, n), 60)
    healed = write_phase(cluster, "healed", 150, acked)
    assert healed.get("204") == 150, f"the healed cluster refused writes: {healed}"


def read_back(cluster: Cluster, acked: dict[str, bytes], started: float) -> int:
    """Reads every acknowledged write from every node; prints the result line."""
    report_views(cluster)
    log(f"reading {len(acked)} acknowledged writes from each of {len(NODES)} nodes")
    problems = verify(cluster, acked)
    if problems:
        for problem in problems[:20]:
            log(f"LOST OR WRONG: {problem}")
        log(f"{len(problems)} reads did not return the acknowledged value")
        cluster.logs()
        return result_line(passed=False)
    log(
        f"every acknowledged write ({len(acked)}) read back exactly from every node "
        f"in {time.monotonic() - started:.0f} s"
    )
    return result_line(passed=True)


def on_sigterm(signum: int, _frame: FrameType | None) -> NoReturn:
    """Turns SIGTERM into KeyboardInterrupt, so the cleanup runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-image", action="store_true", help="keep the image built for the test (removed by default)"
    )
    args = parser.parse_args()
    version = docker_engine()
    if version is None:
        return 0
    log(f"docker engine {version}")

    started = time.monotonic()
    if not build_image(started):
        return 1

    cluster = Cluster()
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        acked: dict[str, bytes] = {}
        start_cluster(cluster, acked)
        write_under_faults(cluster, acked)
        heal(cluster, acked)
        return read_back(cluster, acked, started)
    except (AssertionError, RuntimeError) as error:
        log(f"FAILED: {error}")
        cluster.logs()
        return result_line(passed=False)
    finally:
        cluster.cleanup()
        if not args.keep_image:
            docker("rmi", IMAGE, check=False)


if __name__ == "__main__":
    sys.exit(main())
