"""Cache-aware roofline, fused kernels per runtime, and the contention detector (issue 13).

No timing here: the bound is computed with given peaks on a fake machine, the detector reads fake
/proc files, and ORT's fusion is read from its optimized graph.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.analysis import DevicePeaks, MemoryLevel, analyze
from edgevision.analysis.kernels import group_kernels, kernel_costs, ort_optimized_graph
from edgevision.analysis.roofline import CacheLevel, _monotone_levels, _sweep_sizes, cache_levels, memory_levels
from edgevision.bench.analysis import Entry, roofline_check
from edgevision.latency import contention

MiB = 2**20
# a fake 2-core machine: 64 KiB of L1, 4 MiB of L2, 32 MiB of L3 (cumulative), DRAM behind
LEVELS = (
    MemoryLevel("L1", 64 * 2**10, 400e9),
    MemoryLevel("L2", 4 * MiB, 200e9),
    MemoryLevel("L3", 36 * MiB, 80e9),
    MemoryLevel("DRAM", math.inf, 20e9),
)
CARM = DevicePeaks(flops_per_second=150e9, bytes_per_second=20e9, threads=2, dtype="float32", fingerprint="fake", source="given", levels=LEVELS)
FLAT = DevicePeaks(flops_per_second=150e9, bytes_per_second=20e9, threads=2, dtype="float32", fingerprint="fake", source="given")


class ConvBnRelu(nn.Module):
    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):  # (B, C, H, W) -> (B, C, H, W)
        return self.act(self.bn(self.conv(x)))


# ---- the memory bound ---------------------------------------------------------------------------
@pytest.mark.parametrize("nbytes", [1e3, 60e3, 1e6, 5e6, 40e6, 100e6, 2e9])
def test_memory_bound_is_at_most_the_flat_dram_bound_and_at_least_the_l1_time(nbytes):
    carm = CARM.memory_seconds(nbytes)
    assert nbytes / 400e9 <= carm <= FLAT.memory_seconds(nbytes) == nbytes / 20e9


def test_memory_bound_charges_the_level_the_bytes_must_come_from():
    # far beyond twice every cache: DRAM minus what the caches could have held
    assert CARM.memory_seconds(1e9) == pytest.approx((1e9 - 2 * 36 * MiB) / 20e9)
    assert CARM.level_of(1e9) == "DRAM" and CARM.level_of(1e6) == "L2" and CARM.level_of(1e3) == "L1"
    # 16 MiB fits twice in L3 but not in L2: at least 16 MiB - 8 MiB cross from L3 at 80 GB/s
    assert CARM.memory_seconds(16 * MiB) == pytest.approx((16 * MiB - 2 * 4 * MiB) / 80e9)


def test_bound_is_monotone_in_the_peaks_and_bytes():
    faster = CARM.scaled(2.0)
    for nbytes in (1e4, 3e6, 5e7, 5e8):
        assert faster.memory_seconds(nbytes) <= CARM.memory_seconds(nbytes)
        assert CARM.memory_seconds(nbytes) <= CARM.memory_seconds(nbytes * 1.5)
    model = nn.Sequential(ConvBnRelu(16), nn.Conv2d(16, 32, 1), nn.ReLU())
    slow, fast = (analyze(model, (1, 16, 32, 32), peaks=p, runtime="ort") for p in (CARM, faster))
    assert fast.bound_seconds < slow.bound_seconds


def test_levels_are_never_slower_than_the_level_behind_them():
    levels = _monotone_levels([("L1", 1e5, 50e9), ("L2", 1e6, 0.0), ("L3", 1e7, 90e9), ("DRAM", math.inf, 10e9)])
    assert [lv.bytes_per_second for lv in levels] == [90e9, 90e9, 90e9, 10e9]  # a noisy L1 probe cannot raise the bound
    unswept = _monotone_levels([("L1", 1e5, 50e9), ("L3", 2e9, 30e9), ("DRAM", math.inf, 0.0)])  # L3 beyond the sweep
    assert [lv.bytes_per_second for lv in unswept] == [50e9, 30e9, 30e9]
    with pytest.raises(ValueError, match="growing capacity"):
        DevicePeaks(1e9, 1e9, 1, "float32", "x", levels=(LEVELS[1], LEVELS[0]))
    assert _sweep_sizes(36 * MiB, 24 * 2**30)[-1] == 72 * MiB > 36 * MiB  # one working set beyond every cache: DRAM


def test_peaks_round_trip_through_json_with_an_infinite_dram_capacity():
    assert DevicePeaks.from_dict(CARM.to_dict()) == CARM
    assert CARM.to_dict()["levels"][-1]["capacity_bytes"] is None


def test_cache_sizes_from_a_fake_sysfs(tmp_path):
    for index, (level, kind, size, shared) in enumerate(
        [(1, "Data", "48K", "0"), (1, "Instruction", "32K", "0"), (2, "Unified", "2048K", "0"), (3, "Unified", "32768K", "0-1")]
    ):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (folder / name).write_text(f"{value}\n")
    caches = cache_levels(tmp_path)
    assert caches == (CacheLevel(1, 48 * 2**10, 1), CacheLevel(2, 2 * MiB, 1), CacheLevel(3, 32 * MiB, 2))
    # two threads: private L1 and L2 count twice, the shared L3 once; capacities are cumulative
    named = memory_levels(caches, threads=2, logical_cpus=2)
    assert named == [("L1", 96 * 2**10), ("L2", 96 * 2**10 + 4 * MiB), ("L3", 96 * 2**10 + 36 * MiB), ("DRAM", math.inf)]
    assert memory_levels(caches, threads=1, logical_cpus=2)[1] == ("L2", 48 * 2**10 + 2 * MiB)


# ---- fused kernels --------------------------------------------------------------------------------
def test_conv_bn_relu_is_one_kernel_on_ort_and_three_on_eager():
    model = ConvBnRelu().eval()
    ort = analyze(model, (1, 8, 16, 16), peaks=CARM, runtime="ort")
    eager = analyze(model, (1, 8, 16, 16), peaks=CARM, runtime="eager")
    assert [k.ops for k in ort.kernels] == [("aten.convolution", "aten.native_batch_norm", "aten.relu_")]
    assert len(eager.kernels) == 3
    (kernel,) = ort.kernels
    activation = 1 * 8 * 16 * 16 * 4
    weights = 8 * 8 * 9 * 4 + 4 * 8 * 4  # conv weight + BN mean, var, weight, bias
    assert kernel.bytes_read == activation + weights and kernel.bytes_written == activation  # intermediates never written
    assert kernel.flops == ort.total.flops


def test_ort_rules_agree_with_ort_optimized_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    model = ConvBnRelu().eval()
    path = tmp_path / "m.onnx"
    ev.export_onnx(model, path, (1, 8, 16, 16), deploy=False, dynamic_batch=False)
    nodes = [n for n in ort_optimized_graph(path) if not n.is_layout]
    assert len(nodes) == 1 and nodes[0].activation == "Relu"  # BN folded, ReLU inside the conv kernel
    assert len(analyze(model, (1, 8, 16, 16), peaks=None, runtime="ort").kernels) == len(nodes)


def test_residual_add_and_activation_join_the_conv_kernel_only_when_its_output_has_one_consumer():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.act = nn.Hardswish()

        def forward(self, x):
            y = self.conv(x)
            return self.act(y + x), y.mean()  # y has two consumers: it must be written

    kernels = analyze(Residual(), (1, 8, 8, 8), peaks=None, runtime="ort").kernels
    assert [k.ops for k in kernels] == [("aten.convolution",), ("aten.add",), ("aten.hardswish",), ("aten.mean",)]  # ORT: no conv anchor, no fusion
    compiled = analyze(Residual(), (1, 8, 8, 8), peaks=None, runtime="compile").kernels
    assert compiled[1].ops == ("aten.add", "aten.hardswish")  # inductor fuses the point-wise chain


class ScaledResidual(nn.Module):
    """inception_resnet_v2's block tail: relu(h + 0.17 * conv(h)), h from an earlier conv."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return torch.relu(h + self.conv(h) * 0.17)


