"""spillway.dask: a dask.distributed worker's data store in a spillway Pool.

    from dask.distributed import Client, LocalCluster
    from spillway.dask import SpillwayStore, worker_stats

    cluster = LocalCluster(n_workers=2, threads_per_worker=2,
                           data=(SpillwayStore, {"host_bytes": "256M", "disk_dir": "/var/tmp"}))
    client = Client(cluster)
    ...
    print(worker_stats(client))   # {worker address: {"store": {...}, "pool": {...}}}

Each worker builds one :class:`SpillwayStore`, which creates its own
:class:`spillway.Pool` from the keywords (every ``spillway.Pool`` keyword;
``disk_dir`` defaults to the worker's local directory) and keeps the worker's
task results in it: serialized with distributed's own serialization
(``serialize_bytelist`` / ``deserialize_bytes``, the same frames, and the
same compression setting, that a worker uses to spill with zict), copied
once into the pool's host tier and spilled to disk by the pool under its
budget.

The worker's memory monitor (``distributed.worker.memory.spill``) sees the
store's ``fast`` mapping (the live values, empty unless ``live_bytes`` is
set) and calls :meth:`SpillwayStore.evict` to move live values into the pool;
the pool's host tier is a fixed arena of ``host_bytes``, which evicting
could not shrink, so it is not offered to the monitor. ``spilled_total``
and ``get_metrics`` feed the worker's heartbeat (the dashboard's spilled
bytes) and its Prometheus metrics.

The pool is closed (its spill directory removed) when the store is closed,
and in any case when the worker's process exits: spillway closes the pools
still open at interpreter exit. With ``LocalCluster(processes=False)`` the
workers share the client's process, so call ``client.run(close_worker_store)``
before closing the cluster to free the pools at once.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Mapping, Optional, Union

import numpy
from distributed.protocol import deserialize_bytes, serialize_bytelist
from distributed.sizeof import safe_sizeof

from .codecs import Encoded, StoredBytes, as_byte_view
from .pool import Pool, Size
from .store import Store

try:
    from distributed.spill import SpilledSize
except ImportError:  # pragma: no cover - older distributed: a plain tuple does
    SpilledSize = None  # type: ignore[assignment,misc]

__all__ = ["DaskCodec", "SpillwayStore", "worker_stats", "close_worker_store"]


class DaskCodec:
    """distributed's serialization as a :class:`spillway.codecs.Codec`.

    ``serialize_bytelist`` gives the frames a worker would send or spill
    (numpy arrays as views of their memory, other objects pickled with
    out-of-band buffers, compressed per ``distributed.comm.compression``);
    the store copies them into the pool back to back, which is exactly the
    layout of ``serialize_bytes``. Reading copies them out into one
    bytearray, which ``deserialize_bytes`` then views (numpy arrays come back
    as writable views of it, without another copy).
    """

    def encode(self, value: Any) -> Encoded:
        frames = [as_byte_view(frame) for frame in serialize_bytelist(value)]
        return Encoded(None, frames, sum(frame.nbytes for frame in frames))

    def decode(self, meta: Any, stored: StoredBytes) -> Any:
        # numpy.empty, not bytearray(n): every byte is overwritten at once,
        # and bytearray zero-fills first (memset was 4% of a put/get profile
        # of 4 MiB arrays through a 64 MiB store).
        data = numpy.empty(stored.nbytes, dtype=numpy.uint8)
        stored.readinto(data)
        return deserialize_bytes(memoryview(data))


class _LiveValues(Mapping):  # type: ignore[type-arg]
    """The store's live values (read-only): what evict() can move."""

    def __init__(self, store: "SpillwayStore") -> None:
        self._store = store

    def __getitem__(self, key: Any) -> Any:
        return self._store._live_value(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._store._live_keys())

    def __len__(self) -> int:
        return len(self._store._live_keys())


