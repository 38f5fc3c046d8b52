"""Block keys, the SQLite latency table, and incremental builds on a fake timer (no real timing)."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from lut_helpers import TINY_SPACE, FakeBlockMeasure, other_machine, tiny_network

from edgevision.lut import (
    BlockLatency,
    LatencyTable,
    LutError,
    MeasurementSetting,
    OtherMachineError,
    block_key,
    build,
    distinct_blocks,
    resolve_networks,
)
from edgevision.resolve import resolve

SETTING = MeasurementSetting(runtime="ort", threads=2)


# ---- keys ------------------------------------------------------------------------------------------
def test_same_block_in_two_networks_has_one_key():
    one = resolve(tiny_network("one", split_stages=False))
    two = resolve(tiny_network("two", split_stages=True))
    # the second inverted residual sits at stages.0.1 in one network and stages.1.0 in the other
    assert one.blocks[2].path == "stages.0.1" and two.blocks[2].path == "stages.1.0"
    assert block_key(one.blocks[2], SETTING) == block_key(two.blocks[2], SETTING)
    assert distinct_blocks([one, two], SETTING).keys() == {block_key(b, SETTING) for b in one}


def test_key_changes_with_what_decides_latency():
    block = resolve(tiny_network("n", split_stages=False)).blocks[1]
    keys = {
        block_key(block, setting)
        for setting in (
            SETTING,
            MeasurementSetting(runtime="eager", threads=2),
            MeasurementSetting(runtime="ort", threads=1),
            MeasurementSetting(runtime="ort", threads=2, batch=8),
            MeasurementSetting(runtime="ort", threads=2, model_form="train"),
        )
    }
    assert len(keys) == 5
    wider = resolve(tiny_network("n", split_stages=False), input_size=32).blocks[1]  # same spec, other H x W
    assert block_key(wider, SETTING) != block_key(block, SETTING)
    data = json.loads(block_key(block, SETTING))
    assert data["version"] == 1 and data["block"]["input_size"] == [8, 8] and "path" not in json.dumps(data)


def test_key_is_stable_across_processes():
    block = resolve(tiny_network("n", split_stages=False)).blocks[1]
    code = (
        "import sys; sys.path.insert(0, 'tests'); from lut_helpers import tiny_network; "
        "from edgevision.lut import block_key, MeasurementSetting; from edgevision.resolve import resolve; "
        "print(block_key(resolve(tiny_network('x', False)).blocks[1], MeasurementSetting(runtime='ort', threads=2)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert output == block_key(block, SETTING)


# ---- table -----------------------------------------------------------------------------------------
def test_table_roundtrip_and_header(tmp_path):
    path = tmp_path / "lut.sqlite"
    key = block_key(resolve(tiny_network("n", False)).blocks[0], SETTING)
    with LatencyTable(path) as table:
        table.put(key, BlockLatency(median_ms=1.5, ci_low_ms=1.4, ci_high_ms=1.6, runs=30))
        table.check_runtime_versions("ort", {"onnxruntime": "1.0"})
    with LatencyTable(path) as table:
        assert len(table) == 1 and key in table
        assert table.get(key).median_ms == 1.5 and table.get(key).runs == 30 and not table.get(key).noisy
        assert table.header["format_version"] == 1 and table.header["runtime_versions"] == {"ort": {"onnxruntime": "1.0"}}
        with pytest.raises(LutError, match="onnxruntime 2.0"):
            table.check_runtime_versions("ort", {"onnxruntime": "2.0"})
        with pytest.raises(LutError, match="finite non-negative"):
            table.put(key, BlockLatency(median_ms=math.nan))


def test_table_from_another_machine_needs_an_override(tmp_path):
    path = tmp_path / "elsewhere.sqlite"
    key = block_key(resolve(tiny_network("n", False)).blocks[0], SETTING)
    with LatencyTable(path, machine=other_machine()) as table:
        table.put(key, BlockLatency(median_ms=2.0))
    with pytest.raises(OtherMachineError, match="Some Other CPU.*allow_other_machine=True"):
        LatencyTable(path)
    with LatencyTable(path, allow_other_machine=True) as table:
        assert table.get(key).median_ms == 2.0 and table.fingerprint == "0123456789ab"


def test_not_a_table_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(LutError, match="is not a latency table"):
        LatencyTable(path)


# ---- build -----------------------------------------------------------------------------------------
def test_build_measures_each_distinct_block_once_and_is_incremental(tmp_path):
    path = tmp_path / "lut.sqlite"
    networks = [tiny_network("one", False), tiny_network("two", True)]
    fake = FakeBlockMeasure()
    report = build(networks, "ort", 2, path, measure_block=fake)
    # stem, two inverted residuals, head: shared by both networks
    assert (report.networks, report.distinct_blocks, report.measured, fake.calls) == (2, 4, 4, 4)
    again = build(networks, "ort", 2, path, measure_block=fake)
    assert (again.measured, again.already_present, fake.calls) == (0, 4, 4)
    other_threads = build(networks, "ort", 1, path, measure_block=fake)
    assert other_threads.measured == 4 and fake.calls == 8


def test_interrupted_build_keeps_what_it_measured(tmp_path):
    path = tmp_path / "lut.sqlite"
    interrupted = FakeBlockMeasure(interrupt_at=6)
    with pytest.raises(KeyboardInterrupt):
        build(TINY_SPACE, "ort", 2, path, count=6, measure_block=interrupted)
    with LatencyTable(path) as table:
        assert len(table) == 5  # blocks 1-5 were committed before the Ctrl-C
    resumed = FakeBlockMeasure()
    report = build(TINY_SPACE, "ort", 2, path, count=6, measure_block=resumed)
    assert report.already_present == 5 and resumed.calls == report.distinct_blocks - 5


def test_build_with_the_real_protocol_on_a_fake_clock(tmp_path, monkeypatch):
    import contextlib

    import edgevision.latency.contention as contention

    # the fake clock makes every call 1 ms whatever the machine does, so the contention watch (real /proc,
    # a real reference network) has nothing to say here; under pytest-xdist it would see the other worker
    monkeypatch.setattr(contention, "watch", lambda threads, reference=True: contextlib.nullcontext([]))
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.001  # every timed call takes exactly 1 ms  # noqa: E731
    report = build(tiny_network("one", False), "eager", 1, tmp_path / "lut.sqlite", clock=clock)
    assert report.measured == 4
    with LatencyTable(tmp_path / "lut.sqlite") as table:
        entries = [latency for _, latency in table.items()]
        assert all(e.median_ms == pytest.approx(1.0) and not e.noisy and e.runs >= 10 for e in entries)
        assert "torch" in table.header["runtime_versions"]["eager"]


def test_merge_policies(tmp_path):
    keys = sorted(distinct_blocks(resolve_networks(tiny_network("one", False)), SETTING))
    with LatencyTable(tmp_path / "a.sqlite") as a, LatencyTable(tmp_path / "b.sqlite") as b:
        a.put(keys[0], BlockLatency(median_ms=1.0, ci_low_ms=0.9, ci_high_ms=1.1))  # ±10%
        b.put(keys[0], BlockLatency(median_ms=1.2, ci_low_ms=1.19, ci_high_ms=1.21))  # ±1%: more precise
        b.put(keys[1], BlockLatency(median_ms=3.0))
        with pytest.raises(LutError, match="1 block"):
            a.merge(b)  # default: conflicts are an error, and nothing is copied
        assert len(a) == 1
        assert a.merge(b, on_conflict="keep") == (1, 1) and a.get(keys[0]).median_ms == 1.0 and a.get(keys[1]).median_ms == 3.0
        assert a.merge(b, on_conflict="precise") == (0, 1) and a.get(keys[0]).median_ms == 1.2
        a.put(keys[0], BlockLatency(median_ms=1.0, ci_low_ms=0.999, ci_high_ms=1.001))
        a.merge(b, on_conflict="precise")
        assert a.get(keys[0]).median_ms == 1.0  # ours is now the more precise one
        a.merge(b, on_conflict="replace")
        assert a.get(keys[0]).median_ms == 1.2
    with LatencyTable(tmp_path / "c.sqlite", machine=other_machine()) as c, LatencyTable(tmp_path / "a.sqlite") as a:
        with pytest.raises(OtherMachineError, match="different machines"):
            a.merge(c)