class PreActivation(nn.Module):
    """DenseNet's layer: a folded BatchNorm (per-channel scale and shift) + ReLU on a concat, then a conv."""

    def __init__(self, channels: int = 8, shift: float = 0.5):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(1, 2 * channels, 1, 1) + 0.5)
        self.shift = nn.Parameter(torch.full((1, 2 * channels, 1, 1), shift))
        self.stem = nn.Conv2d(channels, channels, 3, padding=1)
        self.branch = nn.Conv2d(channels, channels, 1)
        self.conv = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        features = torch.cat([h, self.branch(h)], 1)
        return self.conv(torch.relu(features * self.scale + self.shift))


def test_multiply_by_a_constant_joins_the_conv_kernel_on_ort():
    """ORT folds conv(x) * c into the conv's weights and the residual add + ReLU into the kernel."""
    stem, block = analyze(ScaledResidual(), (1, 8, 8, 8), peaks=None, runtime="ort").kernels
    assert [op.split(".")[1] for op in block.ops] == ["convolution", "mul", "add", "relu"]
    assert block.bytes_written == 8 * 8 * 8 * 4  # only the block's output is written
    assert block.bytes_read == stem.bytes_written + (8 * 8 + 8) * 4  # h once (conv and add share it) + weights
    assert len(analyze(ScaledResidual(), (1, 8, 8, 8), peaks=None, runtime="eager").kernels) == 6


