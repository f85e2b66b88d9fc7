#!/usr/bin/env python3
"""Reads one value out of `cargo metadata --format-version 1` (on stdin).

  cargo metadata --format-version 1 --no-deps | scripts/cargo_metadata.py target-directory
  cargo metadata --format-version 1 --no-deps | scripts/cargo_metadata.py version PACKAGE

target-directory prints Cargo's target directory (CARGO_TARGET_DIR
honoured); version prints the version of the workspace package PACKAGE.
Standard library only; scripts/build-images.sh uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def package_version(metadata: dict[str, Any], name: str) -> str:
    """The version of package `name`; StopIteration if there is none."""
    return next(p["version"] for p in metadata["packages"] if p["name"] == name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("target-directory", help="print the target directory")
    version = commands.add_parser("version", help="print the version of a package")
    version.add_argument("package", metavar="PACKAGE")
    args = parser.parse_args()
    metadata = json.load(sys.stdin)
    if args.command == "target-directory":
        print(metadata["target_directory"])
    else:
        print(package_version(metadata, args.package))
    return 0


if __name__ == "__main__":
    sys.exit(main())
