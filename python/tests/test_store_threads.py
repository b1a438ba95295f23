"""spillway.Store from several threads: puts, gets, deletes and close under pressure."""

from __future__ import annotations

import threading
from typing import Callable, List

import numpy as np
import pytest

import spillway

from frame_sampler import frames_held
from patterns import KiB

THREADS = 4


def value_for(key: int, version: int, nbytes: int) -> np.ndarray:
    """A value that says which key and version it is in every element."""
    return np.full(nbytes // 8, key * 1_000_000 + version, dtype=np.int64)


def check_value(array: np.ndarray, key: int) -> int:
    """The version of a value read for `key`; fails unless every element agrees."""
    first = int(array[0])
    assert first // 1_000_000 == key, f"value of key {first // 1_000_000} read for key {key}"
    assert (array == first).all(), "a torn value: its elements disagree"
    return first % 1_000_000


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Runs target(i) in `count` threads and re-raises the first failure."""
    errors: List[BaseException] = []

    def body(i: int) -> None:
        try:
            target(i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("live_bytes", [0, 256 * KiB], ids=["pool-only", "with-live-lru"])
def test_threads_put_get_and_delete_under_pressure(
    make_pool: Callable[..., spillway.Pool], live_bytes: int
) -> None:
    pool = make_pool(host_bytes="2M", pressure_wait=10.0)
    store = spillway.Store(pool, live_bytes=live_bytes)
    shared_keys = range(8)  # every thread overwrites and reads these
    rounds = 60

    def work(thread: int) -> None:
        own = [100 + thread * 1000 + i for i in range(12)]
        for r in range(rounds):
            for key in own:  # private keys: the last write is what is read
                store[key] = value_for(key, r, 64 * KiB)
            for key in own:
                assert check_value(store[key], key) == r
            shared = shared_keys[(thread + r) % len(shared_keys)]
            store[shared] = value_for(shared, thread * rounds + r, 32 * KiB)
            other = shared_keys[(thread + 3 * r) % len(shared_keys)]
            try:
                check_value(store[other], other)  # some thread's write, whole
            except KeyError:
                pass  # deleted by another thread just now
            if r % 10 == 9:
                del store[own[r % len(own)]]
                store[own[r % len(own)]] = value_for(own[r % len(own)], r, 64 * KiB)

    run_threads(work)
    assert len(store) == len(shared_keys) + THREADS * 12
    for key in list(store):
        check_value(store[key], int(key))
    assert pool.check_invariants() == []
    assert pool.stats()["moves"]["host"]["disk"]["moves"] > 0
    s = store.stats()
    assert s["values"] == s["live_values"] + s["pool_values"]
    store.clear()
    assert pool.stats()["live_buffers"] == 0


def test_a_value_deleted_while_being_read_is_freed_after_the_read(
    make_pool: Callable[..., spillway.Pool],
) -> None:
    pool = make_pool(host_bytes="4M", pressure_wait=10.0)
    store = spillway.Store(pool)
    stop = threading.Event()

    def reader(_: int) -> None:
        while not stop.is_set():
            try:
                check_value(store[1], 1)
            except KeyError:
                pass

    def writer() -> None:
        for version in range(300):
            store[1] = value_for(1, version, 256 * KiB)
            if version % 2:
                del store[1]
        stop.set()

    threads = [threading.Thread(target=writer)]
    errors: List[BaseException] = []

    def guarded() -> None:
        try:
            reader(0)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
            stop.set()

    threads += [threading.Thread(target=guarded) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert 1 not in store
    assert pool.stats()["live_buffers"] == 0  # nothing leaked by reads racing deletes


def test_close_while_threads_work_frees_everything(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="2M", pressure_wait=10.0)
    store = spillway.Store(pool)
    started = threading.Barrier(THREADS + 1)
    closed_seen = []

    def work(thread: int) -> None:
        started.wait()
        i = 0
        while True:
            try:
                store[(thread, i % 16)] = value_for(thread, i, 64 * KiB)
                store.get((thread, (i * 7) % 16))
            except spillway.ClosedError:
                closed_seen.append(thread)
                return
            i += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    started.wait()
    store.close()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert sorted(closed_seen) == list(range(THREADS))
    assert pool.stats()["live_buffers"] == 0
    assert len(store) == 0


def test_a_profiler_holding_frames_does_not_keep_pins_exported(
    make_pool: Callable[..., spillway.Pool],
) -> None:
    """dask's sampling profiler holds worker threads' frames; the store's
    copies must leave nothing made from a pin's memory in them."""
    pool = make_pool(host_bytes="8M", pressure_wait=10.0)
    store = spillway.Store(pool, chunk_bytes="1M")
    array = np.arange(3 * 256 * KiB, dtype=np.int64)  # 6 MiB: six chunks
    with frames_held(threading.get_ident()):
        for i in range(40):
            store["a"] = array
            np.testing.assert_array_equal(store["a"], array)
            store["b"] = b"x" * (300 * KiB)
            assert store["b"] == b"x" * (300 * KiB)
    assert pool.check_invariants() == []