def test_per_channel_affine_after_a_concat_is_one_kernel_with_its_activation_on_ort():
    kernels = analyze(PreActivation(), (1, 8, 8, 8), peaks=None, runtime="ort").kernels
    assert [tuple(op.split(".")[1] for op in k.ops) for k in kernels] == [
        ("convolution", "relu"), ("convolution",), ("cat",), ("mul", "add", "relu"), ("convolution",)
    ]  # fmt: skip


def test_multiply_of_two_activations_is_not_a_constant_affine():
    class Gate(nn.Module):
        def forward(self, x):
            return torch.relu(x * torch.sigmoid(x) + 1.0)  # x * sigmoid(x): both operands are activations

    kernels = analyze(Gate(), (1, 4, 4, 4), peaks=None, runtime="ort").kernels
    # the gating multiply takes nothing in; x + 1.0 is an affine by a constant and takes the ReLU
    assert [tuple(op.split(".")[1] for op in k.ops) for k in kernels] == [("sigmoid",), ("mul",), ("add", "relu")]


@pytest.mark.parametrize(
    "model, exact",
    [(ScaledResidual, True), (lambda channels: PreActivation(channels, shift=0.0), True), (PreActivation, False)],
    ids=["scaled-residual", "pre-activation-zero-shift", "pre-activation"],
)
def test_ort_rules_count_the_kernels_of_ort_optimized_graph(model, exact, tmp_path):
    """Our ORT kernels are the nodes ORT runs (layout reorders aside), or fewer: never more.

    A zero shift (every untrained zoo model's folded BatchNorm) is dropped at export and ORT runs
    scale + ReLU as one depthwise NCHWc conv, as we count; with a non-zero shift ORT 1.31 keeps the
    Add and the ReLU apart (3 kernels, we count 1: over-fused, so the bound stays a lower bound).
    """
    pytest.importorskip("onnxruntime")
    module = model(channels=32).eval()  # NCHWc needs whole channel blocks (8 with AVX2, 16 with AVX-512)
    path = tmp_path / "m.onnx"
    ev.export_onnx(module, path, (1, 32, 8, 8), deploy=False, dynamic_batch=False)
    graph = ort_optimized_graph(path)
    nodes = [n for n in graph if not n.is_layout]
    kernels = analyze(module, (1, 32, 8, 8), peaks=None, runtime="ort").kernels
    assert len(kernels) <= len(nodes), [n.op_type for n in nodes]  # never fewer fusions than ORT (a lower bound)
    if exact and any(n.domain == "com.microsoft.nchwc" for n in graph):  # x86 MLAS: ORT fuses exactly as we count
        assert len(kernels) == len(nodes), [n.op_type for n in nodes]


def test_weight_only_operators_are_constant_folded_on_ort_not_on_eager():
    class ScaledWeight(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(8, 8, 1, 1))

        def forward(self, x):
            return nn.functional.conv2d(x, self.weight * 2.0)  # weight * 2 depends on no input

    report = analyze(ScaledWeight(), (1, 8, 8, 8), peaks=None)
    assert len(group_kernels([o.call for o in report.operators], "eager")) == 2
    assert len(group_kernels([o.call for o in report.operators], "ort")) == 1


