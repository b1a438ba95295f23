"""A thread that holds another thread's frames, as a sampling profiler does."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Iterator


@contextlib.contextmanager
def frames_held(thread_id: int) -> Iterator[None]:
    """While the block runs, another thread keeps taking the frames of thread
    `thread_id` (``sys._current_frames()``, walking ``f_back``) and holding
    them for a millisecond, as dask's worker profiler does every 10 ms.

    A frame held that way can keep the temporaries of a call that has
    returned alive (seen with CPython 3.11): code that must drop every view of
    a pin before releasing it cannot rely on temporaries going away.
    """
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            frame = sys._current_frames().get(thread_id)
            held = []
            while frame is not None:
                held.append(frame)
                frame = frame.f_back
            time.sleep(0.001)
            del held

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join(10)
