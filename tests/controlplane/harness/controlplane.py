"""The testbed control plane (testbed/controlplane.sh) from Python: build
once, start in a directory, stop, and read its env file."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import TESTBED, product_root


def build_binaries(timeout: float = 1800.0) -> Path:
    """`testbed/build.sh`: the bin dir with kube-apiserver, kubectl, ...
    (built once per machine; returns at once when cached)."""
    result = subprocess.run(
        [str(TESTBED / "build.sh")],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"testbed/build.sh failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class ControlPlane:
    """A running plane: its directory and what its env file says."""

    directory: Path
    bin_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    started_in: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return Path(self.env["KUBECONFIG"])

    @property
    def apiserver_url(self) -> str:
        return self.env["APISERVER_URL"]

    @property
    def ca_file(self) -> Path:
        return Path(self.env["APISERVER_CA"])

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    @classmethod
    def start(cls, directory: Path, bin_dir: Path, *, timeout: float = 180.0) -> ControlPlane:
        env = dict(os.environ)
        env["DYNAMO_TESTBED_BIN"] = str(bin_dir)
        # The plane's watchdog stops it when this (pytest) process dies.
        env["CONTROLPLANE_WATCH_PID"] = str(os.getpid())
        began = time.monotonic()
        result = subprocess.run(
            [str(TESTBED / "controlplane.sh"), "start", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"controlplane.sh start failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        plane = cls(directory=directory, bin_dir=bin_dir, started_in=time.monotonic() - began)
        for line in (directory / "env").read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                plane.env[key] = value
        return plane

    def stop(self) -> None:
        # Its own session: a Ctrl-C at the terminal must not cut it short.
        result = subprocess.run(
            [str(TESTBED / "controlplane.sh"), "stop", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"controlplane.sh stop failed ({result.returncode}): {result.stderr[-2000:]}")

    def kubectl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The built kubectl as the admin, from the product's repository
        root (so relative paths in the docs' commands work)."""
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            cwd=product_root(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.directory / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
