"""Cost model: hand-derived MACs/FLOPs/bytes per operator, peak activation memory, aggregation, roofline."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgevision as ev
from edgevision.analysis import DevicePeaks, analyze, device_peaks
from edgevision.layers import channel_shuffle
from edgevision.published import published

F32 = 4  # bytes per float32 element
PEAKS = DevicePeaks(flops_per_second=1e9, bytes_per_second=1e8, threads=1, dtype="float32", fingerprint="test", source="given")


def costed(report, op):
    """The non-view operator calls named ``op``."""
    return [o.call for o in report.operators if o.call.op == op]


# ---- per-operator formulas, derived by hand ------------------------------------------------------
def test_grouped_dilated_strided_conv_with_bias():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=4, bias=True)
    report = analyze(conv, (2, 8, 9, 9), peaks=None)
    (call,) = costed(report, "aten.convolution")
    # H_out = (9 + 2*2 - 2*(3-1) - 1) // 2 + 1 = 5; each output sums C_in/g * k*k = 2 * 9 products
    assert call.output_shapes == ((2, 16, 5, 5),)
    assert call.macs == 2 * 16 * 5 * 5 * 2 * 9 == 14400
    assert call.flops == 2 * 14400 + 2 * 16 * 5 * 5  # + one bias add per output element
    assert call.bytes_read == (2 * 8 * 9 * 9 + 16 * 2 * 3 * 3 + 16) * F32
    assert call.bytes_written == 2 * 16 * 5 * 5 * F32


def test_depthwise_conv():
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
    (call,) = costed(analyze(conv, (1, 6, 7, 7), peaks=None), "aten.convolution")
    assert call.macs == 6 * 7 * 7 * 9 and call.flops == 2 * call.macs
    assert call.bytes_read == (6 * 49 + 6 * 9) * F32 and call.bytes_written == 6 * 49 * F32


def test_linear_on_nd_input_and_its_views_move_nothing():
    report = analyze(nn.Linear(10, 20), (2, 3, 10), peaks=None)
    assert report.total.macs == 2 * 3 * 10 * 20
    assert report.total.flops == 2 * 1200 + 2 * 3 * 20  # + bias adds
    views = [o.call for o in report.operators if o.call.is_view]
    assert views and all(v.bytes_read == v.bytes_written == v.flops == 0 for v in views)
    assert report.total.bytes_read == (6 * 10 + 10 * 20 + 20) * F32
    assert report.total.bytes_written == 6 * 20 * F32


def test_matmul_and_bmm():
    class Batched(nn.Module):
        def forward(self, a):
            return a @ torch.ones(4, 6, 7)

    report = analyze(Batched(), (4, 5, 6), peaks=None)
    assert report.total.macs == 4 * 5 * 6 * 7
    assert sum(c.macs for c in costed(report, "aten.bmm")) == 840


def test_scaled_dot_product_attention():
    key, value = torch.randn(2, 3, 10, 16), torch.randn(2, 3, 10, 12)

    class Attention(nn.Module):
        def forward(self, query):
            return F.scaled_dot_product_attention(query, key, value)

    report = analyze(Attention(), (2, 3, 8, 16), peaks=None)
    # Q.K^T: B*H*Lq*Lk*d  +  P.V: B*H*Lq*Lk*dv
    assert report.total.macs == 2 * 3 * 8 * 10 * (16 + 12)
    assert report.total.flops >= 2 * report.total.macs + 5 * 2 * 3 * 8 * 10  # softmax counted too


def test_batchnorm_layernorm_and_activations():
    norm = nn.BatchNorm2d(4).eval()
    (call,) = costed(analyze(norm, (2, 4, 5, 5), peaks=None), "aten.native_batch_norm")
    assert call.flops == 2 * 200  # inference: scale + shift per element
    assert call.bytes_read == (200 + 4 * 4) * F32  # input + weight, bias, running mean, running var
    (call,) = costed(analyze(nn.LayerNorm(10), (2, 3, 10), peaks=None), "aten.native_layer_norm")
    assert call.flops == 5 * 60
    for module, per_element in ((nn.ReLU(), 1), (nn.Hardswish(), 4), (nn.Sigmoid(), 4), (nn.SiLU(), 5), (nn.GELU(), 8)):
        report = analyze(module, (2, 4, 5, 5), peaks=None)
        assert report.total.flops == per_element * 200, type(module).__name__
        assert report.total.bytes_read == report.total.bytes_written == 200 * F32


def test_pooling():
    report = analyze(nn.MaxPool2d(3, 2, 1), (1, 2, 8, 8), peaks=None)
    assert report.total.flops == 2 * 4 * 4 * 9  # one comparison per window element
    report = analyze(nn.AdaptiveAvgPool2d(1), (1, 2, 8, 8), peaks=None)
    assert report.total.flops == 2 * 64 + 2  # sums, then one division per output
    assert report.total.bytes_written == 2 * F32


def test_cat_split_and_channel_shuffle_move_bytes_but_no_flops():
    class Memory(nn.Module):
        def forward(self, x):
            left, right = x.split([2, 3], dim=1)  # views: nothing moves
            joined = torch.cat([right, left], dim=1)  # reads 5 channels, writes 5
            return channel_shuffle(joined[:, :4], 2)  # slice is a view; the shuffle copies once

    report = analyze(Memory(), (1, 5, 4, 4), peaks=None)
    assert report.total.flops == report.total.macs == 0
    (cat,) = costed(report, "aten.cat")
    assert cat.bytes_read == cat.bytes_written == 5 * 16 * F32
    (copy,) = costed(report, "aten.clone")
    assert copy.bytes_read == copy.bytes_written == 4 * 16 * F32
    assert report.total.bytes == 2 * 5 * 16 * F32 + 2 * 4 * 16 * F32
    assert all(c.bytes_read == 0 for c in costed(report, "aten.split_with_sizes"))


# ---- activation memory ---------------------------------------------------------------------------
@pytest.mark.parametrize("inplace", [False, True])
def test_peak_activation_memory_of_a_small_network(inplace):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(inplace=inplace), nn.Conv2d(8, 4, 1, bias=False))
    report = analyze(model, (1, 3, 8, 8), peaks=None)
    image, conv1, conv2 = 3 * 64 * F32, 8 * 64 * F32, 4 * 64 * F32
    if inplace:  # relu_ writes into conv1's output: image + conv1, then + conv2
        assert report.peak_activation_bytes == image + conv1 + conv2
    else:  # during ReLU the image, conv1's output and ReLU's output are all alive
        assert report.peak_activation_bytes == image + conv1 + conv1
    assert report.input_bytes == image
    assert report.total.activation_bytes == conv1 + conv2 + (0 if inplace else conv1)


# ---- attribution: shared modules, repeated calls, functional code --------------------------------
def test_module_called_twice_and_shared_under_two_names_is_not_double_counted():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.alias = self.block  # the same module under a second name

        def forward(self, x):
            return self.alias(self.block(x))

    report = analyze(Twice(), (1, 4, 6, 6), peaks=None)
    single = 4 * 36 * 4 * 9
    assert report.total.macs == 2 * single
    assert report.module("block").macs == 2 * single
    assert "alias" not in report.modules
    assert report.total.params == 4 * 4 * 9  # shared weights once
    again = analyze(Twice(), (1, 4, 6, 6), peaks=None)
    assert again.total.macs == report.total.macs


def test_functional_only_model_counts_at_the_root():
    weight = torch.randn(8, 3, 3, 3)

    class Functional(nn.Module):
        def forward(self, x):
            return F.relu(F.conv2d(x, weight, padding=1)).mean((2, 3)) @ torch.randn(8, 5)

    report = analyze(Functional(), (2, 3, 6, 6), peaks=None)
    assert report.total.macs == 2 * 8 * 36 * 27 + 2 * 8 * 5
    assert all(o.call.module == "" for o in report.operators)


def test_hierarchical_totals_sum_their_children():
    report = analyze(ev.create_model("mobilenetv2_050"), (1, 3, 96, 96), peaks=None)
    stages = report.module("stages")
    children = [m for m in report.modules.values() if m.path.startswith("stages.") and m.depth == 2]
    assert stages.macs == sum(m.macs for m in children)
    assert stages.bytes == sum(m.bytes for m in children)
    assert report.total.macs == report.module("stem").macs + stages.macs + report.module("head").macs


# ---- the zoo --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ev.list_models())
def test_zoo_params_and_macs_agree_with_torch_counters(name):
    model = ev.create_model(name)
    report = analyze(model, (1, 3, 128, 128), peaks=None)
    assert report.total.params == sum(p.numel() for p in model.parameters())
    assert report.total.macs == ev.count_macs(model, 128)  # torch.utils.flop_counter / 2
    assert not report.unrecognized_ops, report.unrecognized_ops


@pytest.mark.parametrize("name", ev.list_models(["mobileone*", "repvgg*", "repghostnet*"]))
def test_deploy_macs_of_reparameterized_models_match_the_papers(name):
    report = analyze(ev.reparameterize(ev.create_model(name)), (1, 3, 224, 224), peaks=None)
    assert published(name).macs.agrees_with(report.total.macs, 0.02)


# ---- roofline, exports, diagnostics -------------------------------------------------------------
def test_roofline_bound_per_operator_and_network():
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
    report = analyze(nn.Sequential(conv, nn.ReLU()), (1, 64, 16, 16), peaks=PEAKS)
    conv_cost, relu_cost = [o for o in report.operators if not o.call.is_view]
    assert conv_cost.bound_by == "compute" and conv_cost.bound_seconds == pytest.approx(conv_cost.call.flops / 1e9)
    assert relu_cost.bound_by == "memory" and relu_cost.bound_seconds == pytest.approx(relu_cost.bytes / 1e8)
    assert report.total.bound_seconds == pytest.approx(conv_cost.bound_seconds + relu_cost.bound_seconds)
    assert PEAKS.ridge_intensity == 10.0


def test_device_peaks_are_measured_once_and_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path))
    import edgevision.analysis.roofline as roofline

    monkeypatch.setattr(roofline, "_reference_ms", lambda threads: 0.5)  # the same machine state for both probes
    calls = []
    levels = (roofline.MemoryLevel("L1", 2**15, 3e11), roofline.MemoryLevel("DRAM", float("inf"), 1e10))
    monkeypatch.setattr(roofline, "_measure", lambda threads, dtype, t, between: calls.append(threads) or ((2e10, "torch.mm 2048"), levels))
    first = device_peaks(threads=1)
    second = device_peaks(threads=1)
    assert calls == [1] and first == second and first.flops_per_second == 2e10
    assert first.bytes_per_second == 1e10 and first.levels == levels  # DRAM = the outermost level, inf survives JSON
    cached = json.loads((tmp_path / "device_peaks.json").read_text())
    assert list(cached) == [f"{ev.machine.machine_info().fingerprint}/threads=1/float32/{roofline._CACHE_VERSION}"]
    slower = (roofline.MemoryLevel("L1", 2**15, 1e11), roofline.MemoryLevel("DRAM", float("inf"), 2e10))
    monkeypatch.setattr(roofline, "_measure", lambda threads, dtype, t, between: calls.append(threads) or ((1e10, "torch.mm 1024"), slower))
    again = device_peaks(threads=1, refresh=True)  # a busier re-probe: slower compute and L1, faster DRAM
    assert calls == [1, 1] and again.flops_per_second == 2e10 and [lv.bytes_per_second for lv in again.levels] == [3e11, 2e10]
    assert again.flops_probe == "torch.mm 2048"  # the probe that reached the kept (higher) peak


def test_a_new_cache_version_keeps_the_rates_the_old_one_observed(tmp_path, monkeypatch):
    """A new version changes the compute probe, not the machine: its first probe keeps an older version's higher bandwidths
    (when the old entry records its machine state; one that does not is dropped, see test_roofline's machine-state tests)."""
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path))
    import edgevision.analysis.roofline as roofline

    monkeypatch.setattr(roofline, "_reference_ms", lambda threads: 0.5)
    prefix = f"{ev.machine.machine_info().fingerprint}/threads=1/float32"
    old_levels = (roofline.MemoryLevel("L1", 2**15, 3e11), roofline.MemoryLevel("DRAM", float("inf"), 3e10))
    old = roofline.DevicePeaks(2e11, 3e10, 1, "float32", "x", levels=old_levels, reference_ms=0.5)
    (tmp_path / "device_peaks.json").write_text(json.dumps({f"{prefix}/{roofline._PREVIOUS_VERSIONS[-1]}": old.to_dict()}))
    new_levels = (roofline.MemoryLevel("L1", 2**15, 2e11), roofline.MemoryLevel("DRAM", float("inf"), 2e10))
    monkeypatch.setattr(roofline, "_measure", lambda threads, dtype, t, between: ((3e11, "onnxruntime Conv x"), new_levels))
    peaks = device_peaks(threads=1)
    assert peaks.flops_per_second == 3e11 and peaks.flops_probe == "onnxruntime Conv x"
    assert [lv.bytes_per_second for lv in peaks.levels] == [3e11, 3e10] and peaks.bytes_per_second == 3e10
    assert f"{prefix}/{roofline._CACHE_VERSION}" in json.loads((tmp_path / "device_peaks.json").read_text())


