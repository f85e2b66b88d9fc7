#!/usr/bin/env bash
# What RocksDB alone costs on this machine for the benchmark's data set:
# RocksDB's own db_bench (Debian's rocksdb-tools, the same 7.8 library the
# node links) with the options `Storage::open` sets (node/src/storage/mod.rs:
# 8 MiB memtables x4 within 32 MiB, 64 MiB block cache holding index and
# filter blocks, 10-bit bloom filters, memtable bloom, data-block hash
# index, L0 trigger 8, dynamic level sizes, Snappy, WAL without fsync) on
# 100,000 keys of about 1.1 KB (a 1 KiB value plus its versions). Prints one JSON object: CPU
# microseconds per operation (process user + system time, including the
# flushes and compactions each workload leaves behind) for point reads and
# for blind overwrites committed eight per batch. A replica's write is one
# of each: it reads the stored versions, then commits the merge in a group.
# scripts/db_bench_cpu.py does the measuring.
# Usage: scripts/storage-floor.sh [SECONDS_PER_WORKLOAD]   (default 10)
set -euo pipefail
secs=${1:-10}
"$(dirname "$0")/install-deps.sh" rocksdb-tools >&2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 "$(dirname "$0")/db_bench_cpu.py" "$dir" "$secs"
