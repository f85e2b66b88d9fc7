"""Live three-node clusters of `dynamo-node serve` processes on loopback for the client's
tests, plus what some tests need around them: TCP proxies in front of nodes (partitions), an
auth directory, a TLS directory made with openssl, and a request recorder."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from dynamo_client import Client, DynamoError, Retry

REPO = Path(__file__).resolve().parents[3]
READY_TIMEOUT = 60.0
T = TypeVar("T")


def node_binary() -> Path:
    """$DYNAMO_NODE_BIN (relative to the repository root), default target/debug/dynamo-node."""
    path = REPO / os.environ.get("DYNAMO_NODE_BIN", "target/debug/dynamo-node")
    if not path.exists():
        pytest.fail(f"{path} is missing: build it (cargo build -p dynamo-node) or set DYNAMO_NODE_BIN")
    return path


_handed_out: set[int] = set()


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port free on `ip` right now, below Linux's ephemeral range (32768 up), so no
    outgoing connection takes it before the node binds it, and not handed out before."""
    while True:
        port = random.randrange(20000, 32768)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def wait_until(what: str, check: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
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
    """One node process; `command` is fixed when the cluster is made, so a restart is the
    same node on the same data."""

    id: str
    client: str
    internal: str
    data_dir: Path
    log_path: Path
    scheme: str
    verify: ssl.SSLContext | bool
    command: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the client port."""
        return f"{self.scheme}://{self.client}"

    def start(self) -> None:
        """Starts the process (not waiting for it to be ready)."""
        log = self.log_path.open("ab")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()

    def ready(self) -> bool:
        """Whether /readyz answers 200."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.id} exited with {self.process.returncode}; see {self.log_path}")
        try:
            return httpx.get(f"{self.url}/readyz", verify=self.verify, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def signal_stop(self) -> None:
        """Sends SIGTERM."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, grace: float = 10.0) -> None:
        """Waits for the process to exit, SIGKILL after `grace` s."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Cluster:
    """Three nodes n1..n3 in zones z1..z3: n = 3, r = w = 2."""

    nodes: list[Node]
    token: str | None = None
    ca_file: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, *which: int) -> None:
        """Starts the nodes `which` (default all) and waits until they are ready and every
        node reaches every other (see `wait_connected`)."""
        chosen = [self.nodes[i] for i in which] if which else self.nodes
        for node in chosen:
            node.start()
        for node in chosen:
            wait_until(f"{node.id} ready", node.ready, READY_TIMEOUT)
        self.wait_connected()

    def wait_connected(self) -> None:
        """Waits until each node takes a write with w=3, so it reaches both others: a node
        is ready (/readyz) before its peers have reconnected to it."""
        probes = (f"_connected/{secrets.token_hex(8)}" for _ in itertools.count())
        clients = [self.client(i, retry=Retry(attempts=1)) for i in range(len(self.nodes))]

        def all_write_everywhere() -> bool:
            try:
                for c in clients:
                    c.put(next(probes), b"", w=3)
            except DynamoError:
                return False
            return True

        try:
            wait_until("every node writes to all three", all_write_everywhere, READY_TIMEOUT)
        finally:
            for c in clients:
                c.close()

    def stop(self, *which: int) -> None:
        """Stops the nodes `which` (default all), all at once."""
        chosen = [self.nodes[i] for i in which] if which else self.nodes
        for node in chosen:
            node.signal_stop()
        for node in chosen:
            node.wait_stopped()

    def client(self, node: int | list[int] = 0, **options: Any) -> Client:
        """A client of the nodes `node`, with the cluster's token and CA unless given."""
        indexes = [node] if isinstance(node, int) else node
        options.setdefault("token", self.token)
        options.setdefault("ca_file", self.ca_file)
        return Client([self.nodes[i].url for i in indexes], **options)


