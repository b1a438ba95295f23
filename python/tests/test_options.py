"""Pool options: sizes, every keyword, errors that name the keyword, from_env."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

import spillway
from patterns import KiB, MiB


@pytest.mark.parametrize(
    "text, expected",
    [
        (4096, 4096),
        ("4096", 4096),
        ("64K", 64 * KiB),
        ("64KiB", 64 * KiB),
        ("64M", 64 * MiB),
        ("2G", 2 << 30),
        ("1.5K", 1536),
        ("2 MiB", 2 * MiB),
        ("unlimited", None),
    ],
)
def test_parse_size(text, expected):
    assert spillway.parse_size(text) == expected


@pytest.mark.parametrize(
    "bad, error",
    [
        ("12Q", ValueError),
        ("", ValueError),
        ("K", ValueError),
        (-1, ValueError),
        (1.5, TypeError),
        (True, TypeError),
    ],
)
def test_parse_size_rejects(bad, error):
    with pytest.raises(error, match="size"):
        spillway.parse_size(bad)


def test_sizes_as_strings_and_ints_reach_the_tiers(make_pool):
    pool = make_pool(host_bytes="2M", disk_bytes=8 * MiB)
    tiers = pool.stats()["tiers"]
    assert tiers["host"]["capacity_bytes"] == 2 * MiB
    assert tiers["disk"]["capacity_bytes"] == 8 * MiB
    assert not tiers["device"]["enabled"]
    assert pool.tiers == ("host", "disk")
    assert pool.options["host_bytes"] == 2 * MiB
    assert pool.options["disk_bytes"] == 8 * MiB


def test_defaults(tmp_path):
    with spillway.Pool(disk_dir=tmp_path) as pool:
        o = pool.options
        assert o["device_bytes"] == 0 and pool.tiers == ("host", "disk")
        assert o["disk_bytes"] == "unlimited"
        assert pool.stats()["tiers"]["disk"]["capacity_bytes"] is None
        assert o["pressure_wait"] == 2.0 and o["policy"] == "lru"
        assert pool.spill_directory.startswith(str(tmp_path))


# Every keyword with a value that is not its default, and what pool.options
# reads back. Each is applied to a pool of its own.
NON_DEFAULTS = [
    ("device_bytes", "4M", 4 * MiB),
    ("device_backend", "simulated", "simulated"),
    ("cuda_device", 1, 1),
    ("staging_buffer_bytes", "2M", 2 * MiB),
    ("staging_buffers", 3, 3),
    ("host_bytes", "3M", 3 * MiB),
    ("host_pinned", False, False),
    ("disk", False, False),
    ("disk_bytes", "5M", 5 * MiB),
    ("compression", "lz4", "lz4"),
    ("disk_io", "buffered", "buffered"),
    ("tail_slack_bytes", "1M", MiB),
    ("policy", "lookahead", "lookahead"),
    ("io_threads", 3, 3),
    ("high_watermark", 0.8, 0.8),
    ("low_watermark", 0.5, 0.5),
    ("pressure_wait", datetime.timedelta(milliseconds=250), 0.25),
    ("io_timeout", 30, 30.0),
    ("metrics_interval", 0.5, 0.5),
    ("trace_max_events", 1000, 1000),
    ("trace_keep_last", True, True),
    ("live_stats", True, True),
    ("live_stats_interval", 0.25, 0.25),
    ("deterministic_moves", True, True),
]


@pytest.mark.parametrize("name, value, expected", NON_DEFAULTS, ids=[n for n, _, _ in NON_DEFAULTS])
def test_every_keyword_reaches_its_field(make_pool, name, value, expected):
    extra = {"device_backend": "simulated"} if name in ("device_bytes", "cuda_device") else {}
    pool = make_pool(**{name: value}, **extra)
    assert pool.options[name] == expected


def test_the_keyword_list_is_complete():
    tested = {n for n, _, _ in NON_DEFAULTS} | {"disk_dir", "metrics_file", "trace_file", "record_file"}
    assert tested == set(spillway.option_names())


def test_path_keywords_take_effect(tmp_path):
    metrics = tmp_path / "pool.prom"
    trace = tmp_path / "trace.json"
    spill_parent = tmp_path / "spill"
    spill_parent.mkdir()
    record = tmp_path / "pool.swlog"
    options = {"disk_dir": spill_parent, "metrics_file": metrics, "trace_file": str(trace), "record_file": record}
    with spillway.Pool(host_bytes="1M", **options) as pool:
        assert pool.options["disk_dir"] == str(spill_parent)
        assert pool.spill_directory.startswith(str(spill_parent))
        assert pool.tracing
        pool.allocate(4096).free()
    assert "spillway_pins_total" in metrics.read_text()
    assert json.loads(trace.read_text())["traceEvents"]
    assert record.read_bytes().startswith(b"SPWYALOG")


def test_live_stats_publishes_a_segment(make_pool):
    segment = Path(f"/dev/shm/spillway.{os.getuid()}.{os.getpid()}")
    pool = make_pool(live_stats=True)
    assert segment.exists()
    pool.close()
    assert not segment.exists()


def test_disk_bytes_zero_turns_the_disk_tier_off(make_pool):
    pool = make_pool(disk_bytes=0)
    assert pool.tiers == ("host",)
    assert pool.spill_directory is None
    assert pool.options["disk"] is False


def test_options_round_trip(make_pool):
    pool = make_pool(host_bytes="3M", policy="lookahead", compression="none", pressure_wait=0.3)
    again = make_pool(**pool.options)
    assert again.options == pool.options


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'hots_bytes'.*did you mean 'host_bytes'"):
        spillway.Pool(hots_bytes="1M")
    with pytest.raises(TypeError, match="'colour'"):
        spillway.Pool.from_env(colour="blue")


@pytest.mark.parametrize(
    "options, error, name",
    [
        ({"host_bytes": "12Q"}, ValueError, "host_bytes"),
        ({"host_bytes": -1}, ValueError, "host_bytes"),
        ({"host_bytes": 1.5}, TypeError, "host_bytes"),
        ({"host_bytes": "unlimited"}, ValueError, "host_bytes"),
        ({"disk_bytes": [1]}, TypeError, "disk_bytes"),
        ({"policy": "mru"}, ValueError, "policy"),
        ({"compression": 4}, TypeError, "compression"),
        ({"io_threads": 0}, ValueError, "io_threads"),
        ({"io_threads": "2"}, TypeError, "io_threads"),
        ({"high_watermark": 1.5}, ValueError, "high_watermark"),
        ({"low_watermark": True}, TypeError, "low_watermark"),
        ({"pressure_wait": -1}, ValueError, "pressure_wait"),
        ({"pressure_wait": "2s"}, TypeError, "pressure_wait"),
        ({"staging_buffers": 1}, ValueError, "staging_buffers"),
        ({"staging_buffer_bytes": "1.5M"}, ValueError, "staging_buffer_bytes"),
        ({"host_pinned": 1}, TypeError, "host_pinned"),
        ({"disk_dir": 3}, TypeError, "disk_dir"),
        ({"disk": True, "disk_bytes": 0}, ValueError, "disk_bytes"),
    ],
)
def test_bad_values_name_the_keyword(tmp_path, options, error, name):
    with pytest.raises(error, match=name) as info:
        spillway.Pool(disk_dir=tmp_path, **options)
    assert "device." not in str(info.value)  # the keyword, not the C++ field


def test_every_tier_off_is_a_value_error():
    with pytest.raises(ValueError, match="every tier is turned off"):
        spillway.Pool(host_bytes=0, disk_bytes=0)


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SPILLWAY_HOST_BYTES", "3M")
    monkeypatch.setenv("SPILLWAY_POLICY", "lookahead")
    monkeypatch.setenv("SPILLWAY_DISK_DIR", str(tmp_path))
    monkeypatch.setenv("SPILLWAY_PRESSURE_WAIT_MS", "1500")
    with spillway.Pool.from_env() as pool:
        assert isinstance(pool, spillway.Pool)
        assert pool.options["host_bytes"] == 3 * MiB
        assert pool.options["policy"] == "lookahead"
        assert pool.options["pressure_wait"] == 1.5
        assert pool.spill_directory.startswith(str(tmp_path))
    with spillway.Pool.from_env(host_bytes="5M", device_bytes=0) as pool:
        assert pool.options["host_bytes"] == 5 * MiB  # the keyword over the variable
        assert pool.options["policy"] == "lookahead"
        assert "device" not in pool.tiers


def test_from_env_names_a_bad_variable(monkeypatch):
    monkeypatch.setenv("SPILLWAY_HOST_BYTES", "12Q")
    with pytest.raises(ValueError, match="SPILLWAY_HOST_BYTES"):
        spillway.Pool.from_env()
