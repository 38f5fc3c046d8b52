"""All-in-One: one weight set, K ratios as sliced dense subnetworks; slicing equals masking, counts equal shrink(),
export parity, set_ratio round trips, training reaches every ratio, the DVFS policy (fake timer), the CLI (fake timer)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from helpers import randomize_batchnorm

import edgevision as ev
from edgevision.prune import ChannelGroup, groups_of, importance, shrink, widths_for_ratio
from edgevision.prune.allinone import AllInOne, AllInOneError, check_ratios, nested_keep, ranking
from edgevision.prune.dvfs import Speed, choose, latency_grid, policy, speeds

RATIOS = (0.25, 0.5, 0.75)


def _model(name: str = "resnet18", width: float | None = 0.25) -> ev.Network:
    torch.manual_seed(0)
    spec = ev.get_spec(name).with_classes(10)
    if width is not None:
        spec = spec.with_width(width)
    return randomize_batchnorm(ev.build(ev.resolve(spec, input_size=32)).eval())


@pytest.fixture(scope="module")
def source() -> ev.Network:
    return _model()


@pytest.fixture()
def allinone(source) -> AllInOne:
    return AllInOne.from_model(source, RATIOS).eval()


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float = 1e-5) -> bool:
    return float((a - b).abs().max()) <= tolerance * (float(b.abs().max()) + 1e-6)


def test_each_ratio_is_a_sliced_dense_network_equal_to_its_masked_form(source, allinone):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert _close(allinone.set_ratio(0.0)(x), source(x))  # ordering the channels by importance keeps the function
        for ratio in RATIOS:
            subnet, masked = allinone.subnet(ratio), allinone.masked(ratio)
            sliced = subnet(x)
            assert _close(masked(x), sliced)
            assert not _close(masked(x), source(x), 1e-2)  # the mask removes something
            assert _close(allinone.set_ratio(ratio)(x), sliced) and _close(allinone.forward_ratio(x, ratio), sliced)
            # real smaller convolutions, not masked ones: the first conv has the ratio's width
            first = next(m for m in subnet.modules() if isinstance(m, torch.nn.Conv2d))
            group = next(iter(allinone.groups.values()))
            assert first.out_channels == allinone.widths(ratio)[group.name] < group.width
            assert sum(p.numel() for p in subnet.parameters()) < sum(p.numel() for p in allinone.full.parameters())


def test_each_ratio_counts_as_a_shrink_of_the_same_widths_and_the_masks_nest(source, allinone):
    prunable = [g for g in groups_of(source) if g.prunable]
    for ratio in RATIOS:
        reference = shrink(source, widths_for_ratio(prunable, ratio))
        subnet = allinone.subnet(ratio)
        assert ev.count_params(subnet) == ev.count_params(reference)
        assert ev.count_macs(subnet, 32) == ev.count_macs(reference, 32)
        assert subnet.spec == reference.spec  # the same widths, the same ordinary spec
    for narrow, wide in zip(allinone.ratios[:0:-1], allinone.ratios[-2::-1]):  # every narrower keep is inside the wider one
        for name, keep in allinone.members[narrow].keeps.items():
            wider = allinone.members[wide].keeps.get(name, torch.arange(allinone.groups[name].width))
            assert set(keep.tolist()) <= set(wider.tolist())
    # ranked once: in the ordered network each group's channels come most important first
    scores = importance(allinone.full, "l1", list(allinone.groups.values()))
    for name, score in scores.items():
        assert torch.all(score[:-1] >= score[1:] - 1e-4 * score.max()), name


def test_ranking_and_nested_keeps_respect_grouped_and_segmented_layouts():
    scores = torch.tensor([1.0, 5.0, 3.0, 2.0, 9.0, 4.0, 7.0, 8.0])
    plain = ChannelGroup(name="g", members=(), width=8)
    assert ranking(plain, scores).tolist() == [4, 7, 6, 1, 5, 2, 3, 0]
    grouped = ChannelGroup(name="g", members=(), width=8, step=2)  # two conv groups of 4: sorted inside each
    assert ranking(grouped, scores).tolist() == [1, 2, 3, 0, 4, 7, 6, 5]
    assert nested_keep(grouped, 4).tolist() == [0, 1, 4, 5]
    segmented = ChannelGroup(name="g", members=(), width=8, tile=2)  # units scored by both parts: 10, 9, 10, 10
    assert ranking(segmented, scores).tolist() == [0, 2, 3, 1, 4, 6, 7, 5]
    assert nested_keep(segmented, 4).tolist() == [0, 1, 4, 5]


def test_set_ratio_round_trips_and_follows_training(allinone):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        half = allinone.set_ratio(0.5)(x)
        allinone.set_ratio(0.0)(x)
        assert torch.equal(allinone.set_ratio(0.5)(x), half)
    optimizer = torch.optim.SGD(allinone.parameters(), lr=0.1, momentum=0.9)
    stats_before = {k: v.clone() for k, v in allinone.stats[0.75].items()}
    losses = allinone.train_step(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)), optimizer)
    assert list(losses) == list(allinone.ratios)  # every ratio trained, widest first
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    # one weight set: the module's parameters are the full network's, nothing per ratio
    assert sum(p.numel() for p in allinone.parameters()) == sum(p.numel() for p in allinone.full.parameters())
    assert any(not torch.equal(v, stats_before[k]) for k, v in allinone.stats[0.75].items())  # private BN statistics moved
    allinone.eval()
    with torch.no_grad():
        after = allinone.set_ratio(0.5)(x)
        assert not torch.equal(after, half)  # the cached subnetwork was refreshed from the updated weights
        assert _close(after, allinone.subnet(0.5)(x)) and _close(after, allinone.masked(0.5)(x))
    drawn = allinone.sandwich(sample=1, generator=torch.Generator().manual_seed(0))
    assert (drawn[0], drawn[-1], len(drawn)) == (0.0, 0.75, 3) and drawn[1] in (0.25, 0.5)


def test_saved_weight_set_loads_and_each_subnet_is_an_ordinary_spec(allinone, tmp_path):
    allinone.recalibrate([torch.randn(8, 3, 32, 32) for _ in range(2)])
    allinone.save(tmp_path / "aio")
    loaded = AllInOne.load(tmp_path / "aio")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for ratio in allinone.ratios:
            assert torch.equal(loaded.set_ratio(ratio)(x), allinone.set_ratio(ratio)(x))
        plain = ev.load(tmp_path / "aio" / "model.safetensors")  # the one weight set is an ordinary network
        assert torch.equal(plain(x), allinone.set_ratio(0.0)(x))
        ev.save(allinone.subnet(0.5), tmp_path / "half.safetensors")
        assert _close(ev.load(tmp_path / "half.safetensors")(x), allinone.set_ratio(0.5)(x))


def test_each_ratio_exports_alone_and_matches_pytorch(allinone, tmp_path):
    import onnxruntime

    x = torch.randn(1, 3, 32, 32)
    for ratio in (0.0, 0.75):
        path = tmp_path / f"r{ratio:g}.onnx"
        allinone.export_ratio(ratio, path, (1, 3, 32, 32), simplify=False)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            assert _close(torch.from_numpy(onnx_out), allinone.set_ratio(ratio)(x), 1e-4)


def test_segmented_ghost_groups_slice_like_they_mask():
    model = _model("ghostnet_050", None)
    allinone = AllInOne.from_model(model, (0.5,)).eval()
    assert any(g.tile > 1 for g in allinone.groups.values())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _close(allinone.set_ratio(0.0)(x), model(x))
        assert _close(allinone.masked(0.5)(x), allinone.set_ratio(0.5)(x))


def test_bad_ratios_and_unsliceable_models_are_refused(source, monkeypatch):
    for ratios, message in (([0.0, 0.5], "must be in (0, 1)"), ([1.0], "must be in (0, 1)"), ([0.5, 0.5], "given twice"),
                            ([], "at least one"), ([float("nan")], "must be in (0, 1)")):
        with pytest.raises(AllInOneError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_ratios(ratios)
    assert check_ratios([0.5, 0.25]) == (0.25, 0.5)
    with pytest.raises(AllInOneError, match="same widths"):
        AllInOne.from_model(source, (0.001,))  # rounds every group back to its full width
    import edgevision.prune.allinone as module

    monkeypatch.setattr(module, "groups_of", lambda model: [ChannelGroup("stem.0.out", (), 8, prunable=False, reason="a channel shuffle")])
    with pytest.raises(AllInOneError, match="no channel group that can be sliced .a channel shuffle."):
        AllInOne.from_model(source, (0.5,))


def test_policy_picks_the_widest_ratio_under_target_as_the_machine_slows():
    macs = {0.0: 100.0, 0.25: 60.0, 0.5: 30.0, 0.75: 10.0}
    slow = speeds([2, 1], [1.0, 0.5])
    assert [s.name for s in slow] == ["2 threads", "2 threads, 50% CPU", "1 thread", "1 thread, 50% CPU"]

    def fake_timer(network, speed: Speed) -> float:  # ms = MACs / (threads x quota): a machine that slows down
        return network / (speed.threads * speed.quota)

    grid = latency_grid(macs, slow, fake_timer)
    assert grid["1 thread, 50% CPU"][0.0] == 200.0
    chosen = policy(grid, target_ms=50.0)
    assert [chosen[s.name].ratio for s in slow] == [0.0, 0.5, 0.5, 0.75]  # e.g. at 1 thread: 0.25 takes 60 ms, 0.5 30 ms
    assert [c.ratio for c in policy(grid, target_ms=65.0).values()] == [0.0, 0.25, 0.25, 0.5]
    assert all(c.meets_target for c in chosen.values())
    missed = choose({0.0: 10.0, 0.5: 6.0, 0.75: 6.0}, target_ms=5.0)
    assert (missed.ratio, missed.meets_target) == (0.5, False)  # none fits: the fastest (the wider of a tie)
    with pytest.raises(ValueError, match="positive"):
        choose(macs, 0.0)
    with pytest.raises(ValueError, match="quota"):
        Speed(1, 1.5)


def test_cpu_quota_throttles_and_always_leaves_the_process_running():
    import time

    from edgevision.prune.dvfs import cpu_quota

    started = time.process_time()
    with cpu_quota(0.5):
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:  # busy: stopped about half of these 100 ms (not asserted: timing)
            pass
    assert time.process_time() > started  # back here and running after the child is gone
    with cpu_quota(1.0):  # a full quota starts no child
        pass


def _fake_measure(calls):
    def measure(network, shape, **options):
        calls.append(options["threads"])
        ms = ev.count_macs(network, shape[-1], shape[0]) / 1e6 / (options["threads"])
        return SimpleNamespace(median_ms=ms, mean_ms=ms)

    return measure


def test_cli_trains_measures_chooses_and_resumes(tmp_path, monkeypatch, capsys):
    import edgevision.latency as latency
    from edgevision.cli import main

    import numpy as np

    calls: list[int] = []
    generator = np.random.default_rng(0)  # a tiny data set: 24 grey 16x16 images of 3 classes
    np.savez(tmp_path / "tiny.npz", images=generator.integers(0, 255, (24, 16, 16), dtype=np.uint8), labels=np.arange(24) % 3)
    narrow = ev.get_spec("resnet18").with_classes(3).with_input_channels(1).with_width(0.25)  # still named resnet18: a quarter of the weights
    checkpoint = ev.save(ev.build(ev.resolve(narrow, input_size=32)), tmp_path / "dense.safetensors")
    argv = ["allinone", "resnet18", "--checkpoint", str(checkpoint), "--data", f"npz:{tmp_path / 'tiny.npz'}", "--ratios", "0.5", "0.75",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--threads", "2", "1", "--out", str(tmp_path / "out")]

    def killed(network, shape, **options):  # the run dies after three measurements
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _fake_measure(calls)(network, shape, **options)

    monkeypatch.setattr(latency, "measure", killed)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert json.loads((tmp_path / "out" / ".allinone-resume" / "state.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(latency, "measure", _fake_measure(calls))
    assert main(argv) == 0
    assert len(calls) == 6  # 3 ratios x 2 speeds, none measured twice
    report = json.loads((tmp_path / "out" / "allinone.json").read_text())
    assert [r["ratio"] for r in report["ratios"]] == [0.0, 0.5, 0.75]
    assert report["target_ms"] == report["ratios"][0]["median_ms"]["2 threads"]
    assert [(c["speed"], c["ratio"]) for c in report["choices"]] == [("2 threads", 0.0), ("1 thread", 0.5)]
    assert report["ratios"][1]["params"] < report["ratios"][0]["params"] and 0 <= report["ratios"][2]["accuracy"] <= 1
    assert not (tmp_path / "out" / ".allinone-resume").exists()
    assert len(AllInOne.load(tmp_path / "out").ratios) == 3
    bad = [(["--ratios", "0.5", "0.5"], "given twice"), (["--ratios", "1.5"], "must be in (0, 1)"), (["--quota", "2"], "--quota")]
    for extra, message in bad:
        capsys.readouterr()
        args = ["allinone", "resnet18", "--ratios", "0.5", "--out", str(tmp_path / "bad")] + extra
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
