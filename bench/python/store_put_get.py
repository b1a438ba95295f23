#!/usr/bin/python3
"""Put and get of one numpy array through spillway.Store while it is resident,
beside numpy's own copies of the same array.

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python/store_put_get.py [--size 64M]

Prints one JSON line per operation: the median seconds over --repeat runs
(the operations taken in turn) and the bandwidth. ``np.copyto`` copies into an array allocated (and touched)
beforehand; ``ndarray.copy`` allocates its result each time, as ``store[k]``
does. ``ratio_vs_copyto`` is copyto's median time over the operation's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np

import spillway


def median_seconds(operations: Dict[str, Callable[[], object]], repeat: int) -> Dict[str, float]:
    """The median time of each operation, run round-robin so that a busy
    moment of the machine hits them all alike."""
    times: Dict[str, List[float]] = {name: [] for name in operations}
    for _ in range(repeat):
        for name, run in operations.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64M", help="array size (default 64M)")
    parser.add_argument("--repeat", type=int, default=20, help="runs per operation (default 20)")
    parser.add_argument("--disk-dir", default=None, help="parent of the pool's spill directory")
    args = parser.parse_args()

    nbytes = spillway.parse_size(args.size)
    array = np.random.default_rng(0).random(nbytes // 8)
    target = np.empty_like(array)
    target[:] = 0  # touched: copyto measures the copy alone

    with tempfile.TemporaryDirectory(dir=args.disk_dir) as disk_dir:
        # Room for two copies (a put writes the new value before the old one
        # goes), so nothing spills: this measures the resident path.
        with spillway.Pool(host_bytes=4 * nbytes, disk_dir=disk_dir) as pool:
            store = spillway.Store(pool, chunk_bytes=nbytes)  # one buffer per value
            store["a"] = array
            results = median_seconds(
                {
                    "numpy_copyto": lambda: np.copyto(target, array),
                    "numpy_copy": array.copy,
                    "store_put": lambda: store.__setitem__("a", array),
                    "store_get": lambda: store["a"],
                },
                args.repeat,
            )
            assert np.array_equal(store["a"], array)
            moved = pool.stats()["moves"]["host"]["disk"]["bytes"]
            store.close()

    for op, seconds in results.items():
        print(
            json.dumps(
                {
                    "bench": "store_put_get",
                    "op": op,
                    "bytes": nbytes,
                    "median_seconds": round(seconds, 6),
                    "gib_per_second": round(nbytes / seconds / 2**30, 2),
                    "ratio_vs_copyto": round(results["numpy_copyto"] / seconds, 3),
                    "ratio_vs_copy": round(results["numpy_copy"] / seconds, 3),
                    "repeat": args.repeat,
                    "spilled_bytes": moved,
                }
            )
        )


if __name__ == "__main__":
    main()
