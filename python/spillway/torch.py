"""spillway.torch: activations saved for backward kept in a spillway Pool.

    import spillway, spillway.torch

    pool = spillway.Pool(host_bytes="1G", disk_dir="/var/tmp")
    for batch in loader:
        with spillway.torch.offload(pool):
            loss = model(batch).sum()
        loss.backward()                # the saved activations come back from the pool
        optimizer.step()

Inside the ``with`` block, every tensor that autograd saves for the backward
pass goes through ``torch.autograd.graph.saved_tensors_hooks``: the pack
hook copies the tensor's bytes, as they lie in memory, into a new pool
buffer on the host tier (one copy into a "rw" pin; a view that is not dense
is made contiguous first) and keeps only the buffer, dtype, shape and
strides; the pool spills the buffer to disk when its host budget is full.
When backward needs the tensor, the unpack hook pins the buffer (read-only,
so a disk copy stays valid), copies the bytes into a new tensor with the
same dtype, shape and strides, and lets the pin go. The buffer is freed when
autograd drops the saved tensor, which it does right after the node that
used it ran (unless ``retain_graph=True``, when it stays for the next
backward). The values are the same bytes, so the gradients are
bit-identical to a run without the hooks.

Kept as they are (not copied): tensors smaller than ``min_bytes``, tensors
not on the CPU, non-strided (sparse, mkldnn) and quantized tensors, and
leaf tensors that require grad and views of them (parameters, and the
``weight.t()`` a linear layer saves: they are alive anyway, and copying
the weights of every layer on every step would double them).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from types import TracebackType
from typing import Any, Dict, Optional, Sequence, Tuple, Type

import torch

from .codecs import copy_bytes
from .pool import Pool, Size
from ._spillway import Buffer, parse_size

__all__ = ["offload", "Offload"]


def _dense_layout(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether a tensor of `shape` and `strides` covers exactly numel
    consecutive elements (some permutation of a contiguous tensor)."""
    dims = sorted((stride, size) for size, stride in zip(shape, strides) if size != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def _contiguous_strides(shape: Sequence[int]) -> Tuple[int, ...]:
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _memory_order_bytes(tensor: torch.Tensor, strides: Tuple[int, ...]) -> memoryview:
    """The bytes of `tensor` as laid out in memory with `strides` (its own
    strides when they are dense, else contiguous ones), as a byte view.

    Only tensor memory is viewed here (through numpy): the copy into the pin
    is a memoryview assignment, so nothing made from the pin's memory can
    outlive its ``with`` block (see spillway.codecs.copy_bytes).
    """
    data = tensor.detach().resolve_conj().resolve_neg()
    if tuple(data.stride()) != strides:
        data = data.contiguous()  # a view that does not cover a dense block
    flat = data.as_strided((data.numel(),), (1,), data.storage_offset())
    return memoryview(flat.view(torch.uint8).numpy())


def _is_parameter(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is a leaf that requires grad (a parameter), or a view
    of one (autograd saves ``weight.t()`` for a linear layer)."""
    base = tensor._base if tensor._base is not None else tensor
    return base.is_leaf and base.requires_grad


class _Saved:
    """A tensor saved for backward, whose bytes are in a pool buffer."""

    __slots__ = ("buffer", "dtype", "shape", "strides", "numel", "sequence", "__weakref__")

    def __init__(self, buffer: Buffer, tensor: torch.Tensor, strides: Tuple[int, ...], sequence: int) -> None:
        self.buffer = buffer
        self.dtype = tensor.dtype
        self.shape = tuple(tensor.shape)
        self.strides = strides
        self.numel = tensor.numel()
        self.sequence = sequence


class Offload:
    """A context manager that keeps the tensors saved for backward in `pool`.

    Use :func:`offload` to make one. While it is active, autograd's
    saved-tensor hooks copy each saved CPU tensor of at least `min_bytes`
    into a pool buffer (labelled `label`) and restore it for backward. On
    unpacking the i-th saved tensor, the buffers of the `prefetch` tensors
    saved just before it (which backward usually needs next) are asked to
    come back from disk in the background.

    The pool must stay open until the backward passes of the graphs built
    inside the block are done (or the graphs are dropped). One Offload may
    be entered again after it exits; its counters add up.
    """

    def __init__(
        self, pool: Pool, *, min_bytes: Size = 65536, label: str = "activations", prefetch: int = 2
    ) -> None:
        if not isinstance(pool, Pool):
            raise TypeError(f"spillway: offload(): pool must be a spillway.Pool, not {type(pool).__name__}")
        if "host" not in pool.tiers:
            raise ValueError(
                "spillway: offload(): the pool has no host tier, which saved tensors are copied through"
            )
        threshold = parse_size(min_bytes)
        if threshold is None:
            raise ValueError("spillway: offload(): min_bytes cannot be 'unlimited'")
        if not isinstance(label, str):
            raise TypeError(f"spillway: offload(): label must be a str, not {type(label).__name__}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"spillway: offload(): prefetch must be an int >= 0, got {prefetch!r}")
        self.pool = pool
        self.min_bytes = threshold
        self.label = label
        self.prefetch = prefetch
        self._hooks: Optional[Any] = None
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._saved: "weakref.WeakValueDictionary[int, _Saved]" = weakref.WeakValueDictionary()
        self._counters: Dict[str, int] = dict.fromkeys(
            ("packed_tensors", "packed_bytes", "kept_tensors", "kept_bytes", "unpacked_tensors",
             "unpacked_bytes"),
            0,
        )

    # ---- the hooks -------------------------------------------------------------------

    def _keep(self, tensor: torch.Tensor) -> bool:
        """Whether `tensor` stays as it is instead of going into the pool."""
        return (
            tensor.device.type != "cpu"
            or tensor.layout != torch.strided
            or tensor.is_quantized
            or _is_parameter(tensor)
            or tensor.numel() == 0
            or tensor.numel() * tensor.element_size() < self.min_bytes
        )

    def pack(self, tensor: torch.Tensor) -> Any:
        """The pack hook: `tensor`'s bytes into a pool buffer."""
        if self._keep(tensor):
            with self._lock:
                self._counters["kept_tensors"] += 1
                self._counters["kept_bytes"] += tensor.numel() * tensor.element_size()
            return tensor
        nbytes = tensor.numel() * tensor.element_size()
        strides = tuple(tensor.stride())
        if not _dense_layout(tensor.shape, strides):
            strides = _contiguous_strides(tensor.shape)  # a strided view: saved (and restored) contiguous
        source = _memory_order_bytes(tensor, strides)
        buffer = self.pool.allocate(nbytes, "host", self.label)
        with buffer.pin("host", "rw") as pin, memoryview(pin) as target:
            copy_bytes(target, source)
        saved = _Saved(buffer, tensor, strides, next(self._sequence))
        with self._lock:
            self._saved[saved.sequence] = saved
            self._counters["packed_tensors"] += 1
            self._counters["packed_bytes"] += nbytes
        return saved

    def unpack(self, saved: Any) -> torch.Tensor:
        """The unpack hook: a new tensor with the saved bytes, dtype, shape and strides."""
        if not isinstance(saved, _Saved):
            return saved
        self._prefetch_before(saved.sequence)
        out = torch.empty_strided(saved.shape, saved.strides, dtype=saved.dtype)
        # The pool buffer holds the elements in out's memory order (pack
        # wrote them through the same strides), so one byte copy restores
        # them. An "r" pin keeps the disk copy clean: if the buffer is evicted
        # again before autograd drops it, nothing is written.
        storage = out.as_strided((saved.numel,), (1,)).view(torch.uint8).numpy()
        with saved.buffer.pin("host", "r") as pin, memoryview(pin) as source:
            copy_bytes(memoryview(storage), source)
        with self._lock:
            self._counters["unpacked_tensors"] += 1
            self._counters["unpacked_bytes"] += saved.buffer.nbytes
        return out

    def _prefetch_before(self, sequence: int) -> None:
        for earlier in range(sequence - 1, max(sequence - 1 - self.prefetch, -1), -1):
            saved = self._saved.get(earlier)
            if saved is not None and not saved.buffer.freed and saved.buffer.tier == "disk":
                saved.buffer.prefetch("host")

    # ---- context manager ---------------------------------------------------------------

    def __enter__(self) -> "Offload":
        if self._hooks is not None:
            raise RuntimeError("spillway: offload(): this Offload is already active")
        hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        hooks.__enter__()
        self._hooks = hooks
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            hooks.__exit__(exc_type, exc, tb)

    # ---- statistics ----------------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """Counters since creation: ``packed_tensors``/``packed_bytes`` (copied
        into the pool), ``kept_tensors``/``kept_bytes`` (left as they were),
        ``unpacked_tensors``/``unpacked_bytes`` (restored for backward), and
        ``saved_tensors``: those whose buffers are still in the pool now."""
        with self._lock:
            result = dict(self._counters)
            result["saved_tensors"] = len(self._saved)
        return result


def offload(pool: Pool, *, min_bytes: Size = 65536, label: str = "activations", prefetch: int = 2) -> Offload:
    """Keeps the activations that autograd saves for backward in `pool`.

    ``with spillway.torch.offload(pool) as off:`` around the forward pass;
    backward may run inside or after the block. See :class:`Offload`.

    Args:
        pool: the pool (it needs a host tier; its disk tier takes what does
            not fit the host budget).
        min_bytes: saved tensors smaller than this stay as they are.
        label: the label of the pool buffers.
        prefetch: how many earlier-saved buffers to start fetching back from
            disk each time one is unpacked (0: none).
    """
    return Offload(pool, min_bytes=min_bytes, label=label, prefetch=prefetch)
