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
# Usage: scripts/storage-floor.sh [SECONDS_PER_WORKLOAD]   (default 10)
set -euo pipefail
secs=${1:-10}
"$(dirname "$0")/install-deps.sh" rocksdb-tools >&2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$secs" <<'PY'
import json, re, resource, subprocess, sys
db, secs = sys.argv[1], sys.argv[2]
options = [
    f"--db={db}/db", "--num=100000", "--key_size=16", "--value_size=1100",
    "--compression_ratio=1.0", "--compression_type=snappy",
    "--write_buffer_size=8388608", "--max_write_buffer_number=4",
    "--db_write_buffer_size=33554432", "--level0_file_num_compaction_trigger=8",
    "--level_compaction_dynamic_level_bytes=1", "--cache_size=67108864",
    "--bloom_bits=10", "--cache_index_and_filter_blocks=1",
    "--pin_l0_filter_and_index_blocks_in_cache=1", "--memtable_bloom_size_ratio=0.1",
    "--memtable_whole_key_filtering=1", "--use_data_block_hash_index=1",
    "--max_background_jobs=2", "--sync=0", "--threads=1",
]

def run(benchmark, *extra):
    """CPU microseconds per operation of one db_bench workload, including
    the flushes and compactions it leaves behind."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["db_bench", *options, f"--benchmarks={benchmark},waitforcompaction", *extra],
                         check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ops = int(re.search(rf"^{benchmark}\s*:.* (\d+) operations", out, re.M).group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(cpu * 1e6 / ops, 2)

run("fillrandom", "--use_existing_db=0")
timed = ["--use_existing_db=1", f"--duration={secs}"]
print(json.dumps({
    "put_us": run("overwrite", *timed, "--batch_size=8"),
    "get_us": run("readrandom", *timed),
}))
PY
