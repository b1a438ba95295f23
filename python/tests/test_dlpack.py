"""DLPack: numpy.from_dlpack and torch.from_dlpack see a pin's memory, and keep it pinned."""

from __future__ import annotations

import gc

import pytest

from patterns import KiB, read

np = pytest.importorskip("numpy", reason="numpy is not installed (Debian: python3-numpy)")


def test_dlpack_device_of_a_host_pin(pool):
    with pool.allocate(16).pin() as p:
        assert p.__dlpack_device__() == (1, 0)  # kDLCPU


def test_numpy_from_dlpack_shares_the_memory(pool):
    b = pool.allocate(4096)
    p = b.pin()
    a = np.from_dlpack(p)
    assert a.dtype == np.uint8 and a.shape == (4096,)
    assert a.__array_interface__["data"][0] == p.address
    assert p.exports == 1
    with memoryview(p) as view:  # numpy marks arrays from DLPack read-only; write beside it
        view[:] = b"\x5a" * 4096
    assert a[0] == 0x5A and a[-1] == 0x5A
    with pytest.raises(BufferError, match="still exported"):
        p.release()
    del a
    gc.collect()
    assert p.exports == 0
    p.release()


def test_an_unconsumed_capsule_releases_its_export(pool):
    with pool.allocate(64).pin() as p:
        capsule = p.__dlpack__()
        assert p.exports == 1
        del capsule
        assert p.exports == 0


def test_read_only_pin_has_no_dlpack(pool):
    with pool.allocate(64).pin("host", "r") as p:
        with pytest.raises(BufferError, match="read-only"):
            np.from_dlpack(p)
        assert p.exports == 0


def test_host_memory_takes_no_stream(pool):
    with pool.allocate(64).pin() as p:
        with pytest.raises(ValueError, match="stream"):
            p.__dlpack__(stream=5)
        capsule = p.__dlpack__(stream=None)
        del capsule


def test_dlpack_after_release_is_an_error(pool):
    import spillway

    p = pool.allocate(64).pin()
    p.release()
    with pytest.raises(spillway.ClosedError, match="released"):
        p.__dlpack__()
    with pytest.raises(spillway.ClosedError, match="released"):
        p.__dlpack_device__()


def test_torch_from_dlpack_shares_the_memory(pool):
    torch = pytest.importorskip("torch", reason="torch is not installed (Debian: python3-torch)")
    b = pool.allocate(64 * KiB, label="tensor")
    p = b.pin()
    t = torch.from_dlpack(p)
    assert t.dtype == torch.uint8 and tuple(t.shape) == (64 * KiB,)
    assert t.device.type == "cpu"
    assert t.data_ptr() == p.address
    t.fill_(0x33)
    assert read(p) == b"\x33" * (64 * KiB)
    with pytest.raises(BufferError):
        p.release()
    f = t.view(torch.float32)  # views of the tensor keep the export too
    del t
    gc.collect()
    assert p.exports == 1
    del f
    gc.collect()
    assert p.exports == 0
    p.release()
    # The bytes written through torch survive a spill round trip.
    b.evict("disk")
    with b.pin("host", "r") as again:
        assert read(again) == b"\x33" * (64 * KiB)


def test_torch_sees_a_device_pin_on_the_gpu(make_pool):
    torch = pytest.importorskip("torch", reason="torch is not installed (Debian: python3-torch)")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    pool = make_pool(device_bytes="16M", device_backend="cuda")
    if pool.device_backend != "cuda":
        pytest.skip("spillway was built without the CUDA backend")
    b = pool.allocate(1 << 20, tier="device")
    p = b.pin("device")
    assert p.__dlpack_device__() == (2, 0)
    t = torch.from_dlpack(p)
    assert t.is_cuda and t.data_ptr() == p.address
    t.fill_(7)
    torch.cuda.synchronize()
    with pytest.raises(BufferError):
        memoryview(p)  # device memory: no CPU view
    del t
    gc.collect()
    p.release()
    b.evict("host")
    with b.pin("host", "r") as h:
        assert read(h) == b"\x07" * (1 << 20)
