#!/usr/bin/env python3
"""CPU microseconds per operation of RocksDB alone, measured with db_bench.

  scripts/db_bench_cpu.py DIR SECONDS

Fills a database in DIR with 100,000 keys of about 1.1 KB using the options
`Storage::open` sets (see scripts/storage-floor.sh, which runs this), then
times blind overwrites committed eight per batch and point reads for SECONDS
each. Prints one JSON object, {"put_us": ..., "get_us": ...}: process user +
system time per operation, including the flushes and compactions each
workload leaves behind. Needs db_bench (Debian's rocksdb-tools) on PATH.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys


def node_options(db_dir: str) -> list[str]:
    """db_bench options matching the node's storage (node/src/storage/mod.rs)."""
    return [
        f"--db={db_dir}/db",
        "--num=100000",
        "--key_size=16",
        "--value_size=1100",
        "--compression_ratio=1.0",
        "--compression_type=snappy",
        "--write_buffer_size=8388608",
        "--max_write_buffer_number=4",
        "--db_write_buffer_size=33554432",
        "--level0_file_num_compaction_trigger=8",
        "--level_compaction_dynamic_level_bytes=1",
        "--cache_size=67108864",
        "--bloom_bits=10",
        "--cache_index_and_filter_blocks=1",
        "--pin_l0_filter_and_index_blocks_in_cache=1",
        "--memtable_bloom_size_ratio=0.1",
        "--memtable_whole_key_filtering=1",
        "--use_data_block_hash_index=1",
        "--max_background_jobs=2",
        "--sync=0",
        "--threads=1",
    ]


def cpu_us_per_op(options: list[str], benchmark: str, *extra: str) -> float:
    """CPU microseconds per operation of one db_bench workload, including
    the flushes and compactions it leaves behind."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["db_bench", *options, f"--benchmarks={benchmark},waitforcompaction", *extra],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = re.search(rf"^{benchmark}\s*:.* (\d+) operations", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"db_bench printed no operation count for {benchmark}:\n{out}")
    ops = int(found.group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(cpu * 1e6 / ops, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db_dir", metavar="DIR", help="directory for the database (made by db_bench)")
    parser.add_argument("seconds", metavar="SECONDS", help="length of each timed workload")
    args = parser.parse_args()
    options = node_options(args.db_dir)
    cpu_us_per_op(options, "fillrandom", "--use_existing_db=0")
    timed = ["--use_existing_db=1", f"--duration={args.seconds}"]
    result = {
        "put_us": cpu_us_per_op(options, "overwrite", *timed, "--batch_size=8"),
        "get_us": cpu_us_per_op(options, "readrandom", *timed),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
