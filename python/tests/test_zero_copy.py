"""numpy views of pins: zero copy, writes that survive spill round trips, read-only pins."""

from __future__ import annotations

import struct

import pytest

import spillway
from patterns import KiB, pattern, read

np = pytest.importorskip("numpy", reason="numpy is not installed (Debian: python3-numpy)")


def address_of(array: "np.ndarray") -> int:
    return array.__array_interface__["data"][0]


def test_asarray_is_zero_copy(pool):
    b = pool.allocate(4096)
    with b.pin() as p:
        a = np.asarray(p)
        assert a.dtype == np.uint8 and a.shape == (4096,)
        assert address_of(a) == p.address
        assert a.flags.writeable and not a.flags.owndata
        a[:] = 3
        with memoryview(p) as view:
            assert view[100] == 3  # the same memory, seen through another view
        del a


def test_write_survives_an_explicit_spill_round_trip(pool):
    b = pool.allocate(256 * KiB, label="roundtrip")
    with b.pin("host", "rw") as p:
        a = np.asarray(p)
        a[:] = np.arange(a.size, dtype=np.uint64).astype(np.uint8)
        expected = a.copy()
        del a
    b.evict("disk")
    assert b.tier == "disk"
    assert pool.stats()["tiers"]["host"]["buffers"] == 0
    with b.pin("host", "r") as p:
        a = np.asarray(p)
        assert np.array_equal(a, expected)
        del a
    s = pool.stats()["moves"]
    assert s["host"]["disk"]["moves"] == 1 and s["disk"]["host"]["moves"] == 1


def test_write_survives_a_spill_under_pressure(make_pool):
    pool = make_pool(host_bytes="1M")
    first = pool.allocate(512 * KiB, label="first")
    with first.pin() as p:
        view = p.numpy(np.uint32)
        view[:] = np.arange(view.size, dtype=np.uint32) * 2654435761
        expected = view.copy()
        del view
    # More than the host tier has left: the pool must spill `first` to disk.
    second = pool.allocate(768 * KiB, label="second")
    assert first.tier == "disk" and second.tier == "host"
    assert pool.stats()["evictions"]["pressure"] >= 1
    with second.pin() as p:
        p.numpy()[:] = 0xEE
    with first.pin("host", "r") as p:  # back from disk, `second` goes down
        got = p.numpy(np.uint32)
        assert np.array_equal(got, expected)
        del got
    assert second.tier == "disk"
    with second.pin("host", "r") as p:
        assert read(p) == b"\xee" * second.nbytes


def test_read_only_pin_gives_read_only_views(pool):
    b = pool.allocate(4096)
    with b.pin() as p:
        p.numpy()[:] = 9
    with b.pin("host", "r") as p:
        a = np.asarray(p)
        assert not a.flags.writeable
        assert address_of(a) == p.address
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1
        v = memoryview(p)
        assert v.readonly
        with pytest.raises(TypeError):
            v[0] = 1
        assert not p.numpy().flags.writeable
        assert int(a[0]) == 9
        del a
        v.release()


def test_read_only_pin_refuses_a_writable_buffer_request(pool):
    b = pool.allocate(64)
    with b.pin() as w:
        with memoryview(w) as view:
            view[:] = bytes(64)
    with b.pin("host", "r") as p:
        # pack_into asks for a writable buffer (and turns the refusal into a TypeError).
        with pytest.raises(TypeError, match="read-write"):
            struct.pack_into("B", p, 0, 1)
        assert p.exports == 0
        assert read(p) == bytes(64)


def test_numpy_with_dtype_and_shape(pool):
    b = pool.allocate(64 * 4)
    with b.pin() as p:
        m = p.numpy(dtype=np.float32, shape=(8, 8))
        assert m.shape == (8, 8) and m.dtype == np.float32
        assert address_of(m) == p.address
        m[2, 3] = 1.5
        flat = p.numpy(np.float32)
        assert flat[2 * 8 + 3] == 1.5
        with pytest.raises(ValueError):
            p.numpy(dtype=np.float64, shape=(7,))
        del m, flat


def test_export_counts(pool):
    b = pool.allocate(1024)
    with b.pin() as p:
        assert p.exports == 0
        a = np.asarray(p)
        v = memoryview(p)
        assert p.exports == 2
        s = a[10:20]  # a slice keeps the same export
        del a
        assert p.exports == 2
        del s
        assert p.exports == 1
        v.release()
        assert p.exports == 0


def test_pattern_through_many_buffers(make_pool):
    # 4x the host tier: every buffer spills at least once and comes back intact.
    pool = make_pool(host_bytes="1M")
    buffers = [pool.allocate(128 * KiB, label=f"b{i}") for i in range(32)]
    for i, b in enumerate(buffers):
        with b.pin() as p:
            np.asarray(p)[:] = np.frombuffer(pattern(b.nbytes, i), dtype=np.uint8)
    for i, b in enumerate(buffers):
        with b.pin("host", "r") as p:
            assert read(p) == pattern(b.nbytes, i), f"buffer {i}"
    s = pool.stats()
    assert s["moves"]["host"]["disk"]["moves"] >= 24
    assert pool.check_invariants() == []


def test_simulated_device_tier_pins_are_host_memory(make_pool):
    pool = make_pool(device_bytes="1M", device_backend="simulated")
    assert pool.device_backend == "simulated"
    b = pool.allocate(4096, tier="device")
    assert b.tier == "device"
    with b.pin("device") as p:
        assert p.tier == "device"
        np.asarray(p)[:] = 5
    b.evict("host")
    with b.pin("host", "r") as p:
        assert read(p) == b"\x05" * 4096
    assert spillway.TIERS == ("device", "host", "disk")
