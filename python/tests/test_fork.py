"""A pool used in a forked child raises ForkError and leaves the parent's data alone."""

from __future__ import annotations

import gc
import json
import os

import pytest

import spillway
from patterns import KiB, fill, read

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")


def run_in_child(child) -> dict:
    """Forks; the child runs `child()` and reports its dict through a pipe.

    The child always leaves with os._exit, so it never returns into pytest.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            report = child()
            os.write(write_end, json.dumps(report).encode())
            status = 0
        except BaseException as e:  # noqa: BLE001 - anything, reported to the parent
            os.write(write_end, json.dumps({"child failed": repr(e)}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks) or b"{}")
    assert os.waitstatus_to_exitcode(status) == 0, report
    return report


def test_a_forked_child_cannot_use_the_parents_pool(make_pool):
    pool = make_pool(host_bytes="1M")
    spilled = pool.allocate(256 * KiB, label="spilled")
    with spilled.pin() as p:
        expected = fill(p, 3)
    spilled.evict("disk")
    resident = pool.allocate(4096, label="resident")
    pin = resident.pin()
    resident_bytes = fill(pin, 4)

    def child() -> dict:
        attempts = {
            "allocate": lambda: pool.allocate(16),
            "stats": pool.stats,
            "close": pool.close,
            "pin": lambda: spilled.pin("host", "r"),
            "tier": lambda: spilled.tier,
            "evict": lambda: resident.evict("disk"),
            "free": spilled.free,
            "memoryview": lambda: memoryview(pin),
            "address": lambda: pin.address,
            "release": pin.release,
            "dlpack": pin.__dlpack__,
        }
        outcome = {}
        for name, attempt in attempts.items():
            try:
                attempt()
                outcome[name] = "no error"
            except spillway.ForkError as e:
                outcome[name] = "ForkError" if f"process {os.getpid()}" in str(e) else str(e)
            except BaseException as e:  # noqa: BLE001
                outcome[name] = repr(e)
        # A new pool in the child works.
        with spillway.Pool(host_bytes="1M", disk_bytes=0) as own:
            with own.allocate(4096).pin() as p:
                outcome["own pool"] = fill(p, 9) == read(p)
        # Dropping the parent's objects here leaks them instead of touching the parent's storage.
        outcome["repr"] = repr(pool)
        return outcome

    report = run_in_child(child)
    own = report.pop("own pool")
    assert report.pop("repr").startswith(f"<spillway.Pool of process {os.getpid()}")
    assert report == {name: "ForkError" for name in report}, report
    assert own is True

    # The parent's pool is untouched: bytes on disk and in the pin intact.
    assert read(pin) == resident_bytes
    pin.release()
    with spilled.pin("host", "r") as p:
        assert read(p) == expected
    assert pool.check_invariants() == []
    assert pool.pid == os.getpid()


def test_collecting_the_parents_objects_in_a_child_is_harmless(make_pool):
    pool = make_pool(host_bytes="1M")
    b = pool.allocate(128 * KiB)
    with b.pin() as p:
        expected = fill(p, 5)
    b.evict("disk")
    pin = b.pin("host", "r")

    def child() -> dict:
        nonlocal pool, b, pin
        del pin, b, pool  # the last references in the child: destructors run here
        gc.collect()
        return {"ok": True}

    assert run_in_child(child) == {"ok": True}
    assert read(pin) == expected
    pin.release()
    b.evict("disk")
    with b.pin("host", "r") as p:
        assert read(p) == expected
