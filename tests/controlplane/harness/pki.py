"""Certificates for clusters with `spec.tls`, made with the `openssl`
command line: a CA, and leaf certificates for the pods' and Services' DNS
names with server and client usage (nodes are each other's clients on the
node-to-node stream)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA `name.crt`/`name.key` in `directory`."""
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "30", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt"


def cluster_names(namespace: str, cluster: str, zones: list[str]) -> list[str]:
    """The DNS names a cluster's certificate covers: every zone's pods
    and the client Service."""
    return [f"*.{cluster}-{zone}.{namespace}.svc" for zone in zones] + [f"{cluster}.{namespace}.svc"]


def issue(directory: Path, ca: str, leaf: str, names: list[str]) -> tuple[bytes, bytes]:
    """A certificate `leaf` for `names`, signed by CA `ca`, with server
    and client usage: (PEM cert, PEM key)."""
    alt = ",".join(f"DNS:{name}" for name in names)
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}",
        "-addext", f"subjectAltName={alt}",
        "-addext", "extendedKeyUsage=serverAuth,clientAuth",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "30", "-copy_extensions", "copy", "-out", f"{leaf}.crt",
        cwd=directory,
    )  # fmt: skip
    return (directory / f"{leaf}.crt").read_bytes(), (directory / f"{leaf}.key").read_bytes()
