"""The exceptions spillway raises.

Every class derives from :class:`spillway.Error` and from the builtin that a
caller who has never heard of spillway would catch::

    Error                                   base of everything below
    ├── OutOfMemory      (MemoryError)      no room could be made on a tier in time
    ├── IoError          (OSError)          a spill file read or write failed
    ├── CorruptionError  (RuntimeError)     a record read back from disk failed its checks
    ├── ClosedError      (ValueError)       use of a closed Pool, freed Buffer or released Pin
    └── ForkError        (RuntimeError)     a Pool used in a process forked from its creator

The first three come from the C++ library (``spillway/errors.hpp``) with its
message unchanged and its fields copied onto the exception. Releasing a pin
(or freeing a buffer, closing a pool) while views of its bytes are still
exported raises the builtin :class:`BufferError`; bad arguments raise
:class:`TypeError` or :class:`ValueError` naming the argument.
"""

from __future__ import annotations

import types
from typing import Mapping, Optional

__all__ = [
    "Error",
    "OutOfMemory",
    "IoError",
    "CorruptionError",
    "ClosedError",
    "ForkError",
]


class Error(Exception):
    """Base class of the exceptions that spillway defines."""


class OutOfMemory(Error, MemoryError):
    """No room could be made for a request within the pool's pressure wait.

    Raised by ``Pool.allocate`` when no enabled tier at or below the
    preferred one can hold the buffer, and by ``Buffer.pin`` when the room on
    the asked tier stays held by other pins for longer than ``pressure_wait``.
    The message names what was pinned.
    """

    #: The tier that had no room: "device", "host" or "disk".
    tier: Optional[str] = None
    #: The bytes asked for.
    nbytes: int = 0
    #: Bytes pinned on the tier, by buffer label ("" for unlabelled buffers).
    pinned_by_label: Mapping[str, int] = types.MappingProxyType({})


class IoError(Error, OSError):
    """A spill file operation failed.

    ``errno`` and ``filename`` are set as for any :class:`OSError`;
    ``offset`` and ``operation`` say where in the file and what was being done.
    """

    #: Offset in the spill file.
    offset: int = 0
    #: What failed, e.g. "pwrite", "pread", "open".
    operation: str = ""


class CorruptionError(Error, RuntimeError):
    """A spill record read back from disk does not match what was written.

    spillway never returns wrong bytes: a record whose header or checksum
    fails is reported with this exception instead.
    """

    #: The buffer whose record failed.
    buffer_id: int = 0
    #: The record's offset in the spill file.
    record_offset: int = 0
    #: The checksum (or header field) that was expected, and the one found.
    expected_checksum: int = 0
    actual_checksum: int = 0


class ClosedError(Error, ValueError):
    """An operation on a closed Pool, a freed Buffer or a released Pin.

    A :class:`ValueError`, as for a closed file or a released memoryview.
    """


class ForkError(Error, RuntimeError):
    """A Pool, or one of its buffers or pins, was used in a forked child.

    A pool's spill files, IO threads and locks belong to the process that
    created it; a child made by ``os.fork`` shares the spill file descriptors
    with its parent, so touching them could corrupt the parent's data. Create
    a new Pool in the child instead.
    """