def test_compute_peak_is_the_highest_of_torch_and_onnxruntime_kernels(monkeypatch):
    """The peak must reach what every runtime's kernels reach, or ORT beats the "bound" (roofline.md, carm-v2)."""
    import edgevision.analysis.roofline as roofline

    tiny = (roofline.ConvProbe("tiny", 8, 16, (3, 3), 8), roofline.ConvProbe("tiny grouped", 16, 16, (7, 1), 6, groups=4, pairs=1))
    probes = roofline._onnxruntime_peak_flops(threads=1, min_run_time=0.0, repeats=1, probes=tiny, matmul=64)
    assert [name for _, name in probes] == [
        "onnxruntime MatMul 64", "onnxruntime Conv 3x3 8<->16 at 8x8 (tiny)", "onnxruntime Conv 7x1 g4 16<->16 at 6x6 (tiny grouped)"
    ]  # fmt: skip
    assert all(rate > 0 and math.isfinite(rate) for rate, _ in probes)
    monkeypatch.setattr(roofline, "_torch_peak_flops", lambda *a: (1.0, "torch.mm 512"))
    monkeypatch.setattr(roofline, "_onnxruntime_peak_flops", lambda *a: [(3.0, "onnxruntime Conv a"), (2.0, "onnxruntime MatMul b")])
    assert roofline._peak_flops(1, torch.float32, 0.0, 1) == (3.0, "onnxruntime Conv a")
    assert roofline._peak_flops(1, torch.int8, 0.0, 1) == (1.0, "torch.mm 512")  # ORT's probes are fp32 kernels


