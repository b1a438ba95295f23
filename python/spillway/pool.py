"""spillway.Pool: the tiered pool, configured by keyword."""

from __future__ import annotations

import atexit
import difflib
import os
import warnings
import weakref
from typing import Any, Dict, Optional, Union

from . import _spillway

__all__ = ["Pool", "Size"]

#: A byte count: an int, or a string such as "64M", "1.5G", "2 MiB" (binary multiples).
Size = Union[int, str]


def _check_keywords(keywords: Dict[str, Any]) -> None:
    known = _spillway.option_names()
    for name in keywords:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TypeError(f"spillway: Pool() got an unexpected keyword argument '{name}'{hint}")


# Pools of this process that may still be open, for _close_at_exit.
_open_pools: "weakref.WeakSet[Pool]" = weakref.WeakSet()


def _close_at_exit() -> None:
    """Closes the pools still open when the interpreter exits.

    Python does not promise to collect every object at exit, and a pool that
    is never destroyed writes neither its trace_file nor its metrics_file and
    leaves its (empty) spill directory behind. A pool with views still alive
    stays open (its memory must not go under them), but a trace started with
    start_trace() is written.
    """
    for pool in list(_open_pools):
        if pool.pid != os.getpid() or pool.closed:
            continue  # a forked child's copy of its parent's pool, or done already
        try:
            pool._close_at_exit()
        except Exception as error:  # noqa: BLE001 - report and go on with the others
            warnings.warn(f"spillway: closing {pool!r} at exit failed: {error}", RuntimeWarning)


atexit.register(_close_at_exit)


class Pool(_spillway.Pool):
    """A pool of buffers that live in device memory, host RAM or on disk.

    Buffers move between the tiers under pressure (device -> host -> disk)
    while the program holds :class:`~spillway.Buffer` handles and short-lived
    :class:`~spillway.Pin` leases. Sizes are ints or strings such as ``"64M"``
    or ``"2G"``.

    Args:
        device_bytes: capacity of the device tier; 0 (the default) turns it
            off, ``"auto"`` takes 80% of free VRAM with CUDA (256 MiB simulated
            in host memory without).
        host_bytes: capacity of the host tier; default a quarter of RAM; 0 off.
        disk_dir: parent of the pool's private spill directory; default
            ``$SPILLWAY_SPILL_DIR``, ``$TMPDIR`` or ``/var/tmp``.
        disk_bytes: quota of the disk tier; default unlimited; 0 turns it off.
        **more: any other PoolOptions field by its keyword (``pressure_wait``
            in seconds, ``compression``, ``policy``, ``io_threads``,
            ``trace_file``, ...; :func:`spillway.option_names` lists them and
            docs/python.md describes them). None leaves a field at its default.

    Raises:
        TypeError: an unknown keyword, or a value of the wrong type.
        ValueError: a value out of range, naming the keyword.
        spillway.IoError: the spill directory, trace_file or metrics_file
            cannot be created.

    A pool is a context manager: leaving the ``with`` block closes it.
    """

    def __init__(
        self,
        device_bytes: Optional[Size] = 0,
        host_bytes: Optional[Size] = None,
        disk_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        disk_bytes: Optional[Size] = None,
        **more: Any,
    ) -> None:
        _check_keywords(more)
        options: Dict[str, Any] = {
            "device_bytes": device_bytes,
            "host_bytes": host_bytes,
            "disk_dir": disk_dir,
            "disk_bytes": disk_bytes,
        }
        options.update(more)
        super().__init__(options)
        _open_pools.add(self)

    @classmethod
    def from_env(cls, **overrides: Any) -> "Pool":
        """A pool configured by the ``SPILLWAY_*`` environment variables.

        The same configuration a C++ program gets from
        ``PoolOptions::from_env()`` (and ``spillway info`` prints): the C++
        defaults (a 256 MiB simulated device tier without a GPU) under the
        variables, then ``overrides`` (the keywords of :class:`Pool`) on top.
        A variable that cannot be parsed raises ValueError naming it.
        """
        _check_keywords(overrides)
        pool = cls.__new__(cls)
        _spillway.Pool.__init__(pool, overrides, True)
        _open_pools.add(pool)
        return pool