class SpillwayStore(Store):
    """A dask.distributed worker's ``data=`` mapping, kept in its own spillway Pool.

    Pass the class and its keywords as a worker's ``data=`` (``Worker``,
    ``Nanny``, ``LocalCluster`` take it)::

        LocalCluster(data=(SpillwayStore, {"host_bytes": "256M", "disk_dir": d}))

    Args:
        worker_local_directory: filled in by the worker (distributed passes
            it to a ``data=`` class whose constructor has this argument); the
            default ``disk_dir``.
        live_bytes: bound on the weight (``distributed.sizeof``) of results
            kept as live objects; 0, the default, keeps every result only in
            the pool, serialized.
        chunk_bytes, label: as for :class:`spillway.Store`.
        keep_read_copies: as for :class:`spillway.Store`, but on by default:
            a task's result is not mutated by the tasks that read it (dask's
            rule), so a value read back and kept live drops to its pool copy
            again for free.
        **pool_options: the keywords of :class:`spillway.Pool`
            (``host_bytes``, ``disk_dir``, ``disk_bytes``, ``compression``,
            ``trace_file``, ...).
    """

    def __init__(
        self,
        worker_local_directory: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        live_bytes: Size = 0,
        chunk_bytes: Optional[Size] = None,
        label: str = "dask",
        keep_read_copies: bool = True,
        **pool_options: Any,
    ) -> None:
        if pool_options.get("disk_dir") is None and worker_local_directory is not None:
            pool_options["disk_dir"] = worker_local_directory
        pool = Pool(**pool_options)
        try:
            super().__init__(
                pool,
                live_bytes=live_bytes,
                codec=DaskCodec(),
                weight=safe_sizeof,
                chunk_bytes=chunk_bytes,
                label=label,
                close_pool=True,
                keep_read_copies=keep_read_copies,
            )
        except BaseException:
            pool.close()
            raise

    # ---- what the worker's memory manager uses (distributed.spill.ManualEvictProto) ----

    @property
    def fast(self) -> Mapping[Any, Any]:
        """The live values (read-only): what :meth:`evict` can move into the pool."""
        return _LiveValues(self)

    @property
    def spilled_total(self) -> Any:
        """(bytes of the values on disk now, bytes the spill files hold for them).

        The worker reports it in its heartbeat (the dashboard's "spilled"
        memory). The first number counts the bytes of the chunks whose
        primary copy is on disk (before compression; not the clean copies the
        pool keeps on disk of chunks that are also on the host); the second
        is what the pool's records take on disk, after compression.
        """
        if self.closed or self.pool.closed:
            memory, disk = 0, 0
        else:
            memory = self.tier_bytes()["disk"]
            disk = self.pool.stats()["disk_stored_bytes"]
        return SpilledSize(memory, disk) if SpilledSize is not None else (memory, disk)

    def get_metrics(self) -> Dict[str, float]:
        """The metrics that a worker exports to Prometheus for its data store.

        The keys of distributed's SpillBuffer.get_metrics: memory reads are
        gets answered by live values, disk reads and writes are the pool's
        moves between host and disk, pickle/unpickle times are the store's
        encode and decode times (decoding includes the copy out of the pool).
        """
        s = self.stats()
        pool: Dict[str, Any] = {} if self.pool.closed else self.pool.stats()
        moves = pool.get("moves", {})
        write = moves.get("host", {}).get("disk", {})
        read = moves.get("disk", {}).get("host", {})
        return {
            "memory_count": s["live_values"],
            "memory_bytes": s["live_bytes"],
            "disk_count": s["pool_values"],
            "disk_bytes": pool.get("disk_stored_bytes", 0),
            "memory_read_count_total": s["live_hits"],
            "memory_read_bytes_total": s["live_hit_bytes"],
            "disk_read_count_total": read.get("moves", 0),
            "disk_read_bytes_total": read.get("bytes", 0),
            "disk_read_time_total": read.get("seconds", 0.0),
            "disk_write_count_total": write.get("moves", 0),
            "disk_write_bytes_total": write.get("bytes", 0),
            "disk_write_time_total": write.get("seconds", 0.0),
            "pickle_time_total": s["encode_seconds"],
            "unpickle_time_total": s["decode_seconds"],
        }

    def spillway_stats(self) -> Dict[str, Any]:
        """{"store": self.stats(), "pool": self.pool.stats()} ("pool" is None once closed)."""
        pool = None if self.pool.closed else self.pool.stats()
        return {"store": self.stats(), "pool": pool}

    # ---- for _LiveValues -------------------------------------------------------------

    def _live_keys(self) -> list:
        with self._lock:
            return list(self._live)

    def _live_value(self, key: Any) -> Any:
        with self._lock:
            return self._live[key].value


def _stats_of_worker(dask_worker: Any) -> Optional[Dict[str, Any]]:
    data = dask_worker.data
    return data.spillway_stats() if isinstance(data, SpillwayStore) else None


def worker_stats(client: Any) -> Dict[str, Optional[Dict[str, Any]]]:
    """:meth:`SpillwayStore.spillway_stats` of every worker of `client`, by
    worker address (None for a worker whose data is not a SpillwayStore)."""
    return client.run(_stats_of_worker)


def close_worker_store(dask_worker: Any) -> bool:
    """Closes a worker's SpillwayStore and its pool; for ``client.run``.

    Returns whether there was one. The worker must be idle: its data is gone.
    """
    data = dask_worker.data
    if isinstance(data, SpillwayStore):
        data.close()
        return True
    return False