def test_conv_probe_counts_the_flops_of_its_chain_and_covers_the_violating_layers():
    from edgevision.analysis.roofline import ORT_CONV_PROBES, ConvProbe

    probe = ConvProbe("x", 8, 16, (3, 3), 10, pairs=2)  # 8->16, 16->8, 8->16, 16->8 at 10x10
    per_pair = (2 * 16 * 100 * 8 * 9 + 2 * 16 * 100) + (2 * 8 * 100 * 16 * 9 + 2 * 8 * 100)  # 2 MACs + bias + ReLU
    assert probe.flops == 2 * per_pair
    grouped = ConvProbe("g", 16, 16, (3, 3), 4, groups=4, pairs=1)
    assert grouped.flops == 2 * (2 * 16 * 16 * 4 * 9 + 2 * 16 * 16)
    shapes = {(p.in_channels, p.out_channels, p.kernel, p.size, p.groups) for p in ORT_CONV_PROBES}
    # the largest FLOP share of each network ORT beat the carm-v3 bound on (ORT profile node shapes)
    assert {(64, 192, (3, 3), 56, 1), (80, 192, (3, 3), 54, 1), (384, 1088, (1, 1), 12, 1), (128, 32, (3, 3), 56, 1), (256, 256, (3, 3), 56, 2)} <= shapes


