"""spillway.torch.offload: saved activations in the pool, gradients bit-identical."""

from __future__ import annotations

import gc
from typing import Callable, List, Optional

import pytest

torch = pytest.importorskip("torch", reason="spillway.torch needs PyTorch (Debian: python3-torch)")

import spillway  # noqa: E402
import spillway.torch  # noqa: E402

from frame_sampler import frames_held  # noqa: E402
from patterns import MiB  # noqa: E402


def make_mlp(width: int = 1024, depth: int = 6) -> "torch.nn.Module":
    torch.manual_seed(0)
    layers: List[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


def gradients(
    model: "torch.nn.Module", batch: "torch.Tensor", offload: Optional[object] = None
) -> List["torch.Tensor"]:
    model.zero_grad()
    if offload is None:
        loss = model(batch).square().mean()
    else:
        with offload:
            loss = model(batch).square().mean()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_gradients_are_identical_with_activations_over_the_host_budget(
    make_pool: Callable[..., spillway.Pool],
) -> None:
    pool = make_pool(host_bytes="8M", pressure_wait=5.0, high_watermark=0.9)
    model = make_mlp()
    torch.manual_seed(1)
    batch = torch.randn(512, 1024)
    expected = gradients(model, batch)
    for step in range(2):
        off = spillway.torch.offload(pool)
        got = gradients(model, batch, off)
        for e, g in zip(expected, got):
            assert torch.equal(e, g), f"step {step}: a gradient differs"
        s = off.stats()
        assert s["packed_bytes"] > 3 * 8 * MiB  # the saved activations: over 3x the host tier
        assert s["unpacked_tensors"] == s["packed_tensors"] > 0
        assert s["saved_tensors"] == 0  # autograd dropped them during backward
    stats = pool.stats()
    assert stats["moves"]["host"]["disk"]["bytes"] > 0  # they spilled
    assert stats["moves"]["disk"]["host"]["bytes"] > 0  # and came back
    assert stats["live_buffers"] == 0  # and were freed
    assert stats["errors"]["out_of_memory"] == 0


def test_the_hooks_store_the_activations_in_the_pool(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="64M")
    model = make_mlp(width=256, depth=2)
    batch = torch.randn(256, 256)
    with spillway.torch.offload(pool, label="acts") as off:
        loss = model(batch).square().mean()
    packed = off.stats()["packed_tensors"]
    # Each layer saves its input and its ReLU output; the loss saves the output.
    assert packed == 5
    assert pool.stats()["live_buffers"] == packed
    assert pool.stats()["tiers"]["host"]["used_bytes"] == packed * 256 * 256 * 4
    loss.backward()
    assert pool.stats()["live_buffers"] == 0
    # Outside the block nothing is offloaded.
    model(batch).sum().backward()
    assert off.stats()["packed_tensors"] == packed


def test_parameters_and_small_tensors_are_kept(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="16M")
    off = spillway.torch.offload(pool, min_bytes="1K")
    weight = torch.nn.Parameter(torch.randn(64, 64))
    assert off.pack(weight) is weight
    view = weight.t()  # what a linear layer saves
    assert off.pack(view) is view
    small = torch.randn(8)
    assert off.pack(small) is small
    empty = torch.empty(0)
    assert off.pack(empty) is empty
    assert off.stats()["kept_tensors"] == 4
    assert off.stats()["kept_bytes"] == 2 * 64 * 64 * 4 + 8 * 4
    assert off.stats()["packed_tensors"] == 0
    assert pool.stats()["live_buffers"] == 0


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64],
)
def test_pack_unpack_round_trips_every_dtype(
    make_pool: Callable[..., spillway.Pool], dtype: "torch.dtype"
) -> None:
    pool = make_pool(host_bytes="16M")
    off = spillway.torch.offload(pool, min_bytes=0)
    torch.manual_seed(2)
    if dtype.is_complex:
        source = torch.randn(33, 17, dtype=dtype)
    else:
        source = (torch.randn(33, 17) * 50).to(dtype)
    saved = off.pack(source)
    assert saved is not source and pool.stats()["live_buffers"] == 1
    out = off.unpack(saved)
    assert out.dtype == dtype and out.shape == source.shape and out.stride() == source.stride()
    assert torch.equal(out, source)
    assert out.data_ptr() != source.data_ptr()


def test_strides_are_kept_and_strided_views_come_back_contiguous(
    make_pool: Callable[..., spillway.Pool],
) -> None:
    pool = make_pool(host_bytes="16M")
    off = spillway.torch.offload(pool, min_bytes=0)
    base = torch.arange(24 * 40, dtype=torch.float32).reshape(24, 40)
    transposed = base.t()  # dense, not contiguous: kept as it is laid out
    out = off.unpack(off.pack(transposed))
    assert out.stride() == transposed.stride() and torch.equal(out, transposed)
    permuted = base.reshape(2, 12, 40).permute(2, 0, 1)
    out = off.unpack(off.pack(permuted))
    assert out.stride() == permuted.stride() and torch.equal(out, permuted)
    sliced = base[::2, 3:30]  # not dense: saved contiguous
    out = off.unpack(off.pack(sliced))
    assert out.is_contiguous() and torch.equal(out, sliced)
    # A saved value is a copy: changing the source afterwards does not change it.
    source = torch.ones(100, 100)
    saved = off.pack(source)
    source.fill_(2)
    assert torch.equal(off.unpack(saved), torch.ones(100, 100))


def test_retain_graph_backward_twice(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="4M", pressure_wait=5.0)
    model = make_mlp(width=512, depth=3)
    batch = torch.randn(256, 512)
    expected = gradients(model, batch)
    model.zero_grad()
    with spillway.torch.offload(pool):
        loss = model(batch).square().mean()
    loss.backward(retain_graph=True)
    assert pool.stats()["live_buffers"] > 0  # kept for the second backward
    loss.backward()
    for e, p in zip(expected, model.parameters()):
        assert torch.equal(2 * e, p.grad)
    del loss
    gc.collect()
    assert pool.stats()["live_buffers"] == 0


def test_a_graph_dropped_without_backward_frees_its_buffers(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool(host_bytes="16M")
    model = make_mlp(width=256, depth=2)
    with spillway.torch.offload(pool):
        loss = model(torch.randn(128, 256)).sum()
    assert pool.stats()["live_buffers"] > 0
    del loss
    gc.collect()
    assert pool.stats()["live_buffers"] == 0


def test_offload_arguments(make_pool: Callable[..., spillway.Pool]) -> None:
    pool = make_pool()
    with pytest.raises(TypeError, match="pool"):
        spillway.torch.offload("pool")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_bytes"):
        spillway.torch.offload(pool, min_bytes="unlimited")
    with pytest.raises(ValueError, match="prefetch"):
        spillway.torch.offload(pool, prefetch=-1)
    off = spillway.torch.offload(pool)
    with off:
        with pytest.raises(RuntimeError, match="already active"):
            off.__enter__()
    with off:  # may be entered again once it has exited
        pass


def test_a_profiler_holding_frames_does_not_keep_pins_exported(
    make_pool: Callable[..., spillway.Pool],
) -> None:
    import threading

    pool = make_pool(host_bytes="16M", pressure_wait=5.0)
    off = spillway.torch.offload(pool, min_bytes=0)
    source = torch.randn(512, 1024)
    with frames_held(threading.get_ident()):
        for _ in range(40):
            out = off.unpack(off.pack(source.t()))
            assert torch.equal(out, source.t())
    assert pool.stats()["live_buffers"] == 0