@pytest.mark.parametrize("name", ["mobilenetv2_050", "shufflenet_v2_x0_5"])
def test_fused_bound_of_zoo_models_is_below_the_per_operator_sum(name):
    model = ev.reparameterize(ev.create_model(name))
    report = analyze(model, (1, 3, 64, 64), peaks=FLAT)
    per_operator = report.total.bound_seconds
    for runtime in ("ort", "compile"):
        kernels = report.kernels_for(runtime)
        assert sum(k.bound_seconds for k in kernels) <= per_operator * (1 + 1e-9)
        assert sum(k.bytes for k in kernels) < report.total.bytes  # fusion removes intermediates
        assert sum(k.flops for k in kernels) <= report.total.flops
    assert report.runtime_bound_seconds("eager") == pytest.approx(per_operator)
    # the CARM bound never exceeds the model-independent flat bound FLOPs/peak + bytes/DRAM bandwidth
    carm = sum(k.bound_seconds for k in kernel_costs([o.call for o in report.operators], "ort", CARM))
    assert carm <= report.total.flops / FLAT.flops_per_second + report.total.bytes / FLAT.bytes_per_second


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(ValueError, match="runtime must be one of eager, ort"):
        analyze(nn.ReLU(), (1, 4), peaks=None, runtime="tensorrt")


# ---- the bench report's roofline check --------------------------------------------------------------
def _entry(model: str, runtime: str, bound_ms: float | None, median_ms: float, contended: bool = False) -> Entry:
    return Entry(model, runtime, 1, 1.0, 2.0, 3.0, None, bound_ms, None, median_ms, None, None, median_ms, 10, False, "converged", contended)


def test_roofline_check_flags_violations_and_reports_tightness():
    entries = [_entry("a", "ort", 1.0, 4.0), _entry("b", "ort", 3.0, 2.5), _entry("c", "ort", 1.0, 2.0), _entry("d", "eager", None, 1.0)]
    checks = {c.runtime: c for c in roofline_check(entries)}
    assert checks["ort"].violations == ("b",) and checks["ort"].median_tightness == pytest.approx(2.0)
    assert checks["eager"].bounded == 0 and checks["eager"].median_tightness is None


# ---- contention -----------------------------------------------------------------------------------
def _proc(tmp_path, name: str, user: int, system: int, idle: int, steal: int, load: float = 0.5):
    folder = tmp_path / name
    folder.mkdir()
    ticks = contention.os.sysconf("SC_CLK_TCK")
    fields = [user * ticks, 0, system * ticks, idle * ticks, 0, 0, 0, steal * ticks, 0, 0]
    folder.joinpath("stat").write_text(
        "cpu  " + " ".join(map(str, fields)) + "\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 0\n"
    )
    folder.joinpath("loadavg").write_text(f"{load} 0.40 0.30 2/300 12345\n")
    return folder


def test_other_processes_cpu_and_steal_are_read_from_proc(tmp_path):
    before = contention.read_cpu_times(_proc(tmp_path, "a", user=100, system=20, idle=500, steal=0))
    after = contention.read_cpu_times(_proc(tmp_path, "b", user=110, system=22, idle=508, steal=0, load=3.5))
    assert after.cpus == 2 and after.busy - before.busy == pytest.approx(12.0)
    # 10 s watched, 12 CPU-seconds busy of which 8 were ours: others used 0.4 cores
    busy = contention.judge(10.0, before, after, own_seconds=8.0, loadavg=3.5)
    assert busy.contended and busy.other_cores == pytest.approx(0.4) and "0.40 cores" in busy.reasons[0]
    quiet = contention.judge(10.0, before, after, own_seconds=11.5, loadavg=0.5)
    assert not quiet.contended and quiet.reasons == ()
    stolen = contention.read_cpu_times(_proc(tmp_path, "c", user=110, system=22, idle=502, steal=6))
    assert "stole 30%" in contention.judge(10.0, before, stolen, own_seconds=12.0, loadavg=None).reasons[0]
    assert contention.read_loadavg(tmp_path / "b") == 3.5
    assert contention.read_cpu_times(tmp_path / "missing") is None


