"""How a :class:`spillway.Store` turns values into bytes and back.

A codec splits a value into *frames*: contiguous byte buffers that the store
copies back to back into pool buffers (one copy per byte), plus a small
``meta`` object that stays in Python memory beside the key (a dtype and a
shape, frame lengths). Decoding gets the stored bytes as a
:class:`StoredBytes`, which copies them out of the pool once, into whatever
memory the codec chooses: a new numpy array of the right dtype and shape, a
bytearray that pickle's out-of-band buffers then view, a bytes object.

:class:`ValueCodec` is the store's default: bytes-like objects and numpy
arrays as their raw bytes, everything else with pickle protocol 5 and
out-of-band buffers. ``spillway.dask`` has a codec that uses
distributed's serialization instead.
"""

from __future__ import annotations

import pickle
from typing import Any, List, NamedTuple, Protocol, Sequence, Tuple, Union

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with the package's requirements
    np = None  # type: ignore[assignment]


__all__ = ["Encoded", "StoredBytes", "Codec", "ValueCodec", "as_byte_view", "copy_bytes", "frame_slices"]

#: Anything that exposes contiguous bytes through the buffer protocol.
BytesLike = Union[bytes, bytearray, memoryview, "np.ndarray"]


class Encoded(NamedTuple):
    """A value as the store keeps it.

    ``meta`` stays in Python memory beside the key and is handed back to
    :meth:`Codec.decode`; ``frames`` are 1-D byte views (format ``"B"``) that
    are copied back to back into the pool; ``nbytes`` is their total length.
    """

    meta: Any
    frames: Sequence[memoryview]
    nbytes: int


class StoredBytes(Protocol):
    """The stored bytes of one value, given to :meth:`Codec.decode`.

    Each method copies the bytes out of the pool exactly once.
    """

    @property
    def nbytes(self) -> int:
        """How many bytes are stored."""

    def readinto(self, destination: BytesLike) -> None:
        """Copies all the stored bytes into `destination` (writable, exactly ``nbytes`` long)."""

    def tobytes(self) -> bytes:
        """The stored bytes as a new bytes object."""


class Codec(Protocol):
    """Turns values into :class:`Encoded` frames and back."""

    def encode(self, value: Any) -> Encoded:
        """The frames of `value`. They may view `value`'s memory: the store
        copies them before encode's caller lets `value` go."""

    def decode(self, meta: Any, stored: StoredBytes) -> Any:
        """A new value equal to the one encoded, from `meta` and its stored bytes."""


