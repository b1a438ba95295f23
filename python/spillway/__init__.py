"""spillway: buffers in device memory, host RAM or on disk that spill under pressure.

    import numpy as np
    import spillway

    with spillway.Pool(host_bytes="256M", disk_dir="/var/tmp") as pool:
        buf = pool.allocate("64M", label="weights")
        with buf.pin("host", "rw") as pin:
            a = pin.numpy(np.float32)        # zero-copy view of the pinned bytes
            a[:] = 1.0
            del a                            # views must go before the pin does
        print(pool.stats()["tiers"]["host"]["used_bytes"])

See docs/python.md for the API, the lifetime rules of views, and the notes on
the GIL and on fork().
"""

from __future__ import annotations

from .errors import ClosedError, CorruptionError, Error, ForkError, IoError, OutOfMemory

try:
    from . import _spillway
except ImportError as error:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "spillway: cannot import the extension module spillway._spillway "
        f"({error}). Install the package with pip (see docs/python.md) or build "
        "it with CMake (SPILLWAY_PYTHON=ON) and put build/<preset>/python on PYTHONPATH."
    ) from error

from ._spillway import Buffer, Pin, TraceSpan, format_bytes, option_names, parse_size
from .pool import Pool, Size

__version__ = "0.1.0"

#: The tiers, fastest first.
TIERS = ("device", "host", "disk")

__all__ = [
    "Pool",
    "Buffer",
    "Pin",
    "TraceSpan",
    "Size",
    "TIERS",
    "parse_size",
    "format_bytes",
    "option_names",
    "Error",
    "OutOfMemory",
    "IoError",
    "CorruptionError",
    "ClosedError",
    "ForkError",
]

# The integrations (docs/python-integrations.md): spillway.Store here;
# spillway.dask and spillway.torch are imported by name, as they need those libraries.
from .store import Store  # noqa: E402

__all__ += ["Store"]
