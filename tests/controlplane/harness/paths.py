"""Where things are. The harness (and testbed/) always come from this
checkout; the product under test (crds/, helm/, manifests/, scripts/, the
binaries) from DYNAMO_CP_REPO if set, e.g. a `git archive` of another
commit, else from this checkout too."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

HARNESS_REPO = Path(__file__).resolve().parents[3]
TESTBED = HARNESS_REPO / "testbed"
# The image name (its last path component's prefix) that runs the previous
# release's dynamo-node.
PREVIOUS_NODE = "dynamo-node-previous"


def product_root() -> Path:
    return Path(os.environ.get("DYNAMO_CP_REPO") or HARNESS_REPO).resolve()


def binaries_dir() -> Path:
    """dynamo-node and dynamo-operator: DYNAMO_CP_BINARIES, else
    $CARGO_TARGET_DIR/debug, else <product root>/target/debug."""
    if os.environ.get("DYNAMO_CP_BINARIES"):
        return Path(os.environ["DYNAMO_CP_BINARIES"]).resolve()
    if os.environ.get("CARGO_TARGET_DIR") and not os.environ.get("DYNAMO_CP_REPO"):
        return Path(os.environ["CARGO_TARGET_DIR"]).resolve() / "debug"
    return product_root() / "target" / "debug"


@functools.cache
def previous_node_binary() -> Path:
    """dynamo-node of the previous release, for the mixed-version test:
    DYNAMO_CP_PREVIOUS_NODE, else the path scripts/build-previous-node.sh
    (of this checkout) prints; it builds the pinned commit once per
    machine (about 2 min) and answers at once afterwards."""
    if os.environ.get("DYNAMO_CP_PREVIOUS_NODE"):
        path = Path(os.environ["DYNAMO_CP_PREVIOUS_NODE"]).resolve()
    else:
        script = HARNESS_REPO / "scripts" / "build-previous-node.sh"
        built = subprocess.run(
            ["nice", "-n", "10", str(script)], stdout=subprocess.PIPE, text=True, check=True, timeout=3600
        )
        path = Path(built.stdout.strip().splitlines()[-1])
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/build-previous-node.sh")
    return path