def test_report_exports_json_and_dataframe():
    report = analyze(ev.create_model("shufflenet_v2_x0_5"), (1, 3, 64, 64), peaks=PEAKS)
    data = json.loads(report.to_json())
    assert data["total"]["macs"] == report.total.macs and "MACs" in data["units"] and "FLOPs" in data["units"]
    frame = report.to_dataframe()
    assert set(frame["row"]) == {"operator", "module"}
    assert len(frame) == len(report.operators) + len(report.modules)
    assert frame[frame["row"] == "operator"]["macs"].sum() == report.total.macs


def test_diagnostics_name_layer_and_guideline():
    class Designed(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Conv2d(32, 32, 3, padding=1)
            self.narrow_to_wide = nn.Conv2d(32, 256, 1)  # G1: 1:8 widths
            self.grouped = nn.Conv2d(256, 256, 1, groups=32)  # G2: heavy grouping

        def forward(self, x):
            return self.grouped(F.relu(self.narrow_to_wide(F.relu(self.dense(x)))))

    flags = analyze(Designed(), (1, 32, 16, 16), peaks=PEAKS).diagnostics
    assert any(f.guideline == "G1" and f.layer == "narrow_to_wide" and "32->256" in f.message for f in flags)
    assert any(f.guideline == "G2" and f.layer == "grouped" and "g=32" in f.message for f in flags)


def test_train_form_multi_branch_is_flagged_and_deploy_form_is_not():
    model = ev.create_model("mobileone_s0")
    train = analyze(model, (1, 3, 64, 64), peaks=PEAKS).diagnostics
    deploy = analyze(ev.reparameterize(model), (1, 3, 64, 64), peaks=PEAKS).diagnostics
    assert any(f.guideline == "MobileOne" for f in train)
    assert not any(f.guideline == "MobileOne" for f in deploy)
    assert any(f.guideline == "G3" for f in train)  # 4 over-parameterized branches per layer fragment the block


def test_elementwise_heavy_model_is_flagged():
    model = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Hardswish(), nn.BatchNorm2d(8).eval(), nn.SiLU(), nn.Sigmoid())
    flags = analyze(model, (1, 8, 32, 32), peaks=PEAKS).diagnostics
    (g4,) = [f for f in flags if f.guideline == "G4"]
    assert g4.layer in {"1", "2", "3", "4"} and "of the roofline time" in g4.message
    light = analyze(nn.Conv2d(64, 64, 3, padding=1), (1, 64, 32, 32), peaks=PEAKS).diagnostics
    assert not any(f.guideline == "G4" for f in light)


