#!/usr/bin/env python3
"""Summarises a schemathesis NDJSON report: the statuses each operation answered.

  tests/api/summary.py REPORT.ndjson [--expect 'GET /v1/kv/{key}=300' ...]

Prints, per operation, how many responses of each status the run saw, and
exits 1 if an --expect pair (operation label as schemathesis prints it,
`=`, status) was never seen: a run that never reached an outcome checked
nothing about it. tests/api/run.sh runs it after each schemathesis round.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def statuses(report: Path) -> dict[str, Counter[int]]:
    """Responses by operation (`METHOD /path/{template}`) and status code."""
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    with report.open() as lines:
        for line in lines:
            event: dict[str, Any] = json.loads(line)
            recorder = event.get("ScenarioFinished", {}).get("recorder", {})
            for case_id, interaction in recorder.get("interactions", {}).items():
                response = interaction.get("response")
                case = recorder.get("cases", {}).get(case_id)
                if response is None or case is None:
                    continue
                label = f"{case['value']['method']} {case['value']['path']}"
                seen[label][response["status_code"]] += 1
    return seen


def parse_expectation(text: str) -> tuple[str, int]:
    label, equals, status = text.rpartition("=")
    if not equals or not status.isdigit():
        raise argparse.ArgumentTypeError(f"expected OPERATION=STATUS, got {text!r}")
    return label, int(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="schemathesis NDJSON report")
    parser.add_argument(
        "--expect",
        type=parse_expectation,
        action="append",
        default=[],
        metavar="OPERATION=STATUS",
        help="fail unless OPERATION answered STATUS at least once",
    )
    args = parser.parse_args()
    seen = statuses(args.report)
    # The coverage phase also sends each path methods it does not take: one
    # line for all of those that got their 405.
    probes = {label for label, counts in seen.items() if set(counts) == {405}}
    for label in sorted(seen.keys() - probes):
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(seen[label].items()))
        print(f"  {label:40} {counts}")
    if probes:
        print(f"  {'(methods a path does not take)':40} 405: {sum(seen[label][405] for label in probes)}")
    missing = [f"{label}={status}" for label, status in args.expect if not seen.get(label, {}).get(status)]
    if missing:
        print(f"never answered (the run did not reach these outcomes): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
