"""kill -9 at random moments of ``edgevision train --task segmentation`` (issue 17): the run folder always reads
back, every kill resumes from the epoch ``train_state.pt`` records, and the finished run has exactly the weights
and per-epoch history of an uninterrupted run.

Slow (each run imports torch and builds the scenes; a few minutes on 2 idle cores), so it runs only with
``EDGEVISION_DURABILITY=1`` (``make test-seg-durability``): ``EDGEVISION_SEG_KILLS`` kills (default 10).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_same_weights
from kill_helpers import start_and_kill

pytestmark = pytest.mark.skipif(not os.environ.get("EDGEVISION_DURABILITY"), reason="slow kill -9 test: EDGEVISION_DURABILITY=1")

KILLS = int(os.environ.get("EDGEVISION_SEG_KILLS", "10"))
EPOCHS = 3 * KILLS  # an epoch is a fraction of a second: many more epochs than kills, so every kill lands while work remains


def _environment() -> dict:
    import edgevision

    # one thread: the killed and the uninterrupted runs do the same float arithmetic
    return {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


def _epoch(out: Path) -> int:
    try:
        return int(torch.load(out / "train_state.pt", weights_only=True)["epoch"])
    except FileNotFoundError:  # not written yet; it is replaced atomically, so never half-written
        return 0


def _check_folder(out: Path) -> None:
    """What a kill may leave: a readable training state whose history has one row per finished epoch; the final
    model either absent or matching metrics.json; no stray temporaries once the next run has started."""
    from edgevision.checkpoint import read_metadata

    if (out / "train_state.pt").exists():
        state = torch.load(out / "train_state.pt", weights_only=True)
        assert [row["epoch"] for row in state["history"]] == list(range(1, int(state["epoch"]) + 1))
    if (out / "model.safetensors").exists() and (out / "metrics.json").exists():
        final = read_metadata(out / "model.safetensors")["metrics"]
        assert json.loads((out / "metrics.json").read_text())["final"]["miou"] == final["miou"]


def test_segmentation_training_survives_kill_9(tmp_path):
    from edgevision.checkpoint import load

    def argv(out: Path) -> list[str]:
        return [sys.executable, "-m", "edgevision.cli", "train", "lraspp_mobilenet_v3_small", "--task", "segmentation", "--seg-scenes", "16",
                "--epochs", str(EPOCHS), "--resolution", "32", "--batch-size", "2", "--out", str(out), "--no-progress"]

    subprocess.run(argv(tmp_path / "whole"), env=_environment(), check=True, stdout=subprocess.DEVNULL)
    out, rng, kills, resumed_at = tmp_path / "killed", random.Random(17), 0, []
    for _ in range(KILLS):
        before = _epoch(out)
        resumed_at.append(before)
        code, _ = start_and_kill(argv(out), _environment(), lambda: _epoch(out) > before, rng, 0.3)  # mid-epoch, -save or -evaluation
        kills += code == -signal.SIGKILL
        _check_folder(out)
    subprocess.run(argv(out), env=_environment(), check=True, stdout=subprocess.DEVNULL)
    _check_folder(out)
    print(f"segmentation train: {kills} kill -9, resumed at epochs {resumed_at}")
    assert kills == KILLS and resumed_at == sorted(resumed_at) and len(set(resumed_at[1:])) == KILLS - 1  # progress every time
    whole, finished = load(tmp_path / "whole" / "model.safetensors").state_dict(), load(out / "model.safetensors").state_dict()
    assert_same_weights(whole, finished)
    history = json.loads((out / "metrics.json").read_text())["history"]
    reference = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))  # every epoch exactly once
    assert [row["train_loss"] for row in history] == pytest.approx([row["train_loss"] for row in reference], rel=1e-5)
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*.tmp*"))
