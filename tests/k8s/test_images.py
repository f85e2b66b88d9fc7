"""Dockerfiles: the from-source and the prebuilt variant of each image must
produce the same runtime image (same runtime stage but for where the binary
comes from), non-root, on Debian bookworm."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

IMAGES = REPO / "images"


def runtime_stage(path):
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    stage = lines[last_from + 1 :]
    # The binary comes from the builder stage or from the build context.
    return [re.sub(r"^COPY (--from=builder )?/?", "COPY ", line) for line in stage]


@pytest.mark.parametrize("image", ["node", "operator"])
def test_source_and_prebuilt_runtime_stages_agree(image):
    source = runtime_stage(IMAGES / f"{image}.Dockerfile")
    prebuilt = runtime_stage(IMAGES / f"{image}-prebuilt.Dockerfile")
    assert source == prebuilt
    assert "USER 10001:10001" in source
    assert any(line.startswith('ENTRYPOINT ["/usr/local/bin/dynamo-') for line in source)


@pytest.mark.parametrize("name", ["node.Dockerfile", "operator.Dockerfile"])
def test_source_builds_use_bookworm(name):
    text = (IMAGES / name).read_text()
    assert "ARG RUNTIME_BASE=debian:bookworm-slim" in text
    assert re.search(r"ARG RUST_IMAGE=rust:[0-9.]+-bookworm", text)
    assert "--locked" in text


@pytest.mark.parametrize("name", ["node-prebuilt.Dockerfile", "operator-prebuilt.Dockerfile"])
def test_prebuilt_images_have_one_stage_on_the_debootstrapped_base(name):
    text = (IMAGES / name).read_text()
    assert text.count("\nFROM ") == 1
    assert "ARG RUNTIME_BASE=dynamo-runtime-base:bookworm" in text
    assert "dynamo-runtime-base:bookworm" in (REPO / "scripts" / "docker-base.sh").read_text()
