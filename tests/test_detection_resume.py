"""Detector training resumes after an interruption exactly where it stopped (detection/training.py,
``train --task detection``): the resumed run ends with the uninterrupted run's weights, and the run
folder's checkpoint, optimizer state and metrics always describe one another."""

import copy
import json

import pytest
import torch

import edgevision as ev
import edgevision.checkpoint as checkpoint_module
from edgevision.checkpoint import load, read_metadata
from edgevision.cli import main
from edgevision.datasets.scenes import generate_scenes
from edgevision.detection.data import SSD_AUGMENTATION, load_coco_detection
from edgevision.detection.training import train_detector
from helpers import assert_same_weights

SIZE = 64


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_scenes")
    generate_scenes(root, split="val", num_images=2, image_size=SIZE, num_classes=2, seed=0)
    return generate_scenes(root, split="train", num_images=2, image_size=SIZE, num_classes=2, seed=0)


def _fresh(classes: int):
    torch.manual_seed(0)
    return ev.create_model("picodet_s_320", num_classes=classes)


def test_a_run_resumed_from_an_epoch_state_ends_with_the_uninterrupted_weights(scenes):
    data = load_coco_detection(scenes)
    options = dict(epochs=2, batch_size=2, lr=3e-3, image_size=SIZE, seed=0, augmentation=SSD_AUGMENTATION, log=lambda _: None)
    states = []
    whole = _fresh(2)
    # what the CLI writes after each epoch, copied at that moment (the optimizer's state dict holds live tensors)
    train_detector(whole, data, **options, on_epoch=lambda state: states.append(copy.deepcopy({**state, "weights": whole.state_dict()})))
    after_one = states[0]
    resumed = _fresh(2)  # a new process: fresh modules, the epoch-1 weights and optimizer state loaded
    resumed.load_state_dict(after_one["weights"])
    result = train_detector(resumed, data, **options, start_epoch=1, optimizer_state=after_one["optimizer"], losses=after_one["losses"])
    assert after_one["epoch"] == 1 and after_one["step"] == 1  # one batch of 2 scenes per epoch
    assert result["losses"][0] == after_one["losses"][0] and len(result["losses"]) == 2
    assert_same_weights(whole.state_dict(), resumed.state_dict())
    assert result["losses"][1] == pytest.approx(states[1]["losses"][1], rel=1e-5)


class SimulatedKill(BaseException):
    """Stands in for SIGKILL right after a file landed (BaseException: nothing catches and cleans up)."""


def test_cli_training_killed_after_an_epoch_resumes_at_its_step(scenes, tmp_path, monkeypatch, capsys):
    argv = ["train", "picodet_s_320", "--task", "detection", "--data", str(scenes), "--epochs", "2", "--resolution", str(SIZE),
            "--batch-size", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    real_save = checkpoint_module.save

    def save_then_die(model, path, metadata=None):
        written = real_save(model, path, metadata)
        if str(path).endswith("last.safetensors") and metadata["epoch"] == 1:
            raise SimulatedKill  # killed just after epoch 1's checkpoint landed, before its stale states were removed
        return written

    out = tmp_path / "killed"
    monkeypatch.setattr(checkpoint_module, "save", save_then_die)
    with pytest.raises(SimulatedKill):
        main([*argv, "--out", str(out)])
    monkeypatch.setattr(checkpoint_module, "save", real_save)
    assert read_metadata(out / "last.safetensors")["step"] == 1 and (out / "optimizer.step1.pt").is_file()
    assert not (out / "model.safetensors").exists() and not (out / "metrics.jsonl").exists()
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 0
    assert "at epoch 1/2 (step 1)" in capsys.readouterr().out
    whole, resumed = load(tmp_path / "whole" / "model.safetensors"), load(out / "model.safetensors")
    assert_same_weights(whole.state_dict(), resumed.state_dict())
    assert sorted(p.name for p in out.glob("optimizer.step*.pt")) == ["optimizer.step2.pt"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = read_metadata(out / "model.safetensors")["metrics"]
    assert [row["step"] for row in rows] == [1, 2] and rows[-1] == final  # the rows describe the checkpoint beside them
    assert json.loads((out / "metrics.json").read_text())["mAP"] == final["mAP"]
    # a different recipe in the same folder starts afresh instead of resuming someone else's state
    capsys.readouterr()
    assert main([*argv[:7], "1", *argv[8:], "--out", str(out)]) == 0
    assert "resuming" not in capsys.readouterr().out
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
