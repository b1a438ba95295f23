"""Tracing from Python: Perfetto/Chrome trace files with the pool's events and the program's spans."""

from __future__ import annotations

import json

import pytest

import spillway
from patterns import KiB, fill


def events(path) -> list:
    return json.loads(path.read_text())["traceEvents"]


def test_start_and_stop_trace(pool, tmp_path):
    path = tmp_path / "run.json"
    assert not pool.tracing
    pool.start_trace(path)
    assert pool.tracing
    b = pool.allocate(64 * KiB, label="traced")
    with pool.trace_span("step 1"):
        with b.pin() as p:
            fill(p, 1)
        b.evict("disk")
        with b.pin("host", "r"):
            pass
    result = pool.stop_trace()
    assert not pool.tracing
    assert result["path"] == str(path) and result["events"] > 0 and result["dropped"] == 0
    names = [e.get("name", "") for e in events(path)]
    assert "step 1" in names
    assert any("host->disk" in n for n in names)
    assert any("disk->host" in n for n in names)
    assert any(e.get("args", {}).get("label") == "traced" for e in events(path))


def test_trace_is_written_on_close(make_pool, tmp_path):
    path = tmp_path / "closed.json"
    pool = make_pool()
    pool.start_trace(str(path), max_events=10, keep="last")
    for _ in range(20):
        pool.allocate(4096).free()
    pool.close()
    assert events(path)


def test_trace_errors(pool, tmp_path):
    with pytest.raises(RuntimeError, match="no trace"):
        pool.stop_trace()
    with pytest.raises(spillway.IoError):
        pool.start_trace(tmp_path / "missing" / "t.json")
    pool.start_trace(tmp_path / "t.json")
    with pytest.raises(RuntimeError, match="already tracing"):
        pool.start_trace(tmp_path / "u.json")
    with pytest.raises(ValueError, match="keep"):
        pool.stop_trace() and pool.start_trace(tmp_path / "v.json", keep="middle")
    with pytest.raises(ValueError, match="max_events"):
        pool.start_trace(tmp_path / "v.json", max_events=0)


def test_trace_file_option_records_the_whole_life(tmp_path):
    path = tmp_path / "life.json"
    with spillway.Pool(host_bytes="1M", disk_dir=tmp_path, trace_file=path) as pool:
        with pytest.raises(RuntimeError, match="already tracing"):
            pool.start_trace(tmp_path / "other.json")
        with pool.trace_span("work"):
            pool.allocate(4096).free()
    assert "work" in [e.get("name") for e in events(path)]
