"""Real-time SRGAN generator + patch discriminator, teacher distillation and DRN dual regression (issue 18)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import edgevision as ev
from edgevision.checkpoint import load, save
from edgevision.cli import main
from edgevision.counting import count_params
from edgevision.super_resolution import CARNSpec, DualDownsampler, PatchDiscriminator, SRGANSpec, SRObjectiveConfig, SRObjectives
from edgevision.super_resolution.data import make_pair
from edgevision.super_resolution.engine import SRTrainConfig, train_sr
from edgevision.super_resolution.objectives import matched_taps, relativistic_discriminator_loss, relativistic_generator_loss

TINY = SRGANSpec(name="tiny_srgan", scale=2, scales=(2,), channels=8, blocks=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def _srgan_params(c: int, blocks: int, scale_steps: int) -> int:
    conv3 = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    return conv3(3, c) + blocks * 2 * conv3(c, c) + conv3(c, c) + scale_steps * conv3(c, 4 * c) + conv3(c, 3)


@pytest.mark.parametrize("name, channels, blocks, expected", [("realtime_srgan", 32, 4, 158_979), ("realtime_srgan_large", 64, 16, 1_517_571)])
def test_srgan_parameter_counts_match_the_stated_configuration(name, channels, blocks, expected):
    spec = ev.registry.get_spec(name)
    assert (spec.channels, spec.blocks, spec.scale) == (channels, blocks, 4)
    model = spec.build()
    assert count_params(model) == _srgan_params(channels, blocks, 2) == expected
    # quantization-friendly: no BatchNorm, only ReLU-family activations, output clipped to [0, 1]
    kinds = {type(m) for m in model.modules()}
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds) and nn.PReLU not in kinds
    out = model(torch.randn(1, 3, 6, 5) * 4)
    assert out.shape == (1, 3, 24, 20) and out.min() >= 0 and out.max() <= 1


def test_dual_downsampler_maps_sr_back_to_lr_size_with_the_releases_layers():
    for scale in (2, 3, 4):
        assert DualDownsampler(scale)(torch.rand(2, 3, 12 * scale, 6 * scale)).shape == (2, 3, 12, 6)
    # x4: conv3x3 s2 3->16, conv3x3 s2 16->16, conv3x3 16->3, no biases (guoyongcs/DRN DownBlock)
    assert count_params(DualDownsampler(4)) == 9 * (3 * 16 + 16 * 16 + 16 * 3)
    assert PatchDiscriminator()(torch.rand(2, 3, 32, 40)).shape == (2, 1, 4, 5)


def test_relativistic_losses_equal_the_esrgan_formula():
    real, fake = torch.tensor([1.5, -0.5, 0.25]), torch.tensor([0.5, 2.0, -1.0])
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731  BCE(z, 1) = softplus(-z), BCE(z, 0) = softplus(z)
    r, f = real.numpy().astype(np.float64), fake.numpy().astype(np.float64)
    generator = (softplus(r - f.mean()).mean() + softplus(-(f - r.mean())).mean()) / 2
    discriminator = (softplus(-(r - f.mean())).mean() + softplus(f - r.mean()).mean()) / 2
    assert relativistic_generator_loss(real, fake).item() == pytest.approx(generator, rel=1e-6)
    assert relativistic_discriminator_loss(real, fake).item() == pytest.approx(discriminator, rel=1e-6)


def _batch(scale=2, n=2, size=8):
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 3, size * scale, size * scale, generator=generator)
    return torch.nn.functional.avg_pool2d(hr, scale), hr


def _grads(module: nn.Module) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]


def test_gan_step_moves_only_the_network_it_trains():
    torch.manual_seed(0)
    model = TINY.build()
    objectives = SRObjectives(model, 2, SRObjectiveConfig(gan_weight=5e-3))
    lr, hr = _batch()
    loss, terms, sr = objectives.generator_loss(model, lr, hr)
    assert torch.isfinite(loss) and set(terms) == {"pixel", "gan"}
    loss.backward()
    assert all(_grads(model)) and not any(_grads(objectives.discriminator))
    model.zero_grad(set_to_none=True)
    objectives.discriminator_loss(sr, hr).backward()
    assert all(_grads(objectives.discriminator)) and not any(_grads(model))
    # the discriminator is training-only: the generator's state (checkpoint, export) never holds it
    assert not any("discriminator" in key for key in model.state_dict()) and count_params(model) == _srgan_params(8, 2, 1)
    # before gan_start the generator trains on pixels only
    early = SRObjectives(model, 2, SRObjectiveConfig(gan_weight=5e-3, gan_start=0.5))
    assert "gan" not in early.generator_loss(model, lr, hr, progress=0.25)[1]


def test_distillation_matches_layers_by_depth_and_trains_student_and_adapters_only():
    assert matched_taps(4, 16) == [(0, 3), (1, 7), (2, 11), (3, 15)]
    assert matched_taps(4, 3) == [(0, 0), (1, 1), (2, 1), (3, 2)]
    torch.manual_seed(0)
    lr, hr = _batch()
    # a student identical to its teacher with identity adapters has zero distillation terms: the hooks read the matched layers
    teacher = TINY.build().eval()
    twin = copy.deepcopy(teacher)
    objectives = SRObjectives(twin, 2, SRObjectiveConfig(), teacher=teacher)
    for adapter in objectives.adapters:
        nn.init.dirac_(adapter.weight)
        nn.init.zeros_(adapter.bias)
    _, terms, _ = objectives.generator_loss(twin.eval(), lr, hr)
    assert terms["distill"] == 0 and terms["feature"] == pytest.approx(0, abs=1e-7)
    # a narrower, shallower student distilled from a CARN teacher: 1x1 adapters 8 -> 16 channels at 2 matched taps
    carn_teacher = CARNSpec(name="t", scale=2, scales=(2,), channels=16, blocks=2, units=1).build()
    student = TINY.build()
    objectives = SRObjectives(student, 2, SRObjectiveConfig(), teacher=carn_teacher)
    assert objectives.pairs == [(0, 0), (1, 1)] and [a.weight.shape[:2] for a in objectives.adapters] == [(16, 8), (16, 8)]
    loss, terms, _ = objectives.generator_loss(student, lr, hr)
    loss.backward()
    assert set(terms) == {"pixel", "distill", "feature"} and all(np.isfinite(list(terms.values())))
    assert all(_grads(student)) and all(_grads(objectives.adapters)) and not any(p.grad is not None for p in carn_teacher.parameters())
    assert not any(k.startswith("_teacher") for k in objectives.state_dict())  # the teacher is not saved with the run's state


def test_dual_step_trains_the_model_and_its_downsampler_with_lambda():
    torch.manual_seed(0)
    model = TINY.build()
    objectives = SRObjectives(model, 2, SRObjectiveConfig(dual_weight=0.1))
    lr, hr = _batch()
    loss, terms, _ = objectives.generator_loss(model, lr, hr)
    assert loss.item() == pytest.approx(terms["pixel"] + 0.1 * terms["dual"], rel=1e-6)
    loss.backward()
    assert all(_grads(model)) and all(_grads(objectives.dual))


def test_training_with_every_objective_resumes_to_the_same_weights():
    torch.manual_seed(0)
    pairs = [make_pair(f"p{i}", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)), 2) for i in range(2)]
    config = SRTrainConfig(steps=4, batch_size=2, patch_size=8)
    teacher = CARNSpec(name="t", scale=2, scales=(2,), channels=8, blocks=1, units=1).build()
    objective_config = SRObjectiveConfig(gan_weight=5e-3, dual_weight=0.1)

    def fresh():
        torch.manual_seed(1)
        model = TINY.build()
        return model, SRObjectives(model, 2, objective_config, teacher=teacher)

    model, objectives = fresh()
    straight = train_sr(model, pairs, 2, config, objectives=objectives)
    assert np.isfinite(straight["final_loss"]) and {"pixel", "distill", "feature", "dual", "gan", "discriminator"} <= set(straight["terms"])
    first_model, first_objectives = fresh()
    half = train_sr(first_model, pairs, 2, config, objectives=first_objectives, stop_step=2)
    resumed_model, resumed_objectives = fresh()  # after a kill: weights and states reloaded from disk
    resumed_model.load_state_dict(first_model.state_dict())
    resumed_objectives.load_state_dict(first_objectives.state_dict())
    train_sr(resumed_model, pairs, 2, config, objectives=resumed_objectives, start_step=2, optimizer_state=half["optimizer"],
             discriminator_optimizer_state=half["discriminator_optimizer"])
    for a, b in zip(model.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_generator_exports_with_dynamic_size_and_without_the_discriminator(tmp_path):
    import onnx

    from edgevision.export import export_onnx

    torch.manual_seed(0)
    model = ev.create_model("realtime_srgan").eval()
    report = export_onnx(model, tmp_path / "g.onnx", (3, 16, 16), dynamic_hw=True)
    assert report.dynamic_hw and max(report.max_relative_error.values()) < 1e-4
    graph = onnx.load(str(tmp_path / "g.onnx")).graph
    stored = sum(int(np.prod(t.dims)) for t in graph.initializer if t.dims)  # scalars: the clip bounds
    # the generator's weights and at most its mean-shift buffers (the simplifier may fold them), nothing else
    assert count_params(model) <= stored <= count_params(model) + sum(b.numel() for b in model.buffers())


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_cli_trains_a_student_from_a_teacher_with_gan_and_dual_terms(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(2):
        _png(tmp_path / "data" / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    common = ["--task", "super-resolution", "--scale", "2", "--data", str(tmp_path / "data"), "--epochs", "1", "--steps-per-epoch", "1",
              "--batch-size", "2", "--patch-size", "8", "--no-progress"]
    teacher_spec = CARNSpec(name="carn", scale=2, scales=(2,), channels=8, blocks=1, units=1)
    teacher = save(teacher_spec.build(), tmp_path / "teacher.safetensors", {"task": "super-resolution", "scale": 2})
    out = tmp_path / "student"
    assert main(["train", "realtime_srgan", *common, "--teacher", str(teacher), "--gan-weight", "0.005", "--dual", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"]["loss"] == "l1+distill+dual+gan" and metrics["recipe"]["objectives"]["dual_weight"] == 0.1
    assert {"distill", "feature", "dual", "gan", "discriminator"} <= set(metrics["final_terms"])
    student = load(out / "model.safetensors")
    assert count_params(student) == count_params(ev.create_model("realtime_srgan").spec.with_scale(2).build())
    # training states are named for the step last.safetensors holds (here step 1), older steps' removed
    assert (out / "objectives.step1.safetensors").is_file() and (out / "discriminator_optimizer.step1.pt").is_file()
    assert sorted(path.name for path in out.glob("*.step*")) == ["discriminator_optimizer.step1.pt", "objectives.step1.safetensors",
                                                                  "optimizer.step1.pt"]
    # a kill after a next step's states but before its last.safetensors: the rerun resumes with step 1's states, the
    # ones of the weights it reloads (before, one optimizer.pt could already hold the newer step's state)
    for name in ("optimizer.step2.pt", "discriminator_optimizer.step2.pt", "objectives.step2.safetensors"):
        (out / name).write_bytes(b"states of a step whose weights never landed")  # unreadable if it were read
    (out / "model.safetensors").unlink()
    capsys.readouterr()
    assert main(["train", "realtime_srgan", *common, "--teacher", str(teacher), "--gan-weight", "0.005", "--dual", "--out", str(out)]) == 0
    assert "resuming" in capsys.readouterr().err and (out / "model.safetensors").is_file()
    capsys.readouterr()
    x4_teacher = save(CARNSpec(name="carn", scale=4, scales=(4,), channels=8, blocks=1, units=1).build(), tmp_path / "t4.safetensors", {"task": "super-resolution"})
    for teacher_arg, message in ((str(x4_teacher), "x4 model but the student trains at x2"), (str(tmp_path / "none.safetensors"), "--teacher"),
                                 ("carn", "must be a trained super-resolution checkpoint")):
        assert main(["train", "realtime_srgan", *common, "--teacher", teacher_arg, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
