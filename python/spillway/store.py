"""spillway.Store: a dict-like mapping whose values live in a spillway Pool.

    import numpy as np
    import spillway

    with spillway.Pool(host_bytes="256M", disk_dir="/var/tmp") as pool:
        store = spillway.Store(pool, live_bytes="32M")
        store["a"] = np.arange(10_000_000)      # copied into the pool; spills to disk under pressure
        store[("b", 1)] = {"any": "picklable object"}
        total = store["a"].sum()                # copied back out into a new array

How it works
------------
Every key has one entry. An entry is either *live* -- the value object
itself, held in an LRU of live objects whose total weight stays within
``live_bytes`` (as zict's Buffer keeps its ``fast`` mapping) -- or *pooled*:
the value encoded by the store's codec (see spillway.codecs) and copied into
pool buffers on the host tier, from which the pool spills it to disk under
its own budget. Putting a value that fits the live bound makes it live and
pushes the least recently used live values into the pool; a larger one (and
every value when ``live_bytes`` is 0, the default) goes straight into the
pool. Reading a pooled value decodes a new object from the pool's bytes and,
when it fits the live bound, makes it live again and frees its pool buffers.
So a value is in exactly one place, and the memory the store uses is at most
``live_bytes`` of live objects plus what the pool holds on its host tier.

Copies: a value goes into the pool with one copy (a "rw" pin per chunk, the
frames copied in back to back) and comes out with one copy (an "r" pin per
chunk, copied into the new object's memory: a numpy array of the right dtype
and shape, or a bytearray that pickle's out-of-band buffers then view).
The copies are memoryview slice assignments, and the only objects ever made
from pinned memory are memoryviews released explicitly by ``with`` (see
spillway.codecs.copy_bytes), so a pin ends with its copy even while another
thread holds this thread's frames. Nothing handed to the caller points into the pool, so a value read from the
store stays valid after it is deleted, replaced or spilled, and after the
pool is closed; and a reader never keeps a buffer pinned (unspillable) for
longer than its copy. Live values are handed out as they are, without any
copy: like a dict, the store returns the object that was put.

Values are split into chunks of at most ``chunk_bytes`` (by default a
quarter of the pool's host capacity, at most 64 MiB), so a value larger than
the host tier can still be stored: only one chunk at a time needs room there.

Threads: every method is thread-safe. One lock guards the mapping; the copies
in and out of the pool run outside it (and release the GIL), so several
threads move values at once. A value being read while another thread deletes
or replaces its key is freed when the read is done.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Tuple

from .codecs import Codec, Encoded, ValueCodec, as_byte_view, copy_bytes, frame_slices
from .errors import ClosedError
from .pool import Pool, Size

from ._spillway import Buffer, parse_size

__all__ = ["Store", "default_weight"]

logger = logging.getLogger("spillway.store")

# The largest default chunk, and the smallest chunk allowed.
_MAX_DEFAULT_CHUNK = 64 << 20
_MIN_CHUNK = 4096

# Entry states.
_LIVE = 0  # the value object is in the live LRU
_POOLED = 1  # the encoded value is in pool buffers
_EVICTING = 2  # a live value being copied into the pool (still readable as an object)


def default_weight(value: Any) -> int:
    """The weight of a live value: its ``nbytes`` when it has one (numpy
    arrays, memoryviews), the length of a bytes-like object, else
    ``sys.getsizeof`` (which does not follow references: pass ``weight=`` to
    :class:`Store` for containers of large objects)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return sys.getsizeof(value)


class _Entry:
    """What the store knows about one key. Guarded by the store's lock."""

    __slots__ = ("state", "value", "weight", "meta", "buffers", "nbytes", "busy", "doomed")

    def __init__(self, state: int) -> None:
        self.state = state
        self.value: Any = None  # the object (live, evicting)
        self.weight = 0  # its weight (live, evicting)
        self.meta: Any = None  # the codec's meta (pooled)
        self.buffers: List[Buffer] = []  # the chunks (pooled)
        self.nbytes = 0  # encoded size (pooled)
        self.busy = 0  # threads copying out of (or evicting) the buffers
        self.doomed = False  # removed from the store; free when not busy


