"""The operator installed as a platform team installs it, on the testbed
control plane.

`OperatorInstall.install()` does what `helm install dynamo-operator
helm/dynamo-operator -n dynamo-system --create-namespace` (docs/images.md)
does, except for the operator Deployment: it applies the CRD from `crds/`
(server-side, as the chart README says for upgrades), creates the release
namespace, renders the chart with Helm's own engine (`render_chart` of
scripts/render-manifests.py) and server-side applies every rendered object
but the Deployment: ServiceAccount, ClusterRole/Role and bindings, Services,
and whatever else the chart renders.

`start()` then runs `target/debug/dynamo-operator` as a local process in
place of the Deployment's pod: with the container's args and env as the
chart renders them (POD_NAME, POD_NAMESPACE from the downward API,
WATCH_NAMESPACE, RUST_LOG, `--lease-name`, `--metrics-addr` with `0.0.0.0`
rewritten to the process's own loopback address), authenticating with a
TokenRequest token of the chart's ServiceAccount in a kubeconfig holding
only that token and the API server's CA. So the chart's RBAC is what the
API server enforces, and leader election uses real Leases.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from .controlplane import ControlPlane
from .kube import ApiError, Kube, Obj, meta
from .kubelet import container_environment, image_config, rewrite_wildcard
from .paths import binaries_dir as default_binaries_dir
from .paths import product_root
from .wait import Abort, wait_until

RELEASE = "dynamo-operator"
NAMESPACE = "dynamo-system"


def render_manifests_module() -> ModuleType:
    """scripts/render-manifests.py as a module (its name has a dash)."""
    spec = importlib.util.spec_from_file_location(
        "render_manifests", product_root() / "scripts" / "render-manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_yaml_documents(path: Path) -> list[Obj]:
    """The documents of a YAML file as Go's YAML 1.1 reader sees them."""
    return render_manifests_module().load_all(path.read_text())


