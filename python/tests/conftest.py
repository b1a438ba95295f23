"""Fixtures shared by the spillway Python tests.

The tests import the ``spillway`` that is first on sys.path: the build tree's
(ctest puts <build>/python on PYTHONPATH) or an installed one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

import spillway

def pytest_report_header(config) -> str:
    return f"spillway: {spillway.__file__}"


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator[Callable[..., spillway.Pool]]:
    """Makes pools that spill under tmp_path; closes those left open.

    Defaults: a 1 MiB host tier, an unlimited disk tier, a short pressure
    wait (so that tests of OutOfMemory are quick) and no proactive spilling
    (so that a buffer moves only when a test makes it).
    """
    pools: List[spillway.Pool] = []

    def make(**options: Any) -> spillway.Pool:
        settings: dict = {
            "host_bytes": "1M",
            "disk_dir": tmp_path,
            "pressure_wait": 0.1,
            "high_watermark": 1.0,
        }
        settings.update(options)
        pool = spillway.Pool(**settings)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        if not pool.closed and pool.pid == os.getpid():
            try:
                pool.close()
            except BufferError:
                pass  # a failed test's traceback keeps a view: the pool closes when collected


@pytest.fixture
def pool(make_pool: Callable[..., spillway.Pool]) -> spillway.Pool:
    """A pool with the make_pool defaults."""
    return make_pool()