def test_a_shifted_reference_network_flags_contention_without_proc():
    shifted = contention.judge(5.0, None, None, 0.0, None, reference=(1.0, 1.3))
    assert shifted.contended and shifted.reference_shift == pytest.approx(0.3) and "+30%" in shifted.reasons[0]
    assert not contention.judge(5.0, None, None, 0.0, None, reference=(1.0, 1.05)).contended


def test_waiting_for_a_quiet_machine_is_bounded(tmp_path):
    busy = _proc(tmp_path, "busy", user=100, system=0, idle=0, steal=0)
    calls = []

    def fake_sleep(seconds):  # the other process keeps both cores busy: /proc/stat grows by 2 s per second
        calls.append(seconds)
        text = (busy / "stat").read_text().split("\n")
        fields = text[0].split()
        fields[1] = str(int(fields[1]) + int(2 * seconds * contention.os.sysconf("SC_CLK_TCK")))
        (busy / "stat").write_text("\n".join([" ".join(fields)] + text[1:]))

    assert contention.wait_until_quiet(0.0, window_s=0.01, proc=busy, sleep=fake_sleep) is False
    assert len(calls) == 1
    quiet = _proc(tmp_path, "quiet", user=100, system=0, idle=0, steal=0)
    assert contention.wait_until_quiet(5.0, window_s=0.01, proc=quiet, sleep=lambda s: None) is True


def test_bench_second_pass_states_the_machines_repeatability(tmp_path):
    from bench_helpers import ticking_clock

    from edgevision.bench import BenchConfig, run_bench
    from edgevision.bench.analysis import entries_from_rows
    from edgevision.bench.report import _repeatability_blocks

    config = BenchConfig(models=("shufflenet_v2_x0_5",), runtimes=("eager",), threads=1, resolution=64, time_budget_s=1.0, second_pass=True)
    bench = run_bench(config, tmp_path, peaks=CARM, clock=ticking_clock())
    assert len(bench.second_pass) == 1 and (tmp_path / "second_pass.jsonl").exists()
    assert set(bench.rows[0]["costs"]["bound_ms_by_runtime"]) >= {"eager", "ort"}
    assert "contended" in bench.rows[0]["result"] and bench.rows[0]["result"]["machine_load"]["seconds"] > 0
    blocks = _repeatability_blocks(entries_from_rows(bench.rows), bench.second_pass)  # write_report's section, without the plots
    assert blocks[0].text == "Repeatability of this machine" and blocks[2].rows == (("eager", "1", "100%", "0.0%"),)  # the fake clock repeats exactly
    assert "--second-pass" in _repeatability_blocks(entries_from_rows(bench.rows), ())[1].text


def test_measure_flags_a_contended_run_and_remeasures_once_the_machine_is_quiet(monkeypatch):
    from bench_helpers import ticking_clock

    import edgevision.latency.contention as watched

    busy = watched.judge(1.0, None, None, 0.0, None, reference=(1.0, 2.0))
    monkeypatch.setattr(watched, "reference_ms", lambda threads: 1.0)
    monkeypatch.setattr(watched, "judge", lambda *args, **kwargs: busy)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    flagged = ev.measure(model, (3, 16, 16), runtime="eager", threads=1, clock=ticking_clock(), quiet_wait_s=0)
    assert flagged.contended and not flagged.remeasured and "reference network moved +100%" in flagged.summary()
    assert flagged.to_dict()["machine_load"]["reasons"] == ["the reference network moved +100%"]
    waited = []
    monkeypatch.setattr(watched, "wait_within_budget", lambda seconds: waited.append(seconds) or True)
    again = ev.measure(model, (3, 16, 16), runtime="eager", threads=1, clock=ticking_clock(), quiet_wait_s=5.0)
    assert again.remeasured and waited == [5.0]


# ---- the machine state of a probe and of a measurement (roofline-violations.md) -------------------
def _probed(flops: float, dram: float, reference_ms: float | None) -> DevicePeaks:
    levels = (MemoryLevel("L1", 64 * 2**10, dram * 10), MemoryLevel("DRAM", math.inf, dram))
    return DevicePeaks(flops, dram, 2, "float32", "fake", levels=levels, reference_ms=reference_ms)


