"""Blocking calls release the GIL; other threads cannot free what a blocked call uses."""

from __future__ import annotations

import threading
import time

import pytest

import spillway
from patterns import KiB, fill, read


class Helper(threading.Thread):
    """Runs `action` after `delay` seconds, counting Python loop iterations until then.

    Both the count and the action need the GIL: if the main thread kept it
    while blocked inside spillway, neither could happen until that call ended.
    """

    def __init__(self, delay: float, action) -> None:
        super().__init__(daemon=True)
        self.delay = delay
        self.action = action
        self.started_counting = threading.Event()
        self.iterations = 0
        self.acted_at = float("inf")
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.started_counting.set()
            end = time.monotonic() + self.delay
            while time.monotonic() < end:
                self.iterations += 1
            self.acted_at = time.monotonic()
            self.action()
        except BaseException as e:  # reported by the test
            self.error = e


def test_a_pin_waiting_for_room_lets_another_thread_release_it(make_pool):
    # 1 MiB of host: `holder` (768 KiB, pinned by this test) leaves no room for
    # `waiter` (768 KiB, on disk). Pinning `waiter` waits for room; only the
    # helper thread's release of the holder's pin can make it, and the helper
    # needs the GIL for that. Without the GIL released, the pin would wait
    # out the full pressure_wait and raise OutOfMemory.
    pool = make_pool(host_bytes="1M", pressure_wait=20)
    holder = pool.allocate(768 * KiB, label="holder")
    holder_pin = holder.pin()
    fill(holder_pin, 1)
    waiter = pool.allocate(768 * KiB, tier="disk", label="waiter")
    assert waiter.tier == "disk"

    helper = Helper(0.3, holder_pin.release)
    helper.start()
    helper.started_counting.wait()
    start = time.monotonic()
    with waiter.pin("host") as p:  # blocks until the helper releases the holder
        returned_at = time.monotonic()
        assert p.tier == "host"
    helper.join()
    assert helper.error is None
    assert returned_at > helper.acted_at  # it waited for the release ...
    assert returned_at - start < 10  # ... not for the pressure wait (20 s)
    assert helper.iterations > 1000
    assert holder.tier == "disk"  # evicted to make the room
    assert pool.stats()["pin_waits"] >= 1


def test_an_allocation_waiting_for_room_releases_the_gil(make_pool):
    pool = make_pool(host_bytes="1M", disk_bytes=0, pressure_wait=20)
    holder = pool.allocate(768 * KiB, label="holder")
    holder_pin = holder.pin()

    def release_and_free() -> None:
        holder_pin.release()
        holder.free()

    helper = Helper(0.3, release_and_free)
    helper.start()
    helper.started_counting.wait()
    start = time.monotonic()
    b = pool.allocate(512 * KiB, label="late")  # no disk tier: waits for the free
    returned_at = time.monotonic()
    helper.join()
    assert helper.error is None
    assert b.tier == "host"
    assert returned_at > helper.acted_at
    assert returned_at - start < 10
    assert helper.iterations > 1000


def test_no_free_or_close_under_a_blocked_call(make_pool):
    pool = make_pool(host_bytes="1M", pressure_wait=20)
    holder = pool.allocate(768 * KiB, label="holder")
    holder_pin = holder.pin()
    waiter = pool.allocate(768 * KiB, tier="disk", label="waiter")
    refusals = []

    def interfere() -> None:
        for action in (waiter.free, pool.close):
            try:
                action()
            except RuntimeError as e:
                refusals.append(str(e))
        holder_pin.release()

    helper = Helper(0.2, interfere)
    helper.start()
    with waiter.pin("host"):
        pass
    helper.join()
    assert helper.error is None
    assert len(refusals) == 2, refusals
    assert "another thread" in refusals[0] and "other threads" in refusals[1]
    assert not waiter.freed and not pool.closed


def test_threads_pin_their_own_buffers_concurrently(make_pool):
    pool = make_pool(host_bytes="2M")
    buffers = [pool.allocate(64 * KiB, label=f"t{i}") for i in range(64)]
    errors = []

    def work(offset: int) -> None:
        try:
            for round_ in range(5):
                for i in range(offset, len(buffers), 4):
                    with buffers[i].pin() as p:
                        expected = fill(p, i * 10 + round_)
                    with buffers[i].pin("host", "r") as p:
                        if read(p) != expected:
                            errors.append(f"buffer {i} round {round_}")
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pool.stats()["moves"]["host"]["disk"]["moves"] > 0  # 4 MiB through 2 MiB: it spilled
    assert pool.check_invariants() == []


@pytest.mark.parametrize("wait", [0.0, 0.05])
def test_out_of_memory_after_the_pressure_wait(make_pool, wait):
    pool = make_pool(host_bytes="1M", disk_bytes=0, pressure_wait=wait)
    holder = pool.allocate(768 * KiB)
    with holder.pin():
        start = time.monotonic()
        with pytest.raises(spillway.OutOfMemory):
            pool.allocate(512 * KiB)
        assert time.monotonic() - start >= wait * 0.9
