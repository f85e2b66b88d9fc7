#!/usr/bin/env python3
"""Prints where a profile's CPU went, by component, from the folded
stacks scripts/profile.sh leaves (inferno-collapse-perf output: one line
per distinct stack: the thread's name and the frames, joined by ';', then
a sample count).

  scripts/profile_components.py FOLDED

Each sample counts once, for the innermost frame of its stack that names
a component: a memory allocation or a memory copy counts as allocation or
copying whoever asked for it, and code a library runs for the node counts
as that library's. Samples of no known component count as "other". The
shares sum to 100%.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# Checked in this order against each frame, innermost frame first.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("RocksDB (lookups, writes, flushes, compactions)", r"rocksdb|snappy"),
    ("allocation", r"^_?mi_|mimalloc|malloc|^free$|cfree|_int_free|operator new|operator delete"),
    ("memory copies and compares", r"memmove|memcpy|memcmp|memset|memchr"),
    (
        "kernel: scheduling and wake-ups",
        r"finish_task_switch|_raw_spin_unlock_irqrestore|schedule|try_to_wake_up|futex|epoll|ep_poll|irqentry|__wake_up",
    ),
    (
        "kernel: loopback TCP",
        r"tcp_|sock_|skb|^ip_|__send|recv|loopback|net_rx|netif|process_backlog|inet_|_copy_to_iter|_copy_from_iter",
    ),
    ("kernel: other", r"\[k\]|entry_SYSCALL|do_syscall|syscall_exit|__x64_sys|\[kernel"),
    ("tracing spans", r"tracing_subscriber|tracing_core|tracing::|opentelemetry"),
    ("encoding (postcard, serde)", r"postcard|serde"),
    ("HTTP (hyper, http, httparse)", r"hyper|^http::|<http::|httparse"),
    ("routing and middleware (axum, tower)", r"axum|tower"),
    ("node: replica streams", r"dynamo_node::transport"),
    ("node: versions", r"dynamo_node::version"),
    ("node: storage", r"dynamo_node::storage"),
    ("node: coordinator", r"dynamo_node::coordinator"),
    ("node: other", r"dynamo_node"),
    ("Tokio runtime", r"tokio"),
)
OTHER = "other"
PATTERNS = [(name, re.compile(pattern)) for name, pattern in COMPONENTS]


def component(frames: list[str]) -> str:
    """The component of the innermost frame of `frames` (outermost first,
    the thread's name before them) that names one."""
    for frame in reversed(frames[1:]):
        for name, pattern in PATTERNS:
            if pattern.search(frame):
                return name
    return OTHER


def shares(lines: Iterable[str]) -> list[tuple[str, float]]:
    """Each component's share of the samples in `lines` (folded stacks),
    in percent, largest first."""
    samples: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        samples[component(stack.split(";"))] += int(count)
    total = sum(samples.values())
    if total == 0:
        return []
    return [(name, 100 * n / total) for name, n in samples.most_common()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folded", type=Path, help="folded stacks (inferno-collapse-perf output)")
    args = parser.parse_args()
    with args.folded.open() as lines:
        table = shares(lines)
    if not table:
        print(f"{args.folded}: no samples", file=sys.stderr)
        return 1
    print("| component | share of node CPU |")
    print("|---|---:|")
    for name, share in table:
        print(f"| {name} | {share:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