def make_cluster(
    directory: Path,
    extra_args: list[str] | None = None,
    *,
    scheme: str = "http",
    ca_file: str | None = None,
    ips: list[str] | None = None,
    advertise: Callable[[int, str], str] | None = None,
) -> Cluster:
    """Three nodes, not started, node i on loopback IP `ips[i]` (default all 127.0.0.1).
    `advertise(i, internal)` is the address every node (node i too) lists for node i in
    its --peer flags, so the one its peers dial (default: its internal listener)."""
    binary = node_binary()
    directory.mkdir(parents=True, exist_ok=True)
    ips = ips or ["127.0.0.1"] * 3
    internals = [f"{ip}:{free_port(ip)}" for ip in ips]
    advertised = [advertise(i, a) if advertise else a for i, a in enumerate(internals)]
    peers = [f"--peer=n{i + 1}={address},z{i + 1}" for i, address in enumerate(advertised)]
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    nodes = []
    for i in range(3):
        node = Node(
            id=f"n{i + 1}",
            client=f"{ips[i]}:{free_port(ips[i])}",
            internal=internals[i],
            data_dir=directory / f"n{i + 1}",
            log_path=directory / f"n{i + 1}.log",
            scheme=scheme,
            verify=verify,
        )
        node.command = [
            str(binary),
            "serve",
            f"--node-id={node.id}",
            f"--zone=z{i + 1}",
            f"--listen={node.client}",
            f"--internal-listen={node.internal}",
            f"--data-dir={node.data_dir}",
            "--initial-cluster-state=new",
            *peers,
            *(extra_args or []),
        ]
        nodes.append(node)
    return Cluster(nodes, ca_file=ca_file)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A started plain (HTTP, no auth) cluster shared by the tests of a module."""
    started = make_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A key no other test uses."""
    return f"{request.node.name}/{secrets.token_hex(4)}"


class Recorder:
    """httpx event hooks that record every request sent and every response status."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.on_response: Callable[[httpx.Response], None] | None = None

    def _request(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def _response(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)
        if self.on_response is not None:
            self.on_response(response)

    @property
    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """For Client(event_hooks=...)."""
        return {"request": [self._request], "response": [self._response]}

    @property
    def async_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """For AsyncClient(event_hooks=...)."""

        async def request(r: httpx.Request) -> None:
            self._request(r)

        async def response(r: httpx.Response) -> None:
            self._response(r)

        return {"request": [request], "response": [response]}

    def hosts(self) -> list[str]:
        """host:port of each request, in order."""
        return [f"{r.url.host}:{r.url.port}" for r in self.requests]


def fast_retry(attempts: int = 5) -> Retry:
    """A retry policy with short waits, for tests."""
    return Retry(attempts=attempts, base=0.01, cap=0.05)


# Auth and TLS directories.


def make_auth_dir(directory: Path) -> dict[str, str]:
    """admin-token, peer-token and client-token files (random, all different)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = {role: secrets.token_hex(32) for role in ("admin", "peer", "client")}
    for role, token in tokens.items():
        (directory / f"{role}-token").write_text(token + "\n")
    return tokens


def make_tls_dir(directory: Path) -> Path:
    """ca.crt, tls.crt and tls.key (for IP 127.0.0.1, server and client use) made with
    openssl; returns the path of ca.crt."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_ext += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test CA", *ca_ext)
    openssl("req", *key[:-2], "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1")
    (directory / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-extfile", "ext.cnf"]
    openssl("x509", "-req", "-in", "tls.csr", "-out", "tls.crt", *sign)
    return directory / "ca.crt"


# Partitions. Nodes dial peers from their own internal IP, so with each node on its own
# loopback IP (127.0.0.1, .2, .3) a proxy in front of a node can tell who connects: the
# link i -> j is node j's proxy forwarding connections from node i's IP.


class Proxy:
    """Forwards TCP connections from its own port to `target`, each from the source IP it
    came from, except from blocked source IPs: their open connections are closed and new
    ones closed at once."""

    def __init__(self, listen_ip: str, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._server = socket.create_server((listen_ip, 0))
        self._server.settimeout(0.2)
        self.address = f"{listen_ip}:{self._server.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: dict[socket.socket, str] = {}
        self._blocked: set[str] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, (source_ip, _) = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if source_ip in self._blocked:
                downstream.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=2.0, source_address=(source_ip, 0))
            except OSError:
                downstream.close()
                continue
            downstream.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open[downstream] = self._open[upstream] = source_ip
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                _shut(s)
                with self._lock:
                    self._open.pop(s, None)

    def block(self, source_ip: str) -> None:
        """Closes the connections from `source_ip` and refuses new ones."""
        self._blocked.add(source_ip)
        with self._lock:
            for s, ip in list(self._open.items()):
                if ip == source_ip:
                    _shut(s)

    def unblock(self) -> None:
        """Forwards new connections from every source again."""
        self._blocked.clear()

    def close(self) -> None:
        """Stops listening and closes every connection."""
        self._closed = True
        self._server.close()
        with self._lock:
            for s in list(self._open):
                _shut(s)


def _shut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
