"""The packaging's shell scripts parse and are shellcheck-clean; the Python
ones compile. (e2e/run.sh cannot run without a cluster; this is what is
checked of it here.)"""

from __future__ import annotations

import py_compile
import shutil
import subprocess

import pytest

from conftest import REPO

SHELL_SCRIPTS = sorted([*REPO.glob("scripts/*.sh"), *REPO.glob("e2e/*.sh"), *REPO.glob("tests/docker/*.sh")])
PYTHON_SCRIPTS = sorted([*REPO.glob("scripts/*.py"), *REPO.glob("tests/docker/*.py")])


def test_the_scripts_exist():
    names = {p.relative_to(REPO).as_posix() for p in SHELL_SCRIPTS + PYTHON_SCRIPTS}
    assert {"e2e/run.sh", "scripts/docker-base.sh", "scripts/build-images.sh",
            "scripts/render-manifests.py", "tests/docker/cluster.py"} <= names


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shell_script(path):
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "bash shebang"
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(path)], check=True)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/k8s-tests.sh installs it with apt)")
    result = subprocess.run([shellcheck, "--external-sources", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", PYTHON_SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_python_script_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_e2e_cluster_matches_the_crd():
    from conftest import load_yaml_all, render_manifests, validate_dynamocluster
    out = subprocess.run([str(REPO / "e2e" / "run.sh"), "--print-cluster-spec"],
                         check=True, capture_output=True, text=True).stdout
    assert not render_manifests.yaml11_ambiguities(out)
    (cluster,) = load_yaml_all(out)
    validate_dynamocluster(cluster)
    assert len(cluster["spec"]["zones"]) == 3
