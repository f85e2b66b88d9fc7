#!/usr/bin/env python3
"""Writer and checker of the e2e test (standard library only).

The two commands e2e/run.sh runs:

  kv_client.py write  --url URL --acked FILE --phase-file FILE --stop-file FILE
      Writes new keys (one PUT each, never overwriting) until STOP-FILE
      exists or --max-writes is reached. Every write answered 204 is appended
      to ACKED as `key<TAB>phase<TAB>value` before the next one starts; the
      phase is the current content of PHASE-FILE. Failed writes (503,
      timeouts, a port-forward being restarted) are counted, not recorded.

  kv_client.py verify --url URL --acked FILE
      Reads every acknowledged key and compares the value byte for byte,
      retrying a key that fails with 5xx or a connection error for up to
      --retry-seconds. Exits 1 if any acknowledged write is missing or
      different, or if nothing was acknowledged at all.

Both send `Authorization: Bearer $DYNAMO_TOKEN` when that variable is set.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import sys
import time
import urllib.parse


def request(
    url: str, method: str, key: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request on `key` to the node at base URL `url`: the status and the body."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    try:
        token = os.environ.get("DYNAMO_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, "/v1/kv/" + urllib.parse.quote(key, safe=""), body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def read_phase(path: str) -> str:
    """The phase e2e/run.sh wrote to `path`; `unknown` before the first."""
    try:
        with open(path) as f:
            return f.read().strip() or "unknown"
    except FileNotFoundError:
        return "unknown"


def write(args: argparse.Namespace) -> int:
    """The `write` command (see the module documentation)."""
    run = os.urandom(4).hex()
    acked = collections.Counter()
    failed = collections.Counter()
    with open(args.acked, "a") as out:
        for i in range(args.max_writes):
            if os.path.exists(args.stop_file):
                break
            phase = read_phase(args.phase_file)
            key = f"e2e/{run}/{i:07d}"
            value = f"{phase}:{i}:{os.urandom(8).hex()}"
            try:
                status, _ = request(args.url, "PUT", key, value.encode())
                outcome = str(status)
            except (OSError, http.client.HTTPException) as error:
                status, outcome = None, type(error).__name__
            if status == 204:
                out.write(f"{key}\t{phase}\t{value}\n")
                out.flush()
                acked[phase] += 1
            else:
                failed[(phase, outcome)] += 1
                time.sleep(0.2)
            time.sleep(args.pause)
    for phase in sorted(set(acked) | {p for p, _ in failed}):
        failures = {o: n for (p, o), n in failed.items() if p == phase}
        print(f"writer: phase {phase}: {acked[phase]} acknowledged, failed {failures or 'none'}", flush=True)
    return 0


def verify(args: argparse.Namespace) -> int:
    """The `verify` command (see the module documentation)."""
    with open(args.acked) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if not rows:
        print("verify: no acknowledged write to check", flush=True)
        return 1
    per_phase = collections.Counter(phase for _, phase, _ in rows)
    bad = []
    for key, phase, value in rows:
        deadline = time.monotonic() + args.retry_seconds
        while True:
            try:
                status, body = request(args.url, "GET", key)
            except (OSError, http.client.HTTPException) as error:
                status, body = None, str(error).encode()
            if status == 200 or (status is not None and status < 500) or time.monotonic() > deadline:
                break
            time.sleep(1)
        if status != 200 or body != value.encode():
            bad.append(f"{key} ({phase}): expected 200 {value!r}, got {status} {body[:80]!r}")
    for line in bad[:20]:
        print(f"verify: LOST OR WRONG {line}", flush=True)
    print(
        f"verify: {len(rows) - len(bad)} of {len(rows)} acknowledged writes read back exactly "
        f"(per phase: {dict(per_phase)})",
        flush=True,
    )
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    writer = commands.add_parser("write")
    writer.add_argument("--url", required=True)
    writer.add_argument("--acked", required=True)
    writer.add_argument("--phase-file", required=True)
    writer.add_argument("--stop-file", required=True)
    writer.add_argument("--max-writes", type=int, default=200_000)
    writer.add_argument("--pause", type=float, default=0.02, help="seconds between writes")
    checker = commands.add_parser("verify")
    checker.add_argument("--url", required=True)
    checker.add_argument("--acked", required=True)
    checker.add_argument("--retry-seconds", type=float, default=30)
    args = parser.parse_args()
    return write(args) if args.command == "write" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
