"""Pool.stats(): the dict's shape, and its numbers after allocations, pins and moves."""

from __future__ import annotations

import spillway
from patterns import KiB

TIERS = ("device", "host", "disk")
TIER_KEYS = {
    "enabled",
    "capacity_bytes",
    "used_bytes",
    "clean_bytes",
    "pinned_bytes",
    "peak_bytes",
    "buffers",
    "largest_free_bytes",
    "thread_cached_bytes",
    "fragmentation",
}


def test_shape(pool):
    s = pool.stats()
    assert set(s) == {
        "tiers",
        "moves",
        "evictions",
        "clean_evictions",
        "pins",
        "pin_waits",
        "stall_seconds",
        "live_buffers",
        "disk_stored_bytes",
        "disk_file_bytes",
        "disk_direct_io",
        "disk_overlapped_writes",
        "errors",
        "move_latency",
    }
    assert tuple(s["tiers"]) == TIERS
    for tier in TIERS:
        assert set(s["tiers"][tier]) == TIER_KEYS
        # moves[from][to] for every pair of different tiers
        assert set(s["moves"][tier]) == set(TIERS) - {tier}
        for to in s["moves"][tier]:
            assert set(s["moves"][tier][to]) == {"moves", "bytes", "stored_bytes", "seconds"}
    assert set(s["evictions"]) == {"pressure", "proactive", "explicit"}
    assert set(s["errors"]) == {
        "spill_write_failures",
        "fetch_failures",
        "corruptions",
        "out_of_memory",
        "timeouts",
    }
    latency = s["move_latency"]
    assert len(latency["counts"]) == len(latency["bounds_seconds"]) + 1
    assert latency["bounds_seconds"] == sorted(latency["bounds_seconds"])


def test_values_follow_allocations_pins_and_moves(pool):
    size = 64 * KiB
    buffers = [pool.allocate(size, label=f"b{i}") for i in range(3)]
    s = pool.stats()
    assert s["live_buffers"] == 3
    assert s["tiers"]["host"]["buffers"] == 3
    assert s["tiers"]["host"]["used_bytes"] >= 3 * size
    assert s["tiers"]["host"]["pinned_bytes"] == 0
    pins_before = s["pins"]

    with buffers[0].pin("host", "rw"):
        s = pool.stats()
        assert s["tiers"]["host"]["pinned_bytes"] >= size
        assert s["pins"] == pins_before + 1
    assert pool.stats()["tiers"]["host"]["pinned_bytes"] == 0

    buffers[1].evict("disk")
    s = pool.stats()
    assert s["moves"]["host"]["disk"]["moves"] == 1
    assert s["moves"]["host"]["disk"]["bytes"] == size
    assert s["evictions"]["explicit"] == 1
    assert s["tiers"]["disk"]["buffers"] == 1
    assert s["tiers"]["host"]["buffers"] == 2
    assert s["moves"]["disk"]["host"]["moves"] == 0

    with buffers[1].pin("host", "r"):
        pass
    s = pool.stats()
    assert s["moves"]["disk"]["host"]["moves"] == 1
    assert s["moves"]["disk"]["host"]["bytes"] == size
    assert s["pin_waits"] >= 1
    assert sum(s["move_latency"]["counts"]) == 2

    for b in buffers:
        b.free()
    s = pool.stats()
    assert s["live_buffers"] == 0
    assert s["tiers"]["host"]["buffers"] == 0
    assert pool.check_invariants() == []


def test_text_forms(pool):
    kept = pool.allocate(4096, label="x")
    assert "host" in pool.stats_text()
    assert "spillway_pins_total" in pool.prometheus()
    assert "1 buffers" in repr(pool) and "host 4.0 KiB/1.0 MiB" in repr(pool)
    kept.free()
    assert spillway.format_bytes(3 * KiB) == "3.0 KiB"
