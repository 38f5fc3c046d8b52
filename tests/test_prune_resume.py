"""``edgevision sparsify`` and ``prune`` resume folders: a resumed sparsify run ends with the weights of an
uninterrupted one, and a resume folder written with other settings is refused with one line, exit 2.

The kill is simulated in-process (the run stops right after the resume state records its first epoch);
the real kill -9 of a CLI process is tests/test_prune_durability.py (``make test-prune-durability``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgevision.cli import main
from edgevision.commands import prune as prune_command
from edgevision.commands import sparsify as sparsify_command


class _Killed(Exception):
    """Stands for the kill: raised as soon as the resume state names a finished epoch."""


@pytest.fixture()
def tiny_data(tmp_path):
    """16 RGB images of 32x32 in 4 classes: one fine-tune epoch is one small batch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images, labels=np.arange(16) % 4)
    return f"npz:{tmp_path / 'tiny.npz'}"


def _sparsify(data: str, out, epochs: int = 2) -> int:
    return main(["sparsify", "mobilenetv2_050", "--pattern", "2:4", "--epochs", str(epochs), "--data", data,
                 "--resolution", "32", "--out", str(out)])


def test_sparsify_resumed_after_an_epoch_ends_with_the_uninterrupted_weights(tmp_path, tiny_data, monkeypatch):
    torch.manual_seed(0)
    reference = tmp_path / "whole"
    assert _sparsify(tiny_data, reference) == 0
    whole = load_file(str(reference / "model.safetensors"))

    killed = tmp_path / "killed"
    write = prune_command._Resume.write

    def write_then_die(self, **fields):
        write(self, **fields)
        if fields.get("epochs_done") == 1:
            raise _Killed

    monkeypatch.setattr(prune_command._Resume, "write", write_then_die)
    torch.manual_seed(0)  # the same random start as the uninterrupted run
    with pytest.raises(_Killed):
        _sparsify(tiny_data, killed)
    state = json.loads((killed / sparsify_command.RESUME_DIR / "state.json").read_text())
    assert state["epochs_done"] == 1 and not (killed / "sparsify.json").exists()
    monkeypatch.setattr(prune_command._Resume, "write", write)

    torch.manual_seed(2)  # another random start: the resumed run must take the saved one, not rebuild
    assert _sparsify(tiny_data, killed) == 0  # the same command: resumes at epoch 2 of 2
    resumed = load_file(str(killed / "model.safetensors"))
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert not (killed / sparsify_command.RESUME_DIR).exists()
    report = json.loads((killed / "sparsify.json").read_text())
    assert report["epochs"] == 2 and report["nonzero_params"] < report["params"]


def test_epoch_lr_follows_the_step_schedule():
    from edgevision.training import get_recipe

    basic = get_recipe("basic")  # step: x0.1 at 50% and 75% of training
    assert [sparsify_command.epoch_lr(basic, e, 4) / basic.lr for e in range(4)] == pytest.approx([1, 1, 0.1, 0.01])


@pytest.mark.parametrize("command, folder, argv", [
    ("sparsify", ".sparsify-resume", ["sparsify", "mobilenetv2_050", "--pattern", "2:4"]),
    ("prune", ".prune-resume", ["prune", "mobilenetv2_050", "--target-ratio", "0.5"]),
])
def test_a_resume_folder_with_other_settings_is_refused(tmp_path, capsys, command, folder, argv):
    out = tmp_path / "run"
    (out / folder).mkdir(parents=True)
    (out / folder / "state.json").write_text(json.dumps({"settings": {"model": "resnet18"}, "before": {}}))
    assert main([*argv, "--epochs", "0", "--resolution", "32", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"holds an unfinished {command} run with other settings" in err and folder in err
    assert (out / folder / "state.json").exists()  # refused, not deleted