def test_a_bound_follows_the_machine_state_only_downwards():
    """Probed while the reference took 0.8 ms: a run measured at 0.4 ms (2x faster machine) gets half the bound; a slower one the same."""
    peaks = _probed(100e9, 10e9, reference_ms=0.8)
    assert peaks.bound_factor(0.4) == pytest.approx(0.5)
    assert peaks.bound_factor(1.6) == 1.0  # slower than while probing: never raised
    assert peaks.bound_factor(None) == 1.0 and _probed(100e9, 10e9, None).bound_factor(0.4) == 1.0
    # the factor is exactly the bound of the peaks moved to the measurement's state (every rate x 2)
    moved = peaks.at_reference(0.4)
    assert moved.reference_ms == 0.4 and moved.flops_per_second == pytest.approx(200e9)
    for flops, nbytes in ((1e9, 1e6), (1e6, 5e8)):
        assert moved.bound_seconds(flops, nbytes)[0] == pytest.approx(peaks.bound_seconds(flops, nbytes)[0] * peaks.bound_factor(0.4))
    with pytest.raises(ValueError, match="no reference time"):
        _probed(100e9, 10e9, None).at_reference(0.4)
    with pytest.raises(ValueError, match="reference_ms"):
        _probed(100e9, 10e9, -1.0)