class OperatorProcess:
    """One operator replica running as a local process."""

    def __init__(
        self, *, pod_name: str, argv: list[str], env: dict[str, str], log_path: Path, metrics_addr: str
    ) -> None:
        self.pod_name = pod_name
        self.log_path = log_path
        self.metrics_addr = metrics_addr
        self.argv = argv
        self._log = open(log_path, "ab")  # noqa: SIM115 - kept open while it runs
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self.process = subprocess.Popen(
            prefix + argv,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Sends `sig` (SIGKILL: a crash, nothing released) and waits."""
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, 10 s, then SIGKILL."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class OperatorInstall:
    """The chart's objects on the plane, and operator processes using them."""

    def __init__(
        self,
        kube: Kube,
        plane: ControlPlane,
        state_dir: Path,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        values: dict[str, Any] | None = None,
        binaries_dir: Path | None = None,
    ) -> None:
        self.kube = kube
        self.plane = plane
        self.state_dir = Path(state_dir)
        self.release = release
        self.namespace = namespace
        self.values = values or {}
        self.binaries_dir = binaries_dir or default_binaries_dir()
        self.rendered: list[Obj] = []
        self.applied: list[Obj] = []
        self.deployment: Obj | None = None
        self.processes: list[OperatorProcess] = []
        self._next_ip = 1

    # --- install ------------------------------------------------------

    def apply_crds(self) -> list[str]:
        """`kubectl apply --server-side -f crds/`, then waits until each
        CRD is Established."""
        names = []
        for file in sorted((product_root() / "crds").glob("*.yaml")):
            for doc in load_yaml_documents(file):
                self.kube.apply(doc, field_manager="kubectl")
                names.append(meta(doc)["name"])
        for name in names:
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

            def established(path: str = path) -> bool:
                crd = self.kube.get(path)
                return any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (crd.get("status") or {}).get("conditions") or []
                )

            wait_until(f"CRD {name} Established", established, 60, 0.2)
        self.kube.forget_discovery()
        return names

    def install(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.apply_crds()
        # helm install --create-namespace: a bare Namespace.
        try:
            self.kube.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}},
            )
        except ApiError as error:
            if error.status != 409:
                raise
        module = render_manifests_module()
        self.rendered = module.render_chart(self.values, name=self.release, namespace=self.namespace)
        (self.state_dir / "chart-rendered.yaml").write_text(module.dump_all(self.rendered))
        deployments = [d for d in self.rendered if d.get("kind") == "Deployment"]
        if len(deployments) != 1:
            raise AssertionError(f"the chart rendered {len(deployments)} Deployments, expected 1")
        self.deployment = deployments[0]
        others = [d for d in self.rendered if d.get("kind") not in ("Deployment", "DynamoCluster")]
        for doc in module.install_order(others):
            self.kube.apply(doc, field_manager="helm", namespace=self.namespace)
            self.applied.append(doc)
        account = self.service_account
        wait_until(
            f"ServiceAccount {self.namespace}/{account}",
            lambda: self.kube.get_opt(f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}"),
            30,
            0.2,
        )

    @property
    def pod_spec(self) -> Obj:
        assert self.deployment is not None, "install() first"
        return self.deployment["spec"]["template"]["spec"]

    @property
    def service_account(self) -> str:
        return self.pod_spec.get("serviceAccountName", "default")

    @property
    def lease_path(self) -> str:
        args = self.pod_spec["containers"][0].get("args") or []
        name = next((a.split("=", 1)[1] for a in args if a.startswith("--lease-name=")), "dynamo-operator")
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{name}"

    def token_kubeconfig(self, name: str) -> Path:
        """A kubeconfig with only a TokenRequest token of the chart's
        ServiceAccount and the API server's CA."""
        answer = self.kube.create(
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{self.service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 7200},
            },
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testbed",
                    "cluster": {
                        "server": self.plane.apiserver_url,
                        "certificate-authority": str(self.plane.ca_file),
                    },
                }
            ],
            "users": [{"name": self.service_account, "user": {"token": answer["status"]["token"]}}],
            "contexts": [
                {
                    "name": "operator",
                    "context": {
                        "cluster": "testbed",
                        "user": self.service_account,
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "operator",
        }
        path = self.state_dir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        os.chmod(path, 0o600)
        return path

    # --- processes ----------------------------------------------------

    def start(self, pod_name: str | None = None) -> OperatorProcess:
        """One more operator replica (a Deployment pod's stand-in)."""
        template_hash = secrets.token_hex(5)
        pod_name = pod_name or f"{self.release}-{template_hash}-{secrets.token_hex(3)[:5]}"
        container = self.pod_spec["containers"][0]
        ip = self._free_ip(container)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": self.namespace, "uid": secrets.token_hex(16)},
            "spec": {**self.pod_spec, "nodeName": "operator-host"},
        }
        image = image_config(container.get("image", ""))
        if image is None or image.binary != "dynamo-operator":
            raise AssertionError(
                f"the chart's operator image {container.get('image')} is not dynamo-operator"
            )
        env = container_environment(
            pod,
            container,
            pod_ip=ip,
            host_ip="127.0.0.1",
            config_map=lambda ns, name: self.kube.get_opt(f"/api/v1/namespaces/{ns}/configmaps/{name}"),
            secret=lambda ns, name: self.kube.get_opt(f"/api/v1/namespaces/{ns}/secrets/{name}"),
            image_env=image.env,
            extra={
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME": pod_name,
            },
        )
        env = {k: rewrite_wildcard(v, ip) for k, v in env.items()}
        env["KUBECONFIG"] = str(self.token_kubeconfig(pod_name))
        command = list(container.get("command") or image.entrypoint)
        args = list(container.get("args") or ([] if container.get("command") else image.cmd))
        binary = self.binaries_dir / "dynamo-operator"
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run `cargo build -p dynamo-operator`")
        argv = [str(binary)] + [rewrite_wildcard(a, ip) for a in command[1:] + args]
        metrics = next((a.split("=", 1)[1] for a in argv if a.startswith("--metrics-addr=")), "")
        process = OperatorProcess(
            pod_name=pod_name,
            argv=argv,
            env=env,
            log_path=self.state_dir / f"{pod_name}.log",
            metrics_addr=metrics,
        )
        (self.state_dir / f"{pod_name}.cmd").write_text(
            "\n".join([*(f"{k}={v}" for k, v in sorted(env.items())), " ".join(argv)]) + "\n"
        )
        self.processes.append(process)
        return process

    def _free_ip(self, container: Obj) -> str:
        """The next 127.43.x.y whose metrics port is free (another harness
        may run operators side by side)."""
        args = container.get("args") or []
        addr = next((a.split("=", 1)[1] for a in args if a.startswith("--metrics-addr=")), "0.0.0.0:8080")
        port = int(addr.rsplit(":", 1)[1])
        while True:
            ip = f"127.43.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
            self._next_ip += 1
            with socket.socket() as probe:
                try:
                    probe.bind((ip, port))
                except OSError:
                    continue
            return ip

    def leader(self) -> str | None:
        lease = self.kube.get_opt(self.lease_path)
        return ((lease or {}).get("spec") or {}).get("holderIdentity")

    def wait_leading(self, process: OperatorProcess, timeout: float = 60.0) -> None:
        def leading() -> bool:
            if not process.alive():
                raise Abort(
                    f"operator {process.pod_name} exited with {process.process.returncode}:\n"
                    f"{process.log_tail(20)}"
                )
            return self.leader() == process.pod_name

        wait_until(f"operator {process.pod_name} holds the Lease", leading, timeout, 0.5)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
