"""Byte patterns the tests write through pins and check after moves."""

from __future__ import annotations

import spillway

KiB = 1 << 10
MiB = 1 << 20


def pattern(nbytes: int, seed: int) -> bytes:
    """`nbytes` bytes that differ for every seed and along the buffer."""
    block = bytes((seed * 31 + i * 7 + i // 251) & 0xFF for i in range(4096))
    return (block * (nbytes // len(block) + 1))[:nbytes]


def fill(pin: spillway.Pin, seed: int) -> bytes:
    """Writes pattern(pin.nbytes, seed) through a memoryview and returns it."""
    data = pattern(pin.nbytes, seed)
    with memoryview(pin) as view:
        view[:] = data
    return data


def read(pin: spillway.Pin) -> bytes:
    """A copy of the pinned bytes."""
    with memoryview(pin) as view:
        return view.tobytes()
