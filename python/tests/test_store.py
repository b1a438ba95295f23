"""spillway.Store: MutableMapping semantics, value round trips, spilling, the live LRU, closing."""

from __future__ import annotations

import pickle
import random
from typing import Any, Callable, Dict

import numpy as np
import pytest

import spillway
from spillway.codecs import Encoded, ValueCodec

from patterns import KiB, MiB, pattern


class Point:
    """A plain picklable class (defined at module level so pickle finds it)."""

    def __init__(self, x: int, payload: np.ndarray) -> None:
        self.x = x
        self.payload = payload


# ---- mapping semantics -------------------------------------------------------------------


def test_behaves_as_a_mutable_mapping(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    reference: Dict[Any, Any] = {}
    keys = ["a", 1, (2, "b"), frozenset({3}), None, 2.5]
    for i, key in enumerate(keys):
        store[key] = bytes([i]) * (i + 1)
        reference[key] = bytes([i]) * (i + 1)
    assert len(store) == len(reference)
    assert set(store) == set(reference)
    assert dict(store.items()) == reference
    assert store == reference  # Mapping.__eq__ compares items
    assert "a" in store and "zz" not in store
    with pytest.raises(KeyError):
        store["zz"]
    with pytest.raises(KeyError):
        del store["zz"]
    assert store.get("zz", 7) == 7
    assert store.pop((2, "b")) == b"\x02\x02\x02"
    assert (2, "b") not in store
    assert store.setdefault("new", b"x") == b"x" and store["new"] == b"x"
    store.update({"a": b"replaced", "u": b"u"})
    assert store["a"] == b"replaced" and store["u"] == b"u"
    del store[1]
    assert 1 not in store and len(store) == len(keys) - 2 + 2
    with pytest.raises(TypeError):
        store[["unhashable"]] = b"x"


def test_iteration_is_over_a_snapshot_in_recency_order(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    for key in "abc":
        store[key] = key.encode()
    store["a"]  # a becomes the most recently used
    keys = []
    for key in store:  # changing the store while iterating is allowed
        keys.append(key)
        store[key + "2"] = b"x"
    assert keys == ["b", "c", "a"]
    assert len(store) == 6


def test_delete_replace_and_clear_free_the_pool_buffers(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    store["a"] = np.zeros(100 * KiB, np.uint8)
    store["b"] = np.zeros(100 * KiB, np.uint8)
    assert pool.stats()["live_buffers"] == 2
    store["a"] = np.ones(50 * KiB, np.uint8)  # replaced: the old buffer goes
    assert pool.stats()["live_buffers"] == 2
    assert store.stats()["pool_bytes"] == 150 * KiB
    del store["b"]
    assert pool.stats()["live_buffers"] == 1
    assert pool.stats()["tiers"]["host"]["used_bytes"] == 50 * KiB
    store.clear()
    assert len(store) == 0
    assert pool.stats()["live_buffers"] == 0
    assert store.stats()["pool_bytes"] == 0


# ---- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"", b"bytes value", bytearray(b"a bytearray"), bytes(range(256)) * 1000],
    ids=["empty", "bytes", "bytearray", "256k"],
)
def test_bytes_like_values_come_back_with_their_type(pool: spillway.Pool, value: Any) -> None:
    store = spillway.Store(pool)
    store["k"] = value
    out = store["k"]
    assert type(out) is type(value)
    assert out == value


def test_memoryview_comes_back_with_its_format_and_shape(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    source = np.arange(12, dtype=np.int32)
    store["m"] = memoryview(source).cast("B").cast("i", [3, 4])
    out = store["m"]
    assert isinstance(out, memoryview)
    assert (out.format, out.shape) == ("i", (3, 4))
    assert out.tolist() == source.reshape(3, 4).tolist()
    assert not out.readonly


ARRAYS = {
    "float32": np.linspace(0, 1, 1000, dtype=np.float32),
    "int64-3d": np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4),
    "bool": np.arange(100) % 3 == 0,
    "complex128": np.arange(50) * (1 + 2j),
    "float16": np.arange(64, dtype=np.float16),
    "datetime64": np.arange("2024-01-01", "2024-02-01", dtype="datetime64[D]"),
    "structured": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "i4"), ("b", "f8")]),
    "0-d": np.array(3.25),
    "empty": np.empty((0, 5), dtype=np.float64),
    "fortran": np.asfortranarray(np.arange(35.0).reshape(5, 7)),
    "non-contiguous": np.arange(1000.0).reshape(20, 50)[::3, 1::2],
    "big-endian": np.arange(10, dtype=">u4"),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_numpy_arrays_come_back_with_dtype_shape_and_order(pool: spillway.Pool, name: str) -> None:
    store = spillway.Store(pool)
    array = ARRAYS[name]
    store[name] = array
    out = store[name]
    assert type(out) is np.ndarray
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        assert out.flags.f_contiguous
    else:
        assert out.flags.c_contiguous
    assert out.flags.writeable and out.flags.owndata
    assert not np.shares_memory(out, array)


