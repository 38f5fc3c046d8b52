"""Metrics, calibration and corruptions on inputs with known answers; the eval CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgevision as ev
from edgevision.cli import main
from edgevision.evaluation import (
    calibration,
    confusion_matrix,
    corrupt,
    corruption_accuracy,
    fbeta_score,
    per_class_accuracy,
    reliability_diagram,
    topk_accuracy,
)
from edgevision.evaluation.corruptions import gaussian_blur, jpeg_quantize
from training_helpers import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)


def test_topk_per_class_and_confusion():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    labels = torch.tensor([0, 2, 1, 1])
    assert topk_accuracy(logits, labels, (1, 2)) == {1: 0.25, 2: 0.75}
    assert confusion_matrix(logits.argmax(1), labels, 3).tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
    assert per_class_accuracy(logits, labels).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="top-5 needs at least 5 classes"):
        topk_accuracy(logits, labels, (5,))


def test_ece_on_known_inputs():
    # confident and always right: perfectly calibrated
    probabilities = torch.eye(4)
    assert calibration(probabilities, torch.arange(4)).ece == pytest.approx(0.0)
    # confidence 0.75 everywhere, 6 of 10 right: ECE = |0.6 - 0.75| = 0.15, all in one bin
    probabilities = torch.tensor([[0.75, 0.25]] * 10)
    labels = torch.tensor([0] * 6 + [1] * 4)
    report = calibration(probabilities, labels, bins=10)
    assert report.ece == pytest.approx(0.15)
    assert sum(report.bin_counts) == 10 and report.bin_counts[7] == 10  # (0.7, 0.8]
    assert report.bin_accuracy[7] == pytest.approx(0.6) and report.bin_confidence[7] == pytest.approx(0.75)
    # two bins: 0.9 confident 100% right (gap 0.1, weight 0.5), 0.6 confident 50% right (gap 0.1, weight 0.5)
    probabilities = torch.tensor([[0.9, 0.1]] * 2 + [[0.6, 0.4]] * 2)
    assert calibration(probabilities, torch.tensor([0, 0, 0, 1]), bins=10).ece == pytest.approx(0.1)


def test_reliability_diagram_is_a_png(tmp_path):
    report = calibration(torch.tensor([[0.8, 0.2]] * 10), torch.tensor([0] * 6 + [1] * 4))
    path = reliability_diagram(report, tmp_path / "r.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_fbeta_two_weighs_recall():
    targets = torch.tensor([[1, 1, 0, 0]])
    # predict one of two positives, no false positive: P = 1, R = 0.5 -> F2 = 5 * 0.5 / (4 + 0.5)
    assert fbeta_score(torch.tensor([[0.9, 0.1, 0.2, 0.1]]), targets, beta=2) == pytest.approx(5 * 0.5 / 4.5)
    # both positives plus two false ones: P = 0.5, R = 1 -> F2 = 5 * 0.5 / (4 * 0.5 + 1)
    assert fbeta_score(torch.ones(1, 4), targets, beta=2) == pytest.approx(2.5 / 3.0)
    assert fbeta_score(torch.ones(1, 4), targets, beta=1) == pytest.approx(2 / 3)


def test_corruptions_do_what_they_say():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 32, 32, generator=generator) * 0.5 + 0.25
    bright = corrupt(images, "brightness", 1)
    assert torch.allclose(bright, images + 0.1)
    contrast = corrupt(images, "contrast", 2)  # c = 0.3
    assert torch.allclose(contrast.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=1e-6)
    assert torch.allclose(contrast.std((1, 2, 3)), 0.3 * images.std((1, 2, 3)), rtol=1e-4)
    grey = torch.full((64, 1, 32, 32), 0.5)
    noisy = corrupt(grey, "gaussian_noise", 1, torch.Generator().manual_seed(1))
    assert (noisy - grey).std().item() == pytest.approx(0.08, rel=0.02)
    assert torch.allclose(gaussian_blur(grey, 1.0), grey)  # a flat image stays flat
    assert corrupt(images, "gaussian_blur", 5).std() < corrupt(images, "gaussian_blur", 1).std() < images.std()
    errors = [(corrupt(images, "jpeg", s) - images).abs().mean().item() for s in (1, 3, 5)]
    assert errors[0] < errors[1] < errors[2]
    assert torch.allclose(jpeg_quantize(grey, 90), grey, atol=1 / 255)  # a flat block is only its DC term
    assert (jpeg_quantize(images, 100) - images).abs().max() < 3 / 255
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity must be 1..5"):
        corrupt(images, "jpeg", 6)


class _BrightnessClassifier(torch.nn.Module):
    """Class 1 if the mean pixel (before normalization) is above 0.5: a model with known robustness."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.mean((1, 2, 3)) - 0.5
        return torch.stack([-score, score], 1)


def test_corruption_accuracy_on_a_known_model():
    images = torch.cat([torch.full((5, 1, 8, 8), 60), torch.full((5, 1, 8, 8), 200)]).to(torch.uint8)
    dataset = ev.datasets.TensorImageDataset(images, torch.tensor([0] * 5 + [1] * 5))
    report = corruption_accuracy(_BrightnessClassifier(), dataset, lambda b: b.float() / 255, lambda x: x, names=("brightness", "jpeg"))
    assert report.clean_top1 == 1.0
    # dark images are 60/255 = 0.235: +0.3 (severity 3) pushes them over 0.5, +0.2 does not
    assert report.accuracy["brightness"] == (1.0, 1.0, 0.5, 0.5, 0.5)
    assert report.accuracy["jpeg"] == (1.0,) * 5
    assert report.mean_corruption_accuracy == pytest.approx((3.5 + 5.0) / 10)


def test_eval_cli_with_calibration_and_corruptions(tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, (20, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "toy.npz", images=images, labels=np.arange(20) % 2)
    checkpoint = ev.save(tiny_model(), tmp_path / "m.safetensors",
                         {"dataset": f"npz:{tmp_path / 'toy.npz'}", "preprocess": {"resolution": 16, "mean": [0.5], "std": [0.25]}})
    code = main(["eval", str(checkpoint), "--calibration", "--corruptions", "--json", str(tmp_path / "e.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "expected calibration error" in out and "mean corruption top-1" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["images"] == 4 and 0 <= report["calibration"]["ece"] <= 1
    assert len(report["corruptions"]["accuracy"]["jpeg"]) == 5
    assert (tmp_path / "m.reliability.png").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "nothing.safetensors"], "checkpoint 'nothing.safetensors' does not exist"),
        (["eval", "{ckpt}", "--data", "npz:/missing.npz"], "npz file '/missing.npz' does not exist"),
        (["eval", "{ckpt}"], "does not record its dataset; pass --data"),
        (["eval", "{ckpt}", "--data", "npz:{npz3}"], "has 3 classes but the checkpoint predicts 2"),
    ],
)
def test_eval_cli_errors_are_one_line(argv, message, tmp_path, capsys):
    checkpoint = ev.save(tiny_model(), tmp_path / "m.safetensors")
    np.savez(tmp_path / "three.npz", images=np.zeros((6, 8, 8), np.uint8), labels=np.arange(6) % 3)
    argv = [a.replace("{ckpt}", str(checkpoint)).replace("{npz3}", str(tmp_path / "three.npz")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
