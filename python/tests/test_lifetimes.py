"""Buffers and pins: arguments, use after free/close, context managers, views and release."""

from __future__ import annotations

import gc

import pytest

import spillway
from patterns import KiB, fill, read


def test_allocate_returns_a_buffer(pool):
    a = pool.allocate(4096, label="first")
    b = pool.allocate("64K")
    assert isinstance(a, spillway.Buffer)
    assert (a.nbytes, a.label, a.tier) == (4096, "first", "host")
    assert (b.nbytes, b.label) == (64 * KiB, "")
    assert a.id > 0 and b.id > 0 and a.id != b.id
    assert a.pool is pool
    assert not a.freed
    assert "first" in repr(a) and "on host" in repr(a)


def test_allocate_on_a_missing_tier_falls_to_the_next(pool):
    b = pool.allocate(4096, tier="device")  # this pool has no device tier
    assert b.tier == "host"


def test_allocate_on_disk_reads_as_zeros(pool):
    b = pool.allocate(8192, tier="disk")
    assert b.tier == "disk"
    with b.pin("host", "r") as p:
        assert read(p) == bytes(8192)


def test_zero_byte_buffer(pool):
    b = pool.allocate(0)
    with b.pin() as p:
        assert p.nbytes == 0
        assert p.address != 0
        with memoryview(p) as view:
            assert len(view) == 0


@pytest.mark.parametrize(
    "args, error, name",
    [
        ((-1,), ValueError, "nbytes"),
        ((1.5,), TypeError, "nbytes"),
        (("lots",), ValueError, "nbytes"),
        ((None,), TypeError, "nbytes"),
        ((10, "gpu"), ValueError, "tier"),
        ((10, 1), TypeError, "tier"),
        ((10, "host", 3), TypeError, "label"),
    ],
)
def test_allocate_bad_arguments(pool, args, error, name):
    with pytest.raises(error, match=name):
        pool.allocate(*args)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"tier": "disk"}, ValueError, "tier"),
        ({"tier": "gpu"}, ValueError, "tier"),
        ({"tier": None}, TypeError, "tier"),
        ({"access": "x"}, ValueError, "access"),
        ({"access": "w"}, ValueError, "access"),
        ({"access": 1}, TypeError, "access"),
    ],
)
def test_pin_bad_arguments(pool, kwargs, error, name):
    b = pool.allocate(16)
    with pytest.raises(error, match=name):
        b.pin(**kwargs)


def test_other_bad_arguments(pool):
    b = pool.allocate(16)
    with pytest.raises(ValueError, match="tier"):
        b.evict("device")
    with pytest.raises(ValueError, match="step"):
        b.hint_next_use(-1)
    with pytest.raises(ValueError, match="turned off"):
        b.pin("device")  # this pool has no device tier


def test_use_after_free(pool):
    b = pool.allocate(4096, label="gone")
    b.free()
    assert b.freed
    for use in (lambda: b.pin(), lambda: b.tier, lambda: b.evict(), lambda: b.prefetch()):
        with pytest.raises(spillway.ClosedError, match="'gone'.*freed"):
            use()
    b.free()  # idempotent
    assert (b.nbytes, b.label) == (4096, "gone")  # still answer
    assert pool.stats()["live_buffers"] == 0


def test_use_after_close(make_pool):
    pool = make_pool()
    b = pool.allocate(4096)
    p = b.pin()
    pool.close()
    assert pool.closed and b.freed and p.released
    with pytest.raises(spillway.ClosedError, match="closed"):
        pool.allocate(1)
    with pytest.raises(spillway.ClosedError, match="closed"):
        pool.stats()
    with pytest.raises(spillway.ClosedError, match="pool .* is closed"):
        b.pin()
    with pytest.raises(spillway.ClosedError, match="pool was closed"):
        memoryview(p)
    pool.close()  # idempotent
    assert isinstance(spillway.ClosedError("x"), ValueError)


def test_context_managers(make_pool):
    with make_pool() as pool:
        with pool.allocate(4096) as b:
            with b.pin() as p:
                fill(p, 1)
            assert p.released
            with pytest.raises(spillway.ClosedError, match="released"):
                p.address
        assert b.freed
    assert pool.closed


def test_free_ends_pins_without_views(pool):
    b = pool.allocate(4096)
    p = b.pin()
    b.free()
    assert p.released
    with pytest.raises(spillway.ClosedError, match="buffer was freed"):
        memoryview(p)
    p.release()  # idempotent


def test_release_while_a_view_lives_raises_then_works(pool):
    b = pool.allocate(4096)
    p = b.pin()
    view = memoryview(p)
    assert p.exports == 1
    with pytest.raises(BufferError, match="still exported"):
        p.release()
    with pytest.raises(BufferError, match="still exported"):
        b.free()
    with pytest.raises(BufferError, match="still exported"):
        pool.close()
    assert not p.released and not b.freed and not pool.closed
    view[0] = 42  # the bytes are still pinned: the view is valid
    view.release()
    assert p.exports == 0
    p.release()
    assert p.released
    assert pool.stats()["tiers"]["host"]["pinned_bytes"] == 0


def test_with_block_exit_with_a_live_view_raises(pool):
    b = pool.allocate(4096)
    with pytest.raises(BufferError):
        with b.pin() as p:
            view = memoryview(p)
    assert not p.released
    view.release()
    p.release()


def test_exception_in_a_with_block_is_not_masked(make_pool):
    pool = make_pool()
    b = pool.allocate(4096)
    with pytest.raises(KeyError):
        with pool:
            with b.pin() as p:
                view = memoryview(p)
                raise KeyError("the program's own error")
    # The view is alive, so the pin and the pool stayed open ...
    assert not p.released and not pool.closed
    view.release()
    # ... and end normally once it is gone.
    p.release()
    pool.close()


def test_a_view_keeps_its_pin_alive(pool):
    b = pool.allocate(4096)
    view = memoryview(b.pin())  # no other reference to the pin
    gc.collect()
    assert pool.stats()["tiers"]["host"]["pinned_bytes"] >= 4096
    view[:4] = b"abcd"
    del view  # the last reference: the pin ends
    gc.collect()
    assert pool.stats()["tiers"]["host"]["pinned_bytes"] == 0
    with b.pin("host", "r") as p:
        assert read(p)[:4] == b"abcd"


def test_a_pin_keeps_its_buffer_and_a_buffer_its_pool(make_pool):
    p = make_pool().allocate(4096, label="kept").pin()
    gc.collect()
    assert p.buffer.label == "kept"
    assert p.buffer.pool.stats()["live_buffers"] == 1
    p.release()


def test_collected_buffers_are_freed(pool):
    b = pool.allocate(4096)
    assert pool.stats()["live_buffers"] == 1
    del b
    gc.collect()
    assert pool.stats()["live_buffers"] == 0


def test_two_pins_of_one_buffer_share_the_bytes(pool):
    b = pool.allocate(4096)
    with b.pin() as p1, b.pin("host", "r") as p2:
        assert p1.address == p2.address
        data = fill(p1, 7)
        assert read(p2) == data
        assert bytes(p2) == data  # a copy, through the buffer protocol


def test_pin_repr_and_properties(pool):
    b = pool.allocate(4096, label="w")
    with b.pin("host", "r") as p:
        assert (p.nbytes, p.tier, p.access, p.readonly) == (4096, "host", "r", True)
        assert "label='w'" in repr(p) and "access='r'" in repr(p)
        assert p.buffer is b
    assert "released" in repr(p)
