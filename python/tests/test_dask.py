"""spillway.dask.SpillwayStore: on its own, and as the data store of a LocalCluster's workers."""

from __future__ import annotations

import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="spillway.dask needs dask.distributed (Debian: python3-distributed)"
)
da = pytest.importorskip("dask.array", reason="the LocalCluster job needs dask.array (Debian: python3-dask)")

from spillway.dask import SpillwayStore, close_worker_store, worker_stats  # noqa: E402

from patterns import KiB, MiB  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SpillwayStore(host_bytes="1M", disk_dir=tmp_path, pressure_wait=5.0, high_watermark=1.0)
    yield s
    s.close()


def test_values_round_trip_through_distributed_serialization(store: SpillwayStore) -> None:
    array = np.arange(32 * KiB, dtype=np.float64)
    store["x"] = array
    store[("y", 1)] = {"a": [1, 2], "b": np.ones(10)}
    store["z"] = b"raw"
    # distributed sends numpy arrays as their raw frames: stored once plus a small header.
    assert array.nbytes <= store.stats()["pool_bytes"] - 0 < array.nbytes + 16 * KiB
    out = store["x"]
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable
    assert store[("y", 1)]["a"] == [1, 2]
    np.testing.assert_array_equal(store[("y", 1)]["b"], np.ones(10))
    assert store["z"] == b"raw"


def test_the_pool_is_made_from_the_keywords_in_the_worker_directory(tmp_path: Path) -> None:
    with SpillwayStore(str(tmp_path), host_bytes="2M", compression="none") as s:
        assert s.pool.spill_directory.startswith(str(tmp_path))
        assert s.pool.options["host_bytes"] == 2 * MiB
        assert s.pool.options["compression"] == "none"
        directory = s.pool.spill_directory
    assert s.pool.closed
    assert not os.path.exists(directory)
    with pytest.raises(TypeError, match="host_byte"):
        SpillwayStore(str(tmp_path), host_byte="2M")


def test_fast_and_evict_follow_the_managers_protocol(tmp_path: Path) -> None:
    with SpillwayStore(host_bytes="4M", disk_dir=tmp_path, live_bytes="1M") as s:
        assert not s.fast
        assert s.evict() == -1
        s["a"] = np.zeros(100 * KiB, np.uint8)
        s["b"] = np.zeros(200 * KiB, np.uint8)
        assert len(s.fast) == 2 and set(s.fast) == {"a", "b"}
        assert s.fast["a"] is s["a"]
        weight = s.evict()  # the least recently used live value goes into the pool
        assert weight >= 200 * KiB  # distributed.sizeof of b (a was just read)
        assert list(s.fast) == ["a"]
        assert s.stats()["pool_values"] == 1
        np.testing.assert_array_equal(s["b"], np.zeros(200 * KiB, np.uint8))


def test_spilled_total_and_metrics(store: SpillwayStore, tmp_path: Path) -> None:
    assert tuple(store.spilled_total) == (0, 0)
    for i in range(16):  # 4 MiB into a 1 MiB host tier
        store[i] = np.full(256 * KiB // 8, i, dtype=np.int64)
    memory, disk = store.spilled_total
    assert memory >= 3 * MiB  # the values' bytes
    assert 0 < disk < memory  # their records, which the pool compressed
    assert memory == store.tier_bytes()["disk"]
    for i in range(16):
        assert (store[i] == i).all()
    metrics = store.get_metrics()
    reference = distributed.spill.SpillBuffer(str(tmp_path / "zict"), target=1000).get_metrics()
    assert set(reference) <= set(metrics)  # what the worker's Prometheus collector reads
    assert metrics["disk_write_bytes_total"] >= 3 * MiB
    assert metrics["disk_read_count_total"] > 0
    assert metrics["disk_count"] == 16
    stats = store.spillway_stats()
    assert stats["store"]["values"] == 16
    assert stats["pool"]["moves"]["host"]["disk"]["bytes"] == metrics["disk_write_bytes_total"]


def test_a_local_cluster_job_several_times_the_budget(tmp_path: Path) -> None:
    """Two worker processes with 32 MiB host tiers persist 256 MiB and reduce it."""
    shape, chunks, seed = (4096, 8192), (512, 1024), 42

    def block_crc(block: np.ndarray) -> np.ndarray:
        return np.array([[zlib.crc32(np.ascontiguousarray(block).tobytes())]], dtype=np.int64)

    def job(x: Any) -> Any:
        crcs = x.map_blocks(block_crc, chunks=(1, 1), dtype=np.int64)
        return crcs, (x * 2 + 1).sum(axis=0), x.max()

    # The reference, computed without spilling, one block at a time.
    reference = job(da.random.RandomState(seed).random(shape, chunks=chunks))
    expected = [r.compute(scheduler="sync") for r in reference]

    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    started = time.monotonic()
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=None,
        local_directory=str(tmp_path / "workers"),
        silence_logs=logging.ERROR,
        data=(SpillwayStore, {"host_bytes": "32M", "disk_dir": str(spill_dir)}),
    ) as cluster, distributed.Client(cluster) as client:
        assert len(os.listdir(spill_dir)) == 2  # one pool, one private directory, per worker
        x = da.random.RandomState(seed).random(shape, chunks=chunks).persist()
        distributed.wait(x)
        got = [r.compute() for r in job(x)]
        stats: Dict[str, Any] = worker_stats(client)
        # The scheduler hears of the spilled bytes through the workers' heartbeats.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            workers = client.scheduler_info()["workers"].values()
            spilled = [w["metrics"]["spilled_bytes"]["memory"] for w in workers]
            if all(s > 0 for s in spilled):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the scheduler does not see the spilled bytes: {spilled}")
        del x

    np.testing.assert_array_equal(got[0], expected[0])  # every block's bytes
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    assert got[2] == expected[2]
    assert len(stats) == 2
    values = 0
    for address, s in stats.items():
        assert s is not None, f"worker {address} has no SpillwayStore"
        assert s["pool"]["tiers"]["host"]["capacity_bytes"] == 32 * MiB
        assert s["pool"]["moves"]["host"]["disk"]["bytes"] > 0, f"worker {address} did not spill"
        assert s["pool"]["errors"]["out_of_memory"] == 0
        values += s["store"]["values"]
    assert values >= 64  # the 64 persisted blocks (and any results not yet released)
    assert sum(s["store"]["pool_bytes"] for s in stats.values()) >= 256 * MiB
    assert os.listdir(spill_dir) == []  # the workers' pools closed at exit and took their directories
    assert time.monotonic() - started < 120


def test_close_worker_store_in_process(tmp_path: Path) -> None:
    """With processes=False the pools would live until the client's process
    exits; close_worker_store frees them at once."""
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        data=(SpillwayStore, {"host_bytes": "4M", "disk_dir": str(tmp_path)}),
    ) as cluster, distributed.Client(cluster) as client:
        total = da.ones((1024, 1024), chunks=(256, 256)).sum().compute()
        assert total == 1024 * 1024
        assert len(os.listdir(tmp_path)) == 1
        assert list(client.run(close_worker_store).values()) == [True]
        assert os.listdir(tmp_path) == []
