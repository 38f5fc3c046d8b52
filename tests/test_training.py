"""The recipe's tricks each change what they should; determinism; transfer learning; the train CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgevision as ev
from edgevision.cli import main
from edgevision.training import Recipe, get_recipe, learning_rate, parameter_groups, seed_everything, train
from edgevision.training.ema import ModelEMA
from edgevision.training.loop import soft_target_loss, soft_targets
from edgevision.training.optim import make_optimizer
from edgevision.training.transfer import new_head_from
from edgevision.training.zero_init import zero_init_residual_norms
from training_helpers import single_thread, tiny_model, toy_splits  # noqa: F401  (single_thread: autouse fixture)

QUICK = Recipe(name="quick", epochs=1, batch_size=8, lr=0.05, crop_padding=1)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_different_seed_different():
    data = toy_splits()
    results = []
    for seed in (1, 1, 2):
        seed_everything(seed)
        model = ev.build(tiny_model(seed).spec)
        recipe = QUICK.replace(mixup_alpha=0.2, label_smoothing=0.1)
        results.append(_weights(train(model, data, recipe, resolution=16, device="cpu", seed=seed, max_steps=3).model))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert not all(torch.equal(results[0][k], results[2][k]) for k in results[0])


def test_training_learns_the_toy_task_and_logs(tmp_path):
    data = toy_splits(count=96)
    result = train(tiny_model(), data, QUICK.replace(epochs=4, schedule="cosine"), resolution=16, device="cpu", out_dir=tmp_path)
    assert result.final["val_top1"] >= 0.9  # class = bright half: easy once trained
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,step,lr,train_loss,train_top1,train_images_per_second")
    assert result.final["train_images_per_second_overall"] > 0


def test_no_bias_decay_groups_and_effect():
    model = tiny_model()
    groups = parameter_groups(model, 0.1, no_bias_decay=True)
    decayed, exempt = set(groups[0]["names"]), set(groups[1]["names"])
    assert groups[1]["weight_decay"] == 0.0
    assert all(n.endswith("conv.weight") or n == "head.classifier.weight" for n in decayed)
    assert "head.classifier.bias" in exempt and "stem.0.norm.weight" in exempt and "stem.0.norm.bias" in exempt
    assert len(parameter_groups(model, 0.1, no_bias_decay=False)) == 1
    # one SGD step with zero gradients: only weight decay moves parameters
    before = _weights(model)
    optimizer = make_optimizer(model, Recipe(lr=0.5, weight_decay=0.1, no_bias_decay=True, momentum=0.0))
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    after = dict(model.named_parameters())
    assert torch.allclose(after["stem.0.conv.weight"], before["stem.0.conv.weight"] * (1 - 0.5 * 0.1))
    assert torch.equal(after["stem.0.norm.weight"], before["stem.0.norm.weight"])
    assert torch.equal(after["head.classifier.bias"], before["head.classifier.bias"])


def test_zero_init_makes_residual_blocks_identity():
    model = tiny_model()
    zeroed = zero_init_residual_norms(model)
    assert zeroed == ["stages.0.1.project.norm.weight"]  # the stride-2 block has no shortcut
    block = model.stages[0][1]
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(block(x), x)
    assert not torch.all(model.stages[0][0].project.norm.weight == 0)  # non-residual block untouched


@pytest.mark.parametrize("name, count", [("mobilenetv2_050", 10), ("ghostnet_050", 11), ("resnet18", 8), ("shufflenet_v2_x0_5", 0), ("wrn_28_10", 12), ("xception", 12)])
def test_zero_init_finds_the_zoo_residual_blocks(name, count):
    model = ev.create_model(name, num_classes=2)
    assert len(zero_init_residual_norms(model)) == count


def test_recipe_switches_zero_init_only_for_fresh_models():
    data = toy_splits()
    assert train(tiny_model(), data, QUICK.replace(zero_init_residual=True), resolution=16, device="cpu", max_steps=1).zeroed_norms
    assert not train(tiny_model(), data, QUICK.replace(zero_init_residual=True), resolution=16, device="cpu", max_steps=1, fresh_init=False).zeroed_norms


def test_warmup_then_cosine_and_step_values():
    lrs = [learning_rate(s, 100, 0.1, warmup_steps=10, schedule="cosine") for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[4] == pytest.approx(0.05) and lrs[9] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.1)  # cosine starts at the peak
    assert lrs[55] == pytest.approx(0.05)  # half-way through the cosine
    assert lrs[99] < 1e-3 and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    steps = [learning_rate(s, 100, 0.1, schedule="step") for s in (0, 49, 50, 74, 75, 99)]
    assert steps == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_label_smoothing_loss_value():
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    targets = soft_targets(torch.tensor([0]), 4, 0.1)
    assert targets[0].tolist() == pytest.approx([0.925, 0.025, 0.025, 0.025])
    log_p = F.log_softmax(logits, 1)[0]
    expected = -(0.925 * log_p[0] + 0.025 * (log_p[1] + log_p[2] + log_p[3]))
    assert soft_target_loss(logits, targets).item() == pytest.approx(expected.item())
    assert soft_target_loss(logits, targets).item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1).item())
    assert soft_target_loss(logits, soft_targets(torch.tensor([0]), 4, 0.0)).item() < expected.item()


def test_ema_follows_the_decay_formula():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # warm-up decay min(0.9, 1/10) = 0.1: ema = 0.1 * 0 + 0.9 * 1
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.updates = 1000
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model)  # decay 0.9: 0.9 * 0.9 + 0.1 * 2
    assert ema.module.weight.item() == pytest.approx(0.9 * 0.9 + 0.1 * 2.0)


def test_ema_recipe_returns_averaged_weights():
    data = toy_splits()
    seed_everything(0)
    plain = train(tiny_model(), data, QUICK, resolution=16, device="cpu", max_steps=4).model
    averaged = train(tiny_model(), data, QUICK.replace(ema_decay=0.99), resolution=16, device="cpu", max_steps=4).model
    w_plain, w_ema, w_init = plain.head.classifier.weight, averaged.head.classifier.weight, tiny_model().head.classifier.weight
    assert not torch.equal(w_plain, w_ema)
    assert (w_ema - w_init).norm() < (w_plain - w_init).norm()  # the average lags behind the trained weights


def test_gradient_clipping_bounds_the_step():
    data = toy_splits()
    start = tiny_model()
    recipe = QUICK.replace(weight_decay=0.0, momentum=0.0, crop_padding=0)
    clipped = train(tiny_model(), data, recipe.replace(grad_clip_norm=1e-6), resolution=16, device="cpu", max_steps=1).model
    free = train(tiny_model(), data, recipe, resolution=16, device="cpu", max_steps=1).model
    moved = lambda m: math.sqrt(sum(((p - q) ** 2).sum().item() for p, q in zip(m.parameters(), start.parameters())))  # noqa: E731
    assert moved(clipped) <= 0.05 * 1e-6 * 1.001  # lr x clip norm
    assert moved(free) > 1e-3


def test_recipe_validation_and_scaling():
    with pytest.raises(ValueError, match="Recipe.optimizer must be 'sgd' or 'adamw', got 'lamb'"):
        Recipe(optimizer="lamb")
    with pytest.raises(ValueError, match="Recipe.nesterov"):
        Recipe(optimizer="adamw", nesterov=True)
    tricks = get_recipe("tricks")
    assert tricks.with_batch_size(256).lr == pytest.approx(0.1)  # linear scaling: 0.025 at 64
    assert Recipe.from_json(tricks.to_json()) == tricks
    basic = get_recipe("basic")
    assert basic.schedule == "step" and not basic.zero_init_residual and tricks.label_smoothing == 0.1
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("fancy")


def test_adamw_optimizer_is_decoupled_adamw_and_trains():
    # one step by hand: Adam's first update is lr * g / (|g| + eps) = lr * sign(g); the decay is decoupled
    model = tiny_model()
    optimizer = make_optimizer(model, Recipe(optimizer="adamw", lr=0.01, weight_decay=0.1, no_bias_decay=True))
    assert isinstance(optimizer, torch.optim.AdamW)
    before = _weights(model)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 2.0)
    optimizer.step()
    after = dict(model.named_parameters())
    weight, bias = "stem.0.conv.weight", "head.classifier.bias"
    assert torch.allclose(after[weight], before[weight] * (1 - 0.01 * 0.1) - 0.01, atol=1e-6)
    assert torch.allclose(after[bias], before[bias] - 0.01, atol=1e-6)  # no decay on biases
    # and through the training loop: the weights move and the loss stays finite
    model = tiny_model()
    start = _weights(model)
    result = train(model, toy_splits(), QUICK.replace(optimizer="adamw", lr=1e-3), resolution=16, device="cpu", max_steps=2)
    assert math.isfinite(result.final["train_loss"])
    assert not torch.equal(dict(result.model.named_parameters())[weight].detach(), start[weight])


def test_transfer_full_and_frozen():
    source = tiny_model(seed=3)
    full = new_head_from(source, num_classes=5, mode="full")
    assert full.head.classifier.out_features == 5
    assert torch.equal(full.stem[0].conv.weight, source.stem[0].conv.weight)
    frozen = new_head_from(source, num_classes=5, mode="frozen")
    trainable = [n for n, p in frozen.named_parameters() if p.requires_grad]
    assert trainable == ["head.classifier.weight", "head.classifier.bias"]
    stats_before = frozen.stem[0].norm.running_mean.clone()
    backbone_before = frozen.stem[0].conv.weight.clone()
    result = train(frozen, toy_splits(num_classes=5, count=60), QUICK.replace(weight_decay=0.0), resolution=16, device="cpu", max_steps=3, fresh_init=False)
    model = result.model
    assert not model.stem[0].norm.training or not model.training  # frozen BN stays in eval mode
    assert torch.equal(model.stem[0].norm.running_mean, stats_before)
    assert torch.equal(model.stem[0].conv.weight, backbone_before)
    with pytest.raises(ValueError, match="deploy form"):
        new_head_from(ev.reparameterize(source), 5)


def test_train_cli_end_to_end_then_fine_tune(tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, (24, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "toy.npz", images=images, labels=np.arange(24) % 2)
    out = tmp_path / "run"
    code = main(["train", "shufflenet_v2_x0_5", "--data", f"npz:{tmp_path / 'toy.npz'}", "--epochs", "1", "--batch-size", "8",
                 "--out", str(out), "--no-progress", "--deploy"])
    assert code == 0
    assert "val top-1" in capsys.readouterr().out
    metadata = ev.checkpoint.read_metadata(out / "model.safetensors")
    assert metadata["dataset"].startswith("npz:") and metadata["recipe"]["name"] == "tricks"
    assert metadata["preprocess"]["resolution"] == 32 and (out / "model.deploy.safetensors").is_file()
    tuned = tmp_path / "tuned"
    code = main(["train", str(out / "model.safetensors"), "--data", f"npz:{tmp_path / 'toy.npz'}", "--epochs", "1",
                 "--batch-size", "8", "--out", str(tuned), "--no-progress", "--freeze-backbone"])
    assert code == 0
    assert ev.checkpoint.read_metadata(tuned / "model.safetensors")["transfer"]["mode"] == "frozen"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "resnet1000"], "unknown model 'resnet1000'"),
        (["train", "mobilenetv2_050", "--data", "imagenet:/x"], "unknown dataset 'imagenet:/x'"),
        (["train", "mobilenetv2_050", "--data", "cifar10:/nonexistent"], "does not exist"),
        (["train", "mobilenetv2_050", "--epochs", "0"], "--epochs must be >= 1"),
        (["train", "mobilenetv2_050", "--freeze-backbone", "--data", "npz:/nonexistent.npz"], "does not exist"),
        (["train", "missing.safetensors", "--data", "npz:{npz}"], "checkpoint 'missing.safetensors' does not exist"),
        (["train", "mobilenetv2_050", "--recipe", "fancy"], "invalid choice: 'fancy'"),
    ],
)
def test_train_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    np.savez(tmp_path / "t.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, 0, 1]))
    argv = [a.replace("{npz}", str(tmp_path / "t.npz")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_bf16_autocast_and_channels_last():
    from edgevision.evaluation.predict import autocast_context

    result = train(tiny_model(), toy_splits(), QUICK, resolution=16, max_steps=2)  # default device: the GPU
    model = result.model
    assert next(model.parameters()).is_cuda and math.isfinite(result.final["train_loss"])
    assert model.stem[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast_context(torch.device("cuda")):
        assert model(torch.randn(2, 1, 16, 16, device="cuda")).dtype == torch.bfloat16


def test_cpu_has_no_autocast():
    from edgevision.evaluation.predict import autocast_context

    with autocast_context(torch.device("cpu")):
        assert tiny_model()(torch.randn(1, 1, 16, 16)).dtype == torch.float32