def test_stored_fake_measurements_in_a_faster_state_no_longer_violate(monkeypatch):
    """The roofline-violations.md case on a fake machine: a network measured while the machine ran 1.25x faster than at the probe."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import bench_roofline

    peaks = _probed(100e9, 10e9, reference_ms=0.36)
    bound_ms = 10.0  # the probe-state bound of the network
    fast = {"median_ms": 8.5, "reference_ms": 0.30, "machine_load": {"reference_before_ms": 0.31, "reference_after_ms": 0.288}}
    slow = {"median_ms": 12.0, "reference_ms": 0.70, "machine_load": {"reference_before_ms": 0.69, "reference_after_ms": 0.72}}
    assert bench_roofline.row_reference_ms(fast) == 0.288  # the fastest state seen around the measurement
    assert bench_roofline.bound_check([fast, slow], bound_ms, peaks, corrected=False)[:2] == (True, pytest.approx(0.85))
    violated, ratio, tightest = bench_roofline.bound_check([fast, slow], bound_ms, peaks, corrected=True)
    assert not violated and ratio == pytest.approx(8.5 / (10.0 * 0.288 / 0.36)) and tightest is fast
    # a run slower than its bound in a slow state stays a violation: the correction never excuses it
    too_fast_for_its_state = {"median_ms": 9.0, "reference_ms": 0.9}
    assert bench_roofline.bound_check([too_fast_for_its_state], bound_ms, peaks, corrected=True)[0]
    unreferenced = {"median_ms": 9.0}
    assert bench_roofline.bound_check([unreferenced], bound_ms, peaks, corrected=True)[0]


def test_the_probe_records_the_reference_between_and_around_its_sweeps(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path))
    import edgevision.analysis.roofline as roofline

    events, references = [], iter([0.30, 0.45, 0.33, 0.9, 0.8, 0.85])
    monkeypatch.setattr(roofline, "_reference_ms", lambda threads: events.append("reference") or next(references))
    levels = (MemoryLevel("L1", 2**15, 3e11), MemoryLevel("DRAM", math.inf, 1e10))

    def fake_measure(threads, dtype, min_run_time, between):
        events.append("compute")
        between()
        events.append("memory")
        return (2e11, "fake conv"), levels

    monkeypatch.setattr(roofline, "_measure", fake_measure)
    peaks = roofline.device_peaks(threads=2)
    assert events == ["reference", "compute", "reference", "memory", "reference"]
    assert peaks.reference_ms == 0.45 and peaks.reference_samples_ms == (0.30, 0.45, 0.33)  # the slowest sample: the safe side
    assert roofline.DevicePeaks.from_dict(peaks.to_dict()) == peaks
    # a re-probe while the machine runs 2x slower (reference 0.9 ms) at half the rates: the merged peaks do not change
    monkeypatch.setattr(roofline, "_measure", lambda threads, dtype, t, between: between() or ((1e11, "slow conv"), tuple(
        replace(lv, bytes_per_second=lv.bytes_per_second / 2) for lv in levels)))  # fmt: skip
    again = roofline.device_peaks(threads=2, refresh=True)
    assert again.reference_ms == 0.45 and again.flops_per_second == pytest.approx(2e11)
    assert [lv.bytes_per_second for lv in again.levels] == pytest.approx([3e11, 1e10])
    assert again.reference_samples_ms == (0.30, 0.45, 0.33, 0.9, 0.8, 0.85)


def test_merging_probes_from_two_machine_states_never_raises_a_bound():
    """Each probe alone bounds a run by bound x factor; the merge must bound every run at least as low as either does."""
    from edgevision.analysis.roofline import _highest

    fast_state = _probed(300e9, 20e9, reference_ms=0.3)  # compute probe good, memory probe unlucky
    slow_state = _probed(200e9, 25e9, reference_ms=0.9)  # 3x slower state, yet higher raw bandwidth
    merged = _highest(slow_state, fast_state)
    assert merged.reference_ms == 0.3
    assert merged.flops_per_second == pytest.approx(max(300e9, 200e9 * 3))  # the slow probe's rate moved to the fast state
    for measured_reference in (0.2, 0.3, 0.5, 0.9, 1.5):
        for flops, nbytes in ((1e9, 1e6), (1e6, 5e8), (1e8, 1e8)):
            merged_bound = merged.bound_seconds(flops, nbytes)[0] * merged.bound_factor(measured_reference)
            for probe in (fast_state, slow_state):
                assert merged_bound <= probe.bound_seconds(flops, nbytes)[0] * probe.bound_factor(measured_reference) * (1 + 1e-12)
    # a probe with no recorded state cannot be placed in one: the referenced probe stands alone
    legacy = _probed(900e9, 90e9, reference_ms=None)
    assert _highest(fast_state, legacy) == fast_state


def test_a_cached_peak_without_a_machine_state_does_not_seed_a_new_version(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path))
    import edgevision.analysis.roofline as roofline

    prefix = f"{ev.machine.machine_info().fingerprint}/threads=1/float32"
    legacy = _probed(9e11, 9e10, reference_ms=None)  # a carm-v4 entry: higher rates, but from an unknown state
    levels = (MemoryLevel("L1", 64 * 2**10, 1e11), MemoryLevel("DRAM", math.inf, 1e10))
    (tmp_path / "device_peaks.json").write_text(json.dumps({f"{prefix}/carm-v4": legacy.to_dict()}))
    monkeypatch.setattr(roofline, "_reference_ms", lambda threads: 0.5)
    monkeypatch.setattr(roofline, "_measure", lambda threads, dtype, t, between: between() or ((1e11, "conv"), levels))
    peaks = roofline.device_peaks(threads=1)
    assert peaks.flops_per_second == 1e11 and peaks.reference_ms == 0.5


def test_bench_rows_bound_each_measurement_in_its_own_machine_state():
    from bench_helpers import make_row

    from edgevision.bench.analysis import entries_from_rows

    def row(model: str, median_ms: float, before: float, after: float, threads: int = 1) -> dict:
        data = make_row(model, "ort", median_ms, 1e8, None)  # bound 1.0 ms (macs / 1e8)
        data["costs"].update(peaks_reference_ms=0.5, peaks_threads=1)
        data["result"]["context"]["threads"] = threads
        data["result"]["machine_load"] = {"reference_before_ms": before, "reference_after_ms": after}
        return data

    fast, slow, other_threads = entries_from_rows([row("fast", 0.8, 0.45, 0.4), row("slow", 1.5, 0.9, 1.0), row("two", 0.8, 0.2, 0.2, threads=2)])
    assert fast.model == "fast" and fast.bound_ms == pytest.approx(1.0 * 0.4 / 0.5) and not fast.bound_violated
    assert slow.bound_ms == pytest.approx(1.0)  # slower than at the probe: never raised
    assert other_threads.bound_ms == pytest.approx(1.0) and other_threads.bound_violated  # another thread count's reference is other work
