"""C++ exceptions as Python exceptions: types, messages and fields."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest

import spillway
from patterns import KiB, MiB


def test_hierarchy():
    assert issubclass(spillway.OutOfMemory, MemoryError)
    assert issubclass(spillway.IoError, OSError)
    assert issubclass(spillway.CorruptionError, RuntimeError)
    assert issubclass(spillway.ClosedError, ValueError)
    assert issubclass(spillway.ForkError, RuntimeError)
    for cls in (
        spillway.OutOfMemory,
        spillway.IoError,
        spillway.CorruptionError,
        spillway.ClosedError,
        spillway.ForkError,
    ):
        assert issubclass(cls, spillway.Error)


def test_allocation_larger_than_every_tier(make_pool):
    pool = make_pool(host_bytes="1M", disk_bytes=0)
    with pytest.raises(MemoryError) as info:
        pool.allocate("2M", label="huge")
    e = info.value
    assert isinstance(e, spillway.OutOfMemory)
    assert "out of memory" in str(e)
    assert e.tier == "host" and e.nbytes == 2 * MiB
    assert pool.stats()["errors"]["out_of_memory"] == 1


def test_room_held_by_a_pin_names_the_pin(make_pool):
    pool = make_pool(host_bytes="1M", disk_bytes=0, pressure_wait=0.05)
    holder = pool.allocate(768 * KiB, label="holder")
    with holder.pin():
        with pytest.raises(spillway.OutOfMemory) as info:
            pool.allocate(512 * KiB, label="late")
    e = info.value
    assert e.pinned_by_label.get("holder", 0) >= 768 * KiB
    assert "holder" in str(e)
    holder.free()
    pool.allocate(512 * KiB).free()  # the room is back

def test_pin_larger_than_the_host_tier(make_pool):
    pool = make_pool(host_bytes="1M")
    big = pool.allocate("2M", tier="disk", label="big")
    assert big.tier == "disk"
    with pytest.raises(spillway.OutOfMemory) as info:
        big.pin("host")
    assert info.value.tier == "host"
    assert big.tier == "disk"  # nothing lost: still there


def test_unwritable_paths_are_io_errors(tmp_path):
    missing = tmp_path / "missing" / "trace.json"
    with pytest.raises(OSError) as info:
        spillway.Pool(host_bytes="1M", trace_file=missing)
    e = info.value
    assert isinstance(e, spillway.IoError)
    assert e.errno == errno.ENOENT
    assert e.filename == str(missing)
    assert "trace file" in str(e)
    with pytest.raises(spillway.IoError) as info:
        spillway.Pool(host_bytes="1M", disk_dir=tmp_path / "no-such-dir")
    assert info.value.errno == errno.ENOENT


def _spill_file_descriptor(pool: spillway.Pool) -> int:
    """The pool's buffered descriptor of its (unlinked) spill file, found through /proc."""
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        fd = int(name)
        if target.startswith(pool.spill_directory) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            return fd
    pytest.skip("cannot find the spill file in /proc/self/fd")


def test_a_damaged_spill_record_is_a_corruption_error(make_pool):
    pool = make_pool(compression="none")
    b = pool.allocate(64 * KiB, label="victim")
    with b.pin() as p:
        with memoryview(p) as view:
            view[:] = b"\xab" * view.nbytes
    b.evict("disk")
    fd = _spill_file_descriptor(pool)
    os.pwrite(fd, b"\xcd" * os.fstat(fd).st_size, 0)  # overwrite the record, header and all
    with pytest.raises(RuntimeError) as info:
        b.pin("host", "r")
    e = info.value
    assert isinstance(e, spillway.CorruptionError)
    assert e.buffer_id == b.id
    assert "corrupt spill record" in str(e)
    assert e.expected_checksum != e.actual_checksum
    assert pool.stats()["errors"]["corruptions"] == 1
