#!/usr/bin/python3
"""One dask job under one memory budget: spillway's worker store beside dask's
default spilling (zict's SpillBuffer).

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python/dask_spill.py \
        [--budget 64M] [--data 512M] [--workers 2] [--threads 2]

The job persists a random array of --data bytes (chunks of --chunk), then
reduces it three ways (column sums of 2x+1, the maximum, a CRC of every
block) and checks the results against a run without a cluster. Each worker
gets --budget bytes of memory for data:

- ``spillway``: ``data=(SpillwayStore, {"host_bytes": budget, ...})``: the
  pool's host tier; it spills to disk beyond it. ``--live-fraction`` (default
  0.25) moves a share of the budget from the host tier to ``live_bytes``
  (live objects; read-back values keep their pool copy, ``keep_read_copies``);
  ``--spillway-options`` adds keywords (``{"disk_io": "buffered"}``, ...).
- ``zict``: distributed's default SpillBuffer with ``target`` = budget (the
  worker's ``memory_limit`` is budget / 0.6 and ``memory.target`` 0.6).

In both, the memory monitor's spill, pause and terminate thresholds are off,
so that only the store's own budget decides what spills. Prints one JSON line
per store: wall seconds (persist + reductions, without the cluster start),
the bytes written to disk (logical, and as stored), and the bytes read back.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import zlib
from typing import Any, Dict, List, Tuple

import dask
import dask.array as da
import distributed
import numpy as np

import spillway
from spillway.dask import SpillwayStore

TARGET_FRACTION = 0.6


def block_crc(block: np.ndarray) -> np.ndarray:
    return np.array([[zlib.crc32(np.ascontiguousarray(block).tobytes())]], dtype=np.int64)


def job(x: Any) -> Tuple[Any, ...]:
    return (x * 2 + 1).sum(axis=0), x.max(), x.map_blocks(block_crc, chunks=(1, 1), dtype=np.int64)


def spill_counters(dask_worker: Any) -> Dict[str, int]:
    """Bytes the worker's store wrote to and read from disk."""
    data = dask_worker.data
    if isinstance(data, SpillwayStore):
        moves = data.pool.stats()["moves"]
        return {
            "written_bytes": moves["host"]["disk"]["bytes"],
            "written_stored_bytes": moves["host"]["disk"]["stored_bytes"],
            "read_bytes": moves["disk"]["host"]["bytes"],
        }
    metrics = data.get_metrics()  # distributed.spill.SpillBuffer
    return {
        "written_bytes": metrics["disk_write_bytes_total"],
        "written_stored_bytes": metrics["disk_write_bytes_total"],
        "read_bytes": metrics["disk_read_bytes_total"],
    }


def run(
    store: str, args: argparse.Namespace, shape: Tuple[int, int], chunks: Tuple[int, int], expected: List[Any]
) -> Dict[str, Any]:
    budget = spillway.parse_size(args.budget)
    memory_limit = int(budget / TARGET_FRACTION)
    config = {
        "distributed.worker.memory.target": TARGET_FRACTION,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
    }
    with tempfile.TemporaryDirectory(dir=args.disk_dir) as work, dask.config.set(config):
        extra: Dict[str, Any] = {}
        if store == "spillway":
            live = int(budget * args.live_fraction)
            options = {"host_bytes": budget - live, "live_bytes": live, "disk_dir": work}
            options.update(json.loads(args.spillway_options))
            extra["data"] = (SpillwayStore, options)
        with distributed.LocalCluster(
            n_workers=args.workers,
            threads_per_worker=args.threads,
            memory_limit=memory_limit,
            processes=True,
            dashboard_address=None,
            local_directory=work,
            silence_logs=logging.ERROR,
            **extra,
        ) as cluster, distributed.Client(cluster) as client:
            start = time.perf_counter()
            x = da.random.RandomState(args.seed).random(shape, chunks=chunks).persist()
            distributed.wait(x)
            persisted = time.perf_counter() - start
            got = dask.compute(*job(x))
            seconds = time.perf_counter() - start
            counters = client.run(spill_counters)
            del x
    correct = all(np.array_equal(g, e) for g, e in zip(got, expected))
    totals = {k: sum(c[k] for c in counters.values()) for k in next(iter(counters.values()))}
    return {
        "bench": "dask_spill",
        "store": store,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "budget_bytes_per_worker": budget,
        "options": (
            {"live_fraction": args.live_fraction, **json.loads(args.spillway_options)}
            if store == "spillway"
            else {}
        ),
        "data_bytes": shape[0] * shape[1] * 8,
        "seconds": round(seconds, 3),
        "persist_seconds": round(persisted, 3),
        **totals,
        "correct": correct,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="64M", help="memory for data per worker (default 64M)")
    parser.add_argument("--data", default="512M", help="bytes persisted (default 512M)")
    parser.add_argument("--chunk", default="4M", help="bytes per chunk (default 4M)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--live-fraction",
        type=float,
        default=0.25,
        help="share of the budget kept as live objects (spillway; default 0.25, 0 for none)",
    )
    parser.add_argument(
        "--spillway-options", default="{}", help='more SpillwayStore keywords as JSON: {"disk_io": "buffered"}'
    )
    parser.add_argument("--disk-dir", default=None, help="where the spill directories go (default $TMPDIR)")
    parser.add_argument("--stores", default="spillway,zict", help="stores to run, in order")
    args = parser.parse_args()

    columns = 8192
    rows = spillway.parse_size(args.data) // 8 // columns
    chunk_rows = max(1, spillway.parse_size(args.chunk) // 8 // 1024)
    shape, chunks = (rows, columns), (chunk_rows, 1024)
    # The reference: computed without a cluster, one block at a time.
    reference = job(da.random.RandomState(args.seed).random(shape, chunks=chunks))
    expected = list(dask.compute(*reference, scheduler="sync"))
    for store in args.stores.split(","):
        print(json.dumps(run(store, args, shape, chunks, expected)), flush=True)


if __name__ == "__main__":
    main()
