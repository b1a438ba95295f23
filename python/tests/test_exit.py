"""Pools left open when the interpreter exits are closed (or at least their traces written)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def run_script(code: str) -> subprocess.CompletedProcess:
    # The child finds the same spillway through the inherited PYTHONPATH or install.
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_an_open_pool_is_closed_at_exit(tmp_path):
    done = run_script(
        f"""
        import spillway
        whole_life = spillway.Pool(host_bytes="1M", disk_dir={str(tmp_path)!r},
                                   trace_file={str(tmp_path / "life.json")!r})
        kept = whole_life.allocate("2M", label="kept")  # on disk: the spill file is in use
        started = spillway.Pool(host_bytes="1M", disk_dir={str(tmp_path)!r})
        started.start_trace({str(tmp_path / "started.json")!r})
        also_kept = started.allocate(4096)
        print(whole_life.spill_directory)
        """
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "life.json").read_text())["traceEvents"]
    assert json.loads((tmp_path / "started.json").read_text())["traceEvents"]
    spill_directory = done.stdout.strip()
    assert spill_directory.startswith(str(tmp_path))
    assert not list(tmp_path.glob("spillway-*"))  # the pool's private directory is gone


def test_views_alive_at_exit_keep_the_pool_open_but_the_trace_is_written(tmp_path):
    done = run_script(
        f"""
        import spillway
        pool = spillway.Pool(host_bytes="1M", disk_dir={str(tmp_path)!r})
        pool.start_trace({str(tmp_path / "started.json")!r})
        view = memoryview(pool.allocate(4096).pin())
        view[:] = bytes(4096)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((tmp_path / "started.json").read_text())["traceEvents"]