def test_bad_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot take an input of shape 1x4x32x32"):
        analyze(ev.create_model("resnet18"), (1, 4, 32, 32), peaks=None)
    with pytest.raises(ValueError, match="input_shape must be positive"):
        analyze(ev.create_model("resnet18"), (1, 0, 32, 32), peaks=None)


def test_without_peaks_there_are_no_bound_times():
    report = analyze(nn.Conv2d(3, 8, 3), (1, 3, 8, 8), peaks=None)
    assert report.total.bound_seconds is None and report.total.bound_by is None
    assert all(o.bound_seconds is None for o in report.operators)
    bounded = analyze(nn.Conv2d(3, 8, 3), (1, 3, 8, 8), peaks=PEAKS)
    assert bounded.total.bound_seconds > 0 and bounded.total.bound_by in ("compute", "memory")


def test_trt_vit_guidelines_report_stage_layout_and_block_order():
    """TRT-ViT (Xia et al. 2022): conv stages early / transformer late; attention first inside a hybrid block."""

    class Attention(nn.Module):
        def forward(self, x):  # (B, C, H, W) -> (B, C, H, W): softmax attention over the H*W tokens
            tokens = x.flatten(2).transpose(1, 2)
            weights = (tokens @ tokens.transpose(1, 2)).softmax(dim=-1)
            return (weights @ tokens).transpose(1, 2).reshape_as(x)

    class Hybrid(nn.Module):
        def __init__(self, conv_first: bool):
            super().__init__()
            self.conv_first, self.attention, self.conv = conv_first, Attention(), nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            return self.attention(self.conv(x)) if self.conv_first else self.conv(self.attention(x))

    def network(*stages):  # a plain model: stages "0", "1", blocks "0.0", ... (depth-2 modules)
        return nn.Sequential(*[nn.Sequential(*blocks) for blocks in stages])

    conv = lambda: nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())  # noqa: E731
    good = analyze(network([conv()], [Hybrid(False)]), (1, 8, 8, 8), peaks=PEAKS).diagnostics
    trt = [str(f) for f in good if f.guideline.startswith("TRT-ViT")]
    assert trt == [
        "[TRT-ViT stage] <model>: stage layout C T (C = convolution, T = transformer): follows convolution stages early, transformer stages late",
        "[TRT-ViT block] <model>: 1 hybrid blocks (attention and k x k convolution): all attention first",
    ]
    bad = analyze(network([Hybrid(True)], [conv()]), (1, 8, 8, 8), peaks=PEAKS).diagnostics
    flags = {(f.guideline, f.layer) for f in bad if f.guideline.startswith("TRT-ViT")}
    assert flags == {("TRT-ViT stage", ""), ("TRT-ViT stage", "1"), ("TRT-ViT block", ""), ("TRT-ViT block", "0.0")}
    assert any("does not follow" in f.message for f in bad)
    # a zoo network is read through its resolved stages: EdgeNeXt is C T T T, but its SDTA blocks run their
    # split depthwise convs before the attention (one flag each)
    edgenext = [f for f in analyze(ev.create_model("edgenext_xx_small"), (1, 3, 64, 64), peaks=PEAKS).diagnostics if f.guideline.startswith("TRT")]
    assert "stage layout C T T T" in edgenext[0].message and ": follows" in edgenext[0].message
    assert "3 hybrid blocks" in edgenext[1].message and "3 run convolution before attention" in edgenext[1].message
    assert [f.layer for f in edgenext[2:]] == ["stages.1.2", "stages.2.6", "stages.3.2"]