def test_numpy_array_is_stored_as_its_raw_bytes(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    store["a"] = np.zeros((256, 256), np.float64)
    assert store.stats()["pool_bytes"] == 256 * 256 * 8
    assert pool.stats()["tiers"]["host"]["used_bytes"] == 256 * 256 * 8


def test_arbitrary_objects_are_pickled_with_out_of_band_buffers(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    payload = np.arange(64 * KiB, dtype=np.uint8)
    value = {"point": Point(3, payload), "list": [1, "two", None], "array": payload * 2}
    store["obj"] = value
    # The two arrays' bytes travel out of band: stored once each, plus a small pickle stream.
    stored = store.stats()["pool_bytes"]
    assert 2 * payload.nbytes <= stored < 2 * payload.nbytes + 4 * KiB
    out = store["obj"]
    assert out["list"] == [1, "two", None]
    assert isinstance(out["point"], Point) and out["point"].x == 3
    np.testing.assert_array_equal(out["point"].payload, payload)
    np.testing.assert_array_equal(out["array"], payload * 2)
    out["array"][0] = 99  # restored arrays are writable, and are not the store's
    np.testing.assert_array_equal(store["obj"]["array"], payload * 2)


def test_pickle_protocol_can_be_chosen(pool: spillway.Pool) -> None:
    store = spillway.Store(pool, codec=ValueCodec(protocol=2))
    store["x"] = {"a": np.arange(10)}
    np.testing.assert_array_equal(store["x"]["a"], np.arange(10))
    with pytest.raises(ValueError, match="protocol"):
        ValueCodec(protocol=99)


def test_a_failed_put_leaves_the_old_value(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    store["k"] = b"old"
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        store["k"] = lambda: None  # not picklable
    assert store["k"] == b"old"
    assert pool.stats()["live_buffers"] == 1


def test_a_copy_that_fails_raises_its_own_error_and_leaks_nothing(
    pool: spillway.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import spillway.store

    def failing_copy(destination: memoryview, source: memoryview) -> None:
        view = np.frombuffer(destination, np.uint8)  # noqa: F841 - kept by the traceback
        raise RuntimeError("the copy failed")

    store = spillway.Store(pool)
    monkeypatch.setattr(spillway.store, "copy_bytes", failing_copy)
    with pytest.raises(RuntimeError, match="the copy failed"):
        store["k"] = np.zeros(100 * KiB, np.uint8)
    gc.collect()
    assert "k" not in store
    assert pool.stats()["live_buffers"] == 0


def test_values_read_out_do_not_depend_on_the_pool(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool()
    store = spillway.Store(pool)
    store["a"] = np.arange(1000)
    store["o"] = {"b": np.arange(5)}
    a, o = store["a"], store["o"]
    del store["a"]
    store.close()
    pool.close()
    np.testing.assert_array_equal(a, np.arange(1000))
    np.testing.assert_array_equal(o["b"], np.arange(5))


class CountingCodec:
    """A codec that wraps the default one and counts its calls."""

    def __init__(self) -> None:
        self.inner = ValueCodec()
        self.encoded = 0
        self.decoded = 0

    def encode(self, value: Any) -> Encoded:
        self.encoded += 1
        return self.inner.encode(value)

    def decode(self, meta: Any, stored: Any) -> Any:
        self.decoded += 1
        return self.inner.decode(meta, stored)


def test_a_custom_codec_is_used(pool: spillway.Pool) -> None:
    codec = CountingCodec()
    store = spillway.Store(pool, codec=codec)
    store["a"] = b"x"
    assert store["a"] == b"x"
    assert (codec.encoded, codec.decoded) == (1, 1)


# ---- spilling ----------------------------------------------------------------------------


def test_four_times_over_subscribed_every_value_survives(make_pool: Callable[..., spillway.Pool]) -> None:
    host = 4 * MiB
    pool = make_pool(host_bytes=host, pressure_wait=5.0)
    store = spillway.Store(pool)
    count, size = 64, 256 * KiB  # 16 MiB of values: 4x the host tier
    expected = {}
    for i in range(count):
        if i % 3 == 0:
            value: Any = np.frombuffer(pattern(size, i), dtype=np.float64).copy()
        elif i % 3 == 1:
            value = pattern(size, i)
        else:
            value = {"i": i, "data": np.frombuffer(pattern(size, i), np.uint8).copy()}
        store[("v", i)] = value
        expected[("v", i)] = value
    stats = pool.stats()
    assert stats["moves"]["host"]["disk"]["bytes"] >= count * size - host
    assert stats["tiers"]["disk"]["buffers"] > 0
    assert stats["tiers"]["host"]["used_bytes"] <= host
    where = store.tier_bytes()
    assert where["host"] + where["disk"] == store.stats()["pool_bytes"]
    assert where["disk"] >= count * size - host and where["host"] <= host
    order = list(expected)
    random.Random(1).shuffle(order)
    for _ in range(2):  # read back everything, twice, in a random order
        for key in order:
            value, out = expected[key], store[key]
            if isinstance(value, dict):
                assert out["i"] == value["i"]
                np.testing.assert_array_equal(out["data"], value["data"])
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(out, value)
            else:
                assert out == value
    assert pool.stats()["moves"]["disk"]["host"]["moves"] > 0
    assert pool.check_invariants() == []
    assert len(store) == count


def test_a_value_larger_than_the_host_tier_is_chunked(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="1M", pressure_wait=5.0)
    store = spillway.Store(pool)
    assert store.chunk_bytes == 256 * KiB
    big = np.frombuffer(pattern(3 * MiB + 123, 5), np.uint8).copy()
    store["big"] = big
    store["bytes"] = pattern(2 * MiB + 1, 6)
    assert pool.stats()["live_buffers"] == 13 + 9
    np.testing.assert_array_equal(store["big"], big)
    assert store["bytes"] == pattern(2 * MiB + 1, 6)


# ---- the live LRU ------------------------------------------------------------------------


def test_live_values_are_kept_up_to_the_bound(pool: spillway.Pool) -> None:
    store = spillway.Store(pool, live_bytes=300 * KiB)
    arrays = {i: np.full(100 * KiB, i, np.uint8) for i in range(5)}
    for i, a in arrays.items():
        store[i] = a
    s = store.stats()
    assert (s["live_values"], s["live_bytes"], s["pool_values"]) == (3, 300 * KiB, 2)
    assert s["evictions"] == 2
    assert store[4] is arrays[4]  # live: the object itself, no copy
    assert store.stats()["live_hits"] == 1
    # 0 is in the pool: reading it decodes a copy, makes it live, evicts the LRU (2).
    out = store[0]
    assert out is not arrays[0]
    np.testing.assert_array_equal(out, arrays[0])
    s = store.stats()
    assert (s["promotions"], s["live_values"], s["pool_values"], s["evictions"]) == (1, 3, 2, 3)
    assert store[0] is out
    # A value larger than the bound goes straight to the pool.
    store["big"] = np.zeros(400 * KiB, np.uint8)
    assert store.stats()["pool_values"] == 3
    assert store.stats()["live_values"] == 3
    assert pool.stats()["live_buffers"] == 1 + 1 + 2  # 400 KiB in chunks of 256 KiB



def test_read_copies_make_pushing_a_read_value_out_free(pool: spillway.Pool) -> None:
    store = spillway.Store(pool, live_bytes=200 * KiB, keep_read_copies=True)
    arrays = {i: np.full(100 * KiB, i, np.uint8) for i in range(4)}
    for i, a in arrays.items():
        store[i] = a  # 0 and 1 are pushed into the pool (written once)
    assert store.stats()["pool_writes"] == 2
    out = store[0]  # read from the pool, made live, its pool copy kept
    np.testing.assert_array_equal(out, arrays[0])
    s = store.stats()
    assert (s["promotions"], s["pool_values"], s["live_values"]) == (1, 3, 2)
    writes = s["pool_writes"]  # 3: the LRU live value (2) went into the pool
    # Reading 1 pushes out 3, which has no pool copy: one write.
    np.testing.assert_array_equal(store[1], arrays[1])
    s = store.stats()
    assert (s["pool_writes"], s["clean_evictions"]) == (writes + 1, 0)
    # Reading 2 pushes out 0, read from the pool and kept there: no write.
    np.testing.assert_array_equal(store[2], arrays[2])
    s = store.stats()
    assert (s["pool_writes"], s["clean_evictions"]) == (writes + 1, 1)
    np.testing.assert_array_equal(store[0], arrays[0])  # the kept copy reads back
    # evict() of a live value with a copy returns its weight, writes nothing.
    before = store.stats()["pool_writes"]
    assert store.evict() > 0
    assert store.stats()["pool_writes"] == before
    # del frees the kept copy's pool buffers.
    live_before = pool.stats()["live_buffers"]
    for key in list(store):
        del store[key]
    assert pool.stats()["live_buffers"] < live_before
    assert pool.stats()["live_buffers"] == 0
    assert store.stats()["pool_values"] == 0


def test_without_read_copies_a_read_value_leaves_the_pool(pool: spillway.Pool) -> None:
    store = spillway.Store(pool, live_bytes=200 * KiB)
    for i in range(3):
        store[i] = np.full(100 * KiB, i, np.uint8)
    store[0]
    s = store.stats()
    assert (s["promotions"], s["clean_evictions"]) == (1, 0)
    assert s["pool_values"] == 1  # 0 left the pool; 1 was pushed in to make room

def test_evict_moves_the_least_recently_used_live_value(pool: spillway.Pool) -> None:
    store = spillway.Store(pool, live_bytes="1M")
    store["a"] = np.zeros(1000, np.uint8)
    store["b"] = np.zeros(2000, np.uint8)
    assert store.evict() == 1000
    assert store.evict() == 2000
    assert store.evict() == -1  # nothing live
    assert store.stats()["pool_values"] == 2
    np.testing.assert_array_equal(store["a"], np.zeros(1000, np.uint8))


def test_a_live_value_that_cannot_be_encoded_stays_live(
    pool: spillway.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    store = spillway.Store(pool, live_bytes=100, weight=lambda value: 60)
    unpicklable = lambda: 1  # noqa: E731
    store["f"] = unpicklable
    assert store.evict() == -1  # logged, not raised
    assert store["f"] is unpicklable
    assert store.stats()["live_values"] == 1
    # A put that needs the room pushes "f" out: that fails, is logged, and the put stands.
    caplog.clear()
    store["g"] = b"g" * 10
    assert store["g"] == b"g" * 10 and store["f"] is unpicklable
    s = store.stats()
    assert (s["live_values"], s["live_bytes"], s["pool_values"]) == (2, 120, 0)
    assert "could not be moved into the pool" in caplog.text


def test_a_failing_weight_function_leaves_the_store_usable(pool: spillway.Pool) -> None:
    import threading

    failing = {"now": False}

    def weight(value: Any) -> int:
        if failing["now"]:
            raise RuntimeError("weight failed")
        return 1 << 30  # over the bound: the value goes to the pool

    store = spillway.Store(pool, live_bytes="1M", weight=weight)
    store["a"] = b"abc"
    failing["now"] = True
    with pytest.raises(RuntimeError, match="weight failed"):
        store["a"]  # read, then the weight for making it live fails
    failing["now"] = False
    assert store["a"] == b"abc"
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() waits for a copy that the failure never ended"
    assert pool.stats()["live_buffers"] == 0


# ---- closing, arguments, stats -----------------------------------------------------------


def test_close_frees_everything_and_refuses_later_use(pool: spillway.Pool) -> None:
    with spillway.Store(pool, live_bytes="64K") as store:
        store["a"] = b"a" * 100
        store["b"] = np.zeros(100 * KiB, np.uint8)
        assert pool.stats()["live_buffers"] == 1
    assert store.closed
    assert pool.stats()["live_buffers"] == 0
    assert len(store) == 0 and "a" not in store and list(store) == []
    for action in (lambda: store["a"], lambda: store.__setitem__("a", b"x"), lambda: store.__delitem__("a")):
        with pytest.raises(spillway.ClosedError):
            action()
    store.close()  # idempotent
    assert not pool.closed  # not the store's to close


def test_close_pool_closes_the_pool(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool()
    store = spillway.Store(pool, close_pool=True)
    store["a"] = b"x"
    store.close()
    assert pool.closed


def test_bad_arguments_are_named(pool: spillway.Pool, make_pool: Callable[..., spillway.Pool]) -> None:
    with pytest.raises(TypeError, match="pool"):
        spillway.Store("not a pool")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="live_bytes"):
        spillway.Store(pool, live_bytes="unlimited")
    with pytest.raises(ValueError, match="live_bytes|size"):
        spillway.Store(pool, live_bytes="lots")
    with pytest.raises(ValueError, match="chunk_bytes"):
        spillway.Store(pool, chunk_bytes=100)
    with pytest.raises(ValueError, match="chunk_bytes"):
        spillway.Store(pool, chunk_bytes="2M")  # the host tier has 1 MiB
    with pytest.raises(TypeError, match="label"):
        spillway.Store(pool, label=3)  # type: ignore[arg-type]
    no_host = make_pool(host_bytes=0, device_bytes="1M", device_backend="simulated")
    with pytest.raises(ValueError, match="host tier"):
        spillway.Store(no_host)


def test_stats_count_the_traffic(pool: spillway.Pool) -> None:
    store = spillway.Store(pool)
    store["a"] = np.zeros(1000, np.uint8)
    store["b"] = b"x" * 10
    store["a"]
    store["a"]
    s = store.stats()
    assert (s["values"], s["pool_values"], s["live_values"], s["live_bytes"]) == (2, 2, 0, 0)
    assert s["pool_bytes"] == 1010
    assert (s["puts"], s["gets"], s["pool_reads"], s["live_hits"]) == (2, 2, 2, 0)
    assert (s["pool_writes"], s["bytes_written"], s["bytes_read"]) == (2, 1010, 2000)
    assert s["encode_seconds"] >= 0 and s["decode_seconds"] > 0
    assert "2 values" in repr(store)