class _Chunks:
    """The stored bytes of one pooled value (spillway.codecs.StoredBytes)."""

    __slots__ = ("_buffers", "nbytes")

    def __init__(self, buffers: List[Buffer], nbytes: int) -> None:
        self._buffers = buffers
        self.nbytes = nbytes

    def readinto(self, destination: Any) -> None:
        target = as_byte_view(destination)
        if target.nbytes != self.nbytes:
            raise ValueError(
                f"spillway: StoredBytes.readinto(): destination has {target.nbytes} bytes, "
                f"the value {self.nbytes}"
            )
        offset = 0
        for buffer in self._buffers:
            with buffer.pin("host", "r") as pin, memoryview(pin) as source:
                copy_bytes(target[offset : offset + source.nbytes], source)
                offset += source.nbytes

    def tobytes(self) -> bytes:
        if not self._buffers:
            return b""
        if len(self._buffers) == 1:
            with self._buffers[0].pin("host", "r") as pin, memoryview(pin) as source:
                return source.tobytes()
        data = bytearray(self.nbytes)
        self.readinto(data)
        return bytes(data)


class Store(MutableMapping):  # type: ignore[type-arg]
    """A mutable mapping whose values live in a :class:`spillway.Pool`.

    Args:
        pool: the pool that holds the values; it needs a host tier. The store
            does not close it unless `close_pool` is true.
        live_bytes: bound on the total weight of the values also kept as live
            Python objects (an int or a size string such as ``"64M"``); 0, the
            default, keeps none: every value is only in the pool.
        codec: turns values into bytes and back (spillway.codecs); default
            :class:`spillway.codecs.ValueCodec` (bytes-like objects and numpy
            arrays as raw bytes, everything else pickled, protocol 5).
        weight: the weight of a value for the live bound; default
            :func:`default_weight`.
        chunk_bytes: the largest pool buffer one value is split into; default
            a quarter of the pool's host capacity, at most 64 MiB.
        label: the label of the store's pool buffers (in stats, traces and
            OutOfMemory messages).
        close_pool: close the pool when the store is closed.
        keep_read_copies: when a value read from the pool is made live (a
            get with ``live_bytes`` to spare), keep its pool copy too, so
            that pushing it out of the live bound later costs nothing (no
            encode, no write). Only for values nobody mutates after a get
            (dask's task results): a change made to the live object would be
            lost when the store falls back to the pool copy. Default False.

    Keys are any hashable objects. ``len``, iteration (over a snapshot of the
    keys), ``in``, ``del`` (which frees the value's pool buffers at once) and
    every other MutableMapping method work as for a dict. The store is a
    context manager; :meth:`close` frees every value.
    """

    def __init__(
        self,
        pool: Pool,
        *,
        live_bytes: Size = 0,
        codec: Optional[Codec] = None,
        weight: Optional[Callable[[Any], int]] = None,
        chunk_bytes: Optional[Size] = None,
        label: str = "store",
        close_pool: bool = False,
        keep_read_copies: bool = False,
    ) -> None:
        if not isinstance(pool, Pool):
            raise TypeError(f"spillway: Store(): pool must be a spillway.Pool, not {type(pool).__name__}")
        if "host" not in pool.tiers:
            raise ValueError(
                "spillway: Store(): the pool has no host tier, which the store copies values through"
            )
        if not isinstance(label, str):
            raise TypeError(f"spillway: Store(): label must be a str, not {type(label).__name__}")
        live_limit = parse_size(live_bytes)
        if live_limit is None:
            raise ValueError("spillway: Store(): live_bytes cannot be 'unlimited'")
        host_capacity = pool.stats()["tiers"]["host"]["capacity_bytes"]
        if chunk_bytes is None:
            chunk = _MAX_DEFAULT_CHUNK
            if host_capacity is not None:
                chunk = max(_MIN_CHUNK, min(chunk, host_capacity // 4))
        else:
            chunk = parse_size(chunk_bytes)
            if chunk is None or chunk < _MIN_CHUNK:
                raise ValueError(
                    f"spillway: Store(): chunk_bytes must be at least {_MIN_CHUNK}, got {chunk_bytes!r}"
                )
            if host_capacity is not None and chunk > host_capacity:
                raise ValueError(
                    f"spillway: Store(): chunk_bytes ({chunk}) is larger than the pool's host tier "
                    f"({host_capacity})"
                )
        self._pool = pool
        self._codec: Codec = codec if codec is not None else ValueCodec()
        self._weight = weight if weight is not None else default_weight
        self._live_limit = live_limit
        self._chunk = chunk
        self._label = label
        self._close_pool = close_pool
        self._keep_read_copies = bool(keep_read_copies)

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when _busy drops to 0
        self._entries: "OrderedDict[Hashable, _Entry]" = OrderedDict()  # least recently used first
        self._live: "OrderedDict[Hashable, _Entry]" = OrderedDict()  # live entries, least recently used first
        self._live_total = 0
        self._pool_total = 0
        self._pool_values = 0
        self._busy = 0  # copies in flight outside the lock
        self._closed = False
        self._counters: Dict[str, float] = dict.fromkeys(
            (
                "puts",
                "gets",
                "live_hits",
                "live_hit_bytes",
                "pool_reads",
                "pool_writes",
                "bytes_written",
                "bytes_read",
                "evictions",
                "clean_evictions",
                "promotions",
                "encode_seconds",
                "decode_seconds",
            ),
            0,
        )

    # ---- properties ---------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        """The pool that holds the values."""
        return self._pool

    @property
    def live_limit(self) -> int:
        """The bound on the weight of live values, in bytes (the ``live_bytes`` argument)."""
        return self._live_limit

    @property
    def chunk_bytes(self) -> int:
        """The largest pool buffer one value is split into."""
        return self._chunk

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ---- the mapping --------------------------------------------------------------------

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            self._check_open("Store[key]")
            entry = self._entries[key]
            self._entries.move_to_end(key)
            self._counters["gets"] += 1
            if entry.state != _POOLED:
                if entry.state == _LIVE:
                    self._live.move_to_end(key)
                self._counters["live_hits"] += 1
                self._counters["live_hit_bytes"] += entry.weight
                return entry.value
            entry.busy += 1
            self._busy += 1
        value: Any = None
        decoded = False
        victims: List[Tuple[Hashable, _Entry]] = []
        try:
            start = time.perf_counter()
            value = self._codec.decode(entry.meta, _Chunks(entry.buffers, entry.nbytes))
            elapsed = time.perf_counter() - start
            decoded = True
        finally:
            with self._lock:
                try:
                    entry.busy -= 1
                    if entry.doomed:
                        if entry.busy == 0:
                            self._free_buffers(entry)
                    elif decoded:
                        self._counters["pool_reads"] += 1
                        self._counters["bytes_read"] += entry.nbytes
                        self._counters["decode_seconds"] += elapsed
                        victims = self._promote(key, entry, value)
                finally:
                    self._done(1)
        self._evict_quietly(victims)
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        if self._live_limit > 0:
            weight = self._weight(value)
            if weight <= self._live_limit:
                with self._lock:
                    self._check_open("Store[key] = value")
                    self._counters["puts"] += 1
                    self._remove(key)
                    entry = _Entry(_LIVE)
                    entry.value = value
                    entry.weight = weight
                    self._entries[key] = entry
                    self._live[key] = entry
                    self._live_total += weight
                    victims = self._pick_victims()
                self._evict_quietly(victims)
                return
        with self._lock:
            self._check_open("Store[key] = value")
            self._busy += 1
        buffers: List[Buffer] = []
        try:
            encoded, seconds = self._encode(value)
            buffers = self._write(encoded)
        except BaseException:
            with self._lock:
                self._done(1)
            raise
        with self._lock:
            self._done(1)
            if not self._closed:
                self._counters["puts"] += 1
                self._remove(key)
                self._entries[key] = self._pooled_entry(encoded, buffers, seconds)
                return
        for buffer in buffers:
            buffer.free()
        raise ClosedError(
            "spillway: Store[key] = value: the store was closed while the value was being copied in"
        )

    def __delitem__(self, key: Hashable) -> None:
        with self._lock:
            self._check_open("del Store[key]")
            if key not in self._entries:
                raise KeyError(key)
            self._remove(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[Hashable]:
        """Iterates over a snapshot of the keys, least recently used first."""
        with self._lock:
            keys = list(self._entries)
        return iter(keys)

    def clear(self) -> None:
        """Removes every value (freeing its pool buffers)."""
        with self._lock:
            self._check_open("Store.clear()")
            for key in list(self._entries):
                self._remove(key)

    # ---- spilling -----------------------------------------------------------------------

    def evict(self) -> int:
        """Moves the least recently used live value into the pool.

        Returns its weight, or -1 when no value is live or the copy failed
        (the value then stays live and the error is logged). Never raises:
        the contract of distributed's ``ManualEvictProto``, which a dask
        worker's memory monitor calls. Spilling pool bytes to disk is the
        pool's own business (its budget and watermarks).
        """
        try:
            with self._lock:
                if self._closed or not self._live:
                    return -1
                key, entry = self._live.popitem(last=False)
                self._live_total -= entry.weight
                if entry.buffers:
                    weight = entry.weight
                    self._drop_live_copy(entry)
                    return weight
                entry.state = _EVICTING
                self._busy += 1
            weight = entry.weight
            self._evict_to_pool([(key, entry)])
            return weight
        except Exception:  # noqa: BLE001 - the contract: log, return -1
            logger.exception("spillway: Store.evict() failed; the value stays live")
            return -1

    # ---- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Frees every value; later reads and writes raise spillway.ClosedError.

        Waits for copies that other threads have in flight, then closes the
        pool if the store was made with ``close_pool=True``. Idempotent. A
        closed store is empty (``len`` 0, ``in`` false).
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                for key in list(self._entries):
                    self._remove(key)
            while self._busy > 0:
                self._idle.wait()
        if self._close_pool and not self._pool.closed:
            self._pool.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- statistics ---------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """A consistent snapshot of the store's contents and traffic.

        ``values`` (keys stored), ``live_values`` and ``live_bytes`` (values
        kept as objects and their weight; values being evicted count here
        until their copy is done), ``pool_values`` and ``pool_bytes`` (values
        in the pool and their encoded bytes, wherever the pool keeps them),
        ``live_limit``, ``chunk_bytes``; counters since creation: ``puts``,
        ``gets``, ``live_hits`` and ``live_hit_bytes`` (gets answered by a
        live object, and their weight),
        ``pool_reads`` and ``bytes_read`` (gets decoded from the pool),
        ``pool_writes`` and ``bytes_written`` (values copied into the pool),
        ``evictions`` (live values moved into the pool), ``clean_evictions``
        (live values dropped for the pool copy they kept, with
        ``keep_read_copies``), ``promotions`` (pooled values made live
        again; with ``keep_read_copies`` they count in ``pool_values`` too),
        ``encode_seconds``,
        ``decode_seconds`` (serialization plus the copy). Where the pool's
        bytes are (host or disk) and what it moved: ``store.pool.stats()``.
        """
        with self._lock:
            result: Dict[str, Any] = {
                "values": len(self._entries),
                "live_values": sum(1 for e in self._entries.values() if e.state != _POOLED),
                "live_bytes": self._live_total + sum(
                    e.weight for e in self._entries.values() if e.state == _EVICTING
                ),
                "pool_values": self._pool_values,
                "pool_bytes": self._pool_total,
                "live_limit": self._live_limit,
                "chunk_bytes": self._chunk,
                "closed": self._closed,
            }
            for name, count in self._counters.items():
                result[name] = count if name.endswith("_seconds") else int(count)
            return result

    def tier_bytes(self) -> Dict[str, int]:
        """Where the pooled values' bytes are now: {"host": n, "disk": n}.

        Counts each chunk's bytes (before the pool's compression) on the tier
        that holds its primary copy. Asks every chunk, so it takes time in
        proportion to the number of values.
        """
        with self._lock:
            buffers = [b for e in self._entries.values() if e.state == _POOLED for b in e.buffers]
        result = {"host": 0, "disk": 0}
        for buffer in buffers:
            try:
                tier = buffer.tier
            except ClosedError:
                continue  # freed since the snapshot
            result[tier] = result.get(tier, 0) + buffer.nbytes
        return result

    def __repr__(self) -> str:
        if self._closed:
            return "<spillway.Store (closed)>"
        s = self.stats()
        return (
            f"<spillway.Store {s['values']} values: {s['live_values']} live ({s['live_bytes']} B), "
            f"{s['pool_values']} in the pool ({s['pool_bytes']} B)>"
        )

    # ---- internals ----------------------------------------------------------------------

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise ClosedError(f"spillway: {call}: the store is closed")

    def _done(self, count: int) -> None:
        """Ends `count` copies in flight; wakes close() when none is left. Under the lock."""
        self._busy -= count
        if self._busy == 0:
            self._idle.notify_all()

    def _encode(self, value: Any) -> Tuple[Encoded, float]:
        start = time.perf_counter()
        encoded = self._codec.encode(value)
        return encoded, time.perf_counter() - start

    def _write(self, encoded: Encoded) -> List[Buffer]:
        """Copies the encoded frames into new pool buffers of at most chunk_bytes each."""
        frames = [as_byte_view(frame) for frame in encoded.frames]
        total = sum(frame.nbytes for frame in frames)
        if total != encoded.nbytes:
            raise ValueError(
                f"spillway: Store: the codec's frames hold {total} bytes, its nbytes says {encoded.nbytes}"
            )
        buffers: List[Buffer] = []
        try:
            for start in range(0, total, self._chunk):
                stop = min(start + self._chunk, total)
                buffer = self._pool.allocate(stop - start, "host", self._label)
                buffers.append(buffer)
                with buffer.pin("host", "rw") as pin, memoryview(pin) as target:
                    for offset, part in frame_slices(frames, start, stop):
                        # A slice of a pin's view is released explicitly, as the view is.
                        with target[offset : offset + part.nbytes] as piece:
                            copy_bytes(piece, part)
        except BaseException:
            for buffer in buffers:
                try:
                    buffer.free()
                except (BufferError, RuntimeError):
                    # A view of the pin is still referenced from the
                    # traceback being raised: the buffer goes when the
                    # traceback does. Never hide the original error.
                    pass
            raise
        return buffers

    def _pooled_entry(self, encoded: Encoded, buffers: List[Buffer], seconds: float) -> _Entry:
        """A pooled entry, counted. Under the lock."""
        entry = _Entry(_POOLED)
        self._set_pooled(entry, encoded, buffers, seconds)
        return entry

    def _set_pooled(self, entry: _Entry, encoded: Encoded, buffers: List[Buffer], seconds: float) -> None:
        entry.state = _POOLED
        entry.meta = encoded.meta
        entry.buffers = buffers
        entry.nbytes = encoded.nbytes
        entry.value = None
        entry.weight = 0
        self._pool_total += encoded.nbytes
        self._pool_values += 1
        self._counters["pool_writes"] += 1
        self._counters["bytes_written"] += encoded.nbytes
        self._counters["encode_seconds"] += seconds

    def _remove(self, key: Hashable) -> None:
        """Drops key's entry, if any, freeing what it holds (later if busy). Under the lock."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        if entry.state == _LIVE:
            del self._live[key]
            self._live_total -= entry.weight
            entry.value = None
            if entry.buffers:  # a read copy kept in the pool
                self._pool_total -= entry.nbytes
                self._pool_values -= 1
                entry.doomed = True
                if entry.busy == 0:
                    self._free_buffers(entry)
        elif entry.state == _EVICTING:
            entry.doomed = True  # the evicting thread frees what it wrote
        else:
            self._pool_total -= entry.nbytes
            self._pool_values -= 1
            entry.doomed = True
            if entry.busy == 0:
                self._free_buffers(entry)

    @staticmethod
    def _free_buffers(entry: _Entry) -> None:
        buffers, entry.buffers = entry.buffers, []
        entry.meta = None
        for buffer in buffers:
            buffer.free()

    def _promote(self, key: Hashable, entry: _Entry, value: Any) -> List[Tuple[Hashable, _Entry]]:
        """Makes a just-read pooled value live if it fits; returns the live
        values to push into the pool to make room. Under the lock."""
        if self._live_limit == 0 or entry.busy > 0 or self._closed:
            return []
        weight = self._weight(value)
        if weight > self._live_limit:
            return []
        if not self._keep_read_copies:
            self._pool_total -= entry.nbytes
            self._pool_values -= 1
            self._free_buffers(entry)
            entry.nbytes = 0
        entry.state = _LIVE
        entry.value = value
        entry.weight = weight
        self._live[key] = entry
        self._live_total += weight
        self._counters["promotions"] += 1
        return self._pick_victims()

    def _pick_victims(self) -> List[Tuple[Hashable, _Entry]]:
        """Takes the least recently used live values out of the live LRU
        until the rest fit the bound, marking them as being evicted. Under the lock."""
        victims: List[Tuple[Hashable, _Entry]] = []
        while self._live_total > self._live_limit and self._live:
            key, entry = self._live.popitem(last=False)
            self._live_total -= entry.weight
            if entry.buffers:
                self._drop_live_copy(entry)  # its pool copy is still there
                continue
            entry.state = _EVICTING
            victims.append((key, entry))
        self._busy += len(victims)
        return victims

    def _drop_live_copy(self, entry: _Entry) -> None:
        """A live value that kept its pool copy (keep_read_copies) goes back to
        being pooled only: no encode, no write. Under the lock, out of _live."""
        entry.state = _POOLED
        entry.value = None
        entry.weight = 0
        self._counters["clean_evictions"] += 1

    def _evict_quietly(self, victims: List[Tuple[Hashable, _Entry]]) -> None:
        """_evict_to_pool for a put or get that made room: a value that cannot
        be copied into the pool stays live, over the bound, and the error is
        logged rather than raised from an operation on another key (as
        distributed's SpillBuffer does)."""
        if not victims:
            return
        try:
            self._evict_to_pool(victims)
        except Exception:  # noqa: BLE001 - logged; the values stay live
            logger.exception("spillway: Store: a live value could not be moved into the pool; it stays live")

    def _evict_to_pool(self, victims: List[Tuple[Hashable, _Entry]]) -> None:
        """Copies evicting values into the pool (each victim counts in _busy).

        A value whose copy fails goes back into the live LRU (as the least
        recently used) and the first error is raised after the others are done.
        """
        error: Optional[BaseException] = None
        for key, entry in victims:
            try:
                encoded, seconds = self._encode(entry.value)
                buffers = self._write(encoded)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                with self._lock:
                    if not entry.doomed and not self._closed:
                        entry.state = _LIVE
                        self._live[key] = entry
                        self._live.move_to_end(key, last=False)
                        self._live_total += entry.weight
                    self._done(1)
                error = error or exc
                continue
            with self._lock:
                if entry.doomed or self._closed:
                    orphans = buffers
                else:
                    orphans = []
                    self._set_pooled(entry, encoded, buffers, seconds)
                    self._counters["evictions"] += 1
                self._done(1)
            for buffer in orphans:
                buffer.free()
        if error is not None:
            raise error