def as_byte_view(data: Any) -> memoryview:
    """A 1-D, format ``"B"`` memoryview of a C-contiguous bytes-like object (no copy)."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    if view.format == "B" and view.ndim == 1:
        return view
    return view.cast("B")


def copy_bytes(destination: memoryview, source: memoryview) -> None:
    """Copies `source` into `destination` (equal lengths, both 1-D byte views).

    A memoryview slice assignment: one memcpy in C, with the GIL held, that
    makes no Python object from either side. That matters for a pin's view:
    its caller releases it with ``with memoryview(pin) as view:`` and then
    the pin, which raises BufferError if anything still exports its bytes.
    A numpy array made from the view (``np.frombuffer``) would export them
    for as long as it lives, and it can outlive the copy: a thread that holds
    this thread's frames (dask's sampling profiler walks
    ``sys._current_frames()`` every 10 ms) was seen keeping such temporaries
    alive past the end of the ``with`` block. numpy's copy would release the
    GIL; the memcpy here runs at the same speed, but other threads wait.
    """
    destination[:] = source


# ---- the default codec -----------------------------------------------------------------

_BYTES = "bytes"
_BYTEARRAY = "bytearray"
_MEMORYVIEW = "memoryview"
_NDARRAY = "ndarray"
_PICKLE = "pickle"


def _raw_array_ok(value: Any) -> bool:
    """Whether `value` is a plain numpy array whose bytes alone restore it."""
    return np is not None and type(value) is np.ndarray and not value.dtype.hasobject


def _array_bytes(array: "np.ndarray") -> Tuple[str, "np.ndarray"]:
    """The order ('C' or 'F') and a uint8 view of a contiguous array's bytes.

    A non-contiguous array is first copied into C order (the one case that
    costs a second copy).
    """
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        order, flat = "F", array.T.reshape(-1)
    else:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        order, flat = "C", array.reshape(-1)
    return order, flat.view(np.uint8)


class ValueCodec:
    """The store's default codec.

    - ``bytes``, ``bytearray``: their bytes; read back as the same type.
    - ``memoryview``: its bytes; read back as a memoryview of a new bytearray,
      with the original format and shape when ``memoryview.cast`` allows it.
    - ``numpy.ndarray`` (exactly that type, without Python objects in its
      dtype): its raw bytes, with dtype, shape and memory order kept in
      ``meta``; read back by copying straight into a new array of that dtype,
      shape and order. A non-contiguous array is made contiguous first.
    - anything else: ``pickle`` protocol 5 (or `protocol`) with out-of-band
      buffers, so that the large buffers inside an object (numpy arrays in a
      dict, a pandas frame's blocks) are copied once into the pool and, on the
      way back, become views of one bytearray instead of being copied again.
    """

    def __init__(self, protocol: int = 5) -> None:
        if not isinstance(protocol, int) or isinstance(protocol, bool):
            raise TypeError(f"spillway: ValueCodec(): protocol must be an int, not {type(protocol).__name__}")
        if not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(
                f"spillway: ValueCodec(): protocol must be between 0 and {pickle.HIGHEST_PROTOCOL}, "
                f"got {protocol}"
            )
        self.protocol = protocol

    def encode(self, value: Any) -> Encoded:
        kind = type(value)
        if kind is bytes or kind is bytearray:
            view = memoryview(value)
            return Encoded((_BYTES if kind is bytes else _BYTEARRAY,), (view,), view.nbytes)
        if kind is memoryview:
            if value.c_contiguous:
                return Encoded((_MEMORYVIEW, value.format, value.shape), (as_byte_view(value),), value.nbytes)
            data = memoryview(value.tobytes())
            return Encoded((_MEMORYVIEW, value.format, value.shape), (data,), data.nbytes)
        if _raw_array_ok(value):
            order, flat = _array_bytes(value)
            return Encoded((_NDARRAY, value.dtype, value.shape, order), (memoryview(flat),), flat.nbytes)
        return self._encode_pickle(value)

    def _encode_pickle(self, value: Any) -> Encoded:
        buffers: List[pickle.PickleBuffer] = []
        callback = buffers.append if self.protocol >= 5 else None
        inband = pickle.dumps(value, protocol=self.protocol, buffer_callback=callback)
        try:
            frames = [memoryview(inband)] + [b.raw() for b in buffers]
        except BufferError:
            # A non-contiguous out-of-band buffer: pickle everything in band.
            inband = pickle.dumps(value, protocol=self.protocol)
            frames = [memoryview(inband)]
        lengths = tuple(f.nbytes for f in frames)
        return Encoded((_PICKLE, lengths), frames, sum(lengths))

    def decode(self, meta: Any, stored: StoredBytes) -> Any:
        kind = meta[0]
        if kind == _BYTES:
            return stored.tobytes()
        if kind == _BYTEARRAY:
            out = bytearray(stored.nbytes)
            stored.readinto(out)
            return out
        if kind == _MEMORYVIEW:
            out = bytearray(stored.nbytes)
            stored.readinto(out)
            return _cast_view(memoryview(out), meta[1], meta[2])
        if kind == _NDARRAY:
            _, dtype, shape, order = meta
            array = np.empty(shape, dtype=dtype, order=order)
            flat = array.T.reshape(-1) if order == "F" else array.reshape(-1)
            stored.readinto(flat.view(np.uint8))
            return array
        if kind == _PICKLE:
            lengths = meta[1]
            data = bytearray(stored.nbytes)
            stored.readinto(data)
            view = memoryview(data)
            frames = []
            offset = 0
            for length in lengths:
                frames.append(view[offset : offset + length])
                offset += length
            return pickle.loads(frames[0], buffers=frames[1:])
        raise ValueError(f"spillway: ValueCodec.decode(): unknown kind {kind!r}")


def _cast_view(view: memoryview, fmt: str, shape: Tuple[int, ...]) -> memoryview:
    """`view` cast to `fmt` and `shape` when memoryview.cast can express them."""
    if fmt == "B" and len(shape) == 1:
        return view
    try:
        return view.cast(fmt, shape) if shape else view.cast(fmt)
    except (TypeError, ValueError):
        return view


def frame_slices(frames: Sequence[memoryview], start: int, stop: int) -> List[Tuple[int, memoryview]]:
    """The parts of `frames` (laid back to back) that fall in [start, stop),
    each with its offset from `start`."""
    parts: List[Tuple[int, memoryview]] = []
    offset = 0
    for frame in frames:
        end = offset + frame.nbytes
        if end > start and offset < stop:
            lo = max(start, offset)
            hi = min(stop, end)
            parts.append((lo - start, frame[lo - offset : hi - offset]))
        offset = end
        if offset >= stop:
            break
    return parts

