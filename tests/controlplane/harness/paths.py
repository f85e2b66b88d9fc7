"""Where things are. The harness (and testbed/) always come from this
checkout; the product under test (crds/, helm/, manifests/, scripts/, the
binaries) from DYNAMO_CP_REPO if set, e.g. a `git archive` of another
commit, else from this checkout too."""

from __future__ import annotations

import os
from pathlib import Path

HARNESS_REPO = Path(__file__).resolve().parents[3]
TESTBED = HARNESS_REPO / "testbed"


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
