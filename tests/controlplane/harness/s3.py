"""A real S3-compatible server for the backup tests: SeaweedFS's all-in-one
`weed mini`, started exactly as testkit/src/s3.rs starts it (everything on
127.0.0.1 and free ports, one static identity, one bucket, no telemetry).

The binary is DYNAMO_WEED_BIN, else what `testbed/build-go-tool.sh
testbed/seaweedfs` prints (it builds once per machine, then answers at
once). The filer's HTTP API, which needs no signature, lets a test list
what a backup stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .paths import TESTBED

ACCESS_KEY = "DYNAMOTESTACCESSKEY1"
SECRET_KEY = "dynamo-test-secret-key-for-loopback-only"
BUCKET = "dynamo-backups"
READY_TIMEOUT = 90.0
PORT_NAMES = (
    "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
    "s3", "s3_grpc", "admin", "admin_grpc",
)  # fmt: skip


def weed_binary() -> Path:
    if os.environ.get("DYNAMO_WEED_BIN"):
        path = Path(os.environ["DYNAMO_WEED_BIN"])
    else:
        built = subprocess.run(
            [str(TESTBED / "build-go-tool.sh"), str(TESTBED / "seaweedfs")],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            timeout=3600,
        )
        path = Path(built.stdout.strip().splitlines()[-1]) / "weed"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run testbed/build-go-tool.sh testbed/seaweedfs")
    return path


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class S3Server:
    """One running `weed mini`; `stop()` kills it and removes its files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> S3Server:
        binary = weed_binary()
        for sub in ("data", "logs"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "dynamo-test",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.directory / "s3.json").write_text(json.dumps(identities))
        p, d = self.ports, self.directory
        argv = [
            str(binary), f"-logdir={d / 'logs'}", "-alsologtostderr=false", "-stderrthreshold=ERROR", "mini",
            f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={d / 'filer.sock'}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={d / 's3.sock'}", f"-s3.config={d / 's3.json'}",
            "-s3.autoCreateBucket=false", "-s3.domainName=localhost",
            "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}", f"-bucket={BUCKET}",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
        self.process = subprocess.Popen(
            argv,
            cwd=d,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(d / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        p = self.ports
        probes = [
            (f"http://127.0.0.1:{p['s3']}/healthz", 200),
            (f"http://127.0.0.1:{p['filer']}/buckets/{BUCKET}/", 200),
            (f"http://127.0.0.1:{p['master']}/dir/lookup?volumeId=4294967295", 404),
        ]
        deadline = time.monotonic() + READY_TIMEOUT
        for url, want in probes:
            while self._status(url) != want:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"weed mini exited with {self.process.returncode}; see {self.directory}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"weed mini not ready after {READY_TIMEOUT:g}s: {url}")
                time.sleep(0.1)

    @staticmethod
    def _status(url: str) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def objects(self, prefix: str) -> list[str]:
        """Names of the objects under `prefix/` of the bucket (recursively,
        through the filer's HTTP API)."""
        found: list[str] = []
        pending = [prefix.strip("/")]
        while pending:
            path = pending.pop()
            url = f"http://127.0.0.1:{self.ports['filer']}/buckets/{BUCKET}/{path}/?limit=10000"
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    listing = json.load(response)
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    continue
                raise
            for entry in listing.get("Entries") or []:
                name = entry["FullPath"].removeprefix(f"/buckets/{BUCKET}/")
                is_dir = entry.get("Mode", 0) & 0o20000000000
                (pending.append(name) if is_dir else found.append(name))
        return sorted(found)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait(30)
            self.process = None
        for service in ("master", "volume", "filer", "s3", "admin"):
            with contextlib.suppress(OSError):
                os.remove(f"/tmp/seaweedfs-{service}-grpc-{self.ports[service + '_grpc']}.sock")
        shutil.rmtree(self.directory / "data", ignore_errors=True)
