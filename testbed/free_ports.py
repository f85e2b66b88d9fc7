#!/usr/bin/env python3
"""Prints N distinct free TCP ports on 127.0.0.1, separated by spaces.

  testbed/free_ports.py N

The ports are free when this returns: each was bound to port 0 (the kernel
picks) and all are held until the last is picked, so none repeats.
Standard library only; testbed/controlplane.sh uses it.
"""

from __future__ import annotations

import argparse
import socket
import sys


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel picked on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", metavar="N", type=int, help="how many ports")
    args = parser.parse_args()
    print(" ".join(str(port) for port in free_ports(args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
