"""kill -9 at random moments of ``edgevision train --task detection`` (issue 17): the run folder always reads
back, every kill resumes from the step ``last.safetensors`` names, and the finished run has exactly the
weights and per-epoch rows of an uninterrupted run.

Slow (each run imports torch; a few minutes on 2 idle cores), so it runs only with
``EDGEVISION_DURABILITY=1`` (``make test-det-durability``): ``EDGEVISION_DET_KILLS`` kills (default 10).
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

KILLS = int(os.environ.get("EDGEVISION_DET_KILLS", "10"))
EPOCHS = 3 * KILLS  # 2 steps each, a fraction of a second on an idle machine: many more epochs than kills, so every kill lands while work remains


def _environment() -> dict:
    import edgevision

    # one thread: the killed and the uninterrupted runs do the same float arithmetic
    return {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


def _step(out: Path) -> int:
    from edgevision.checkpoint import read_metadata

    try:
        return int(read_metadata(out / "last.safetensors")["step"])
    except Exception:  # absent (not yet written): a half-written one is checked separately
        return 0


def _check_folder(out: Path) -> None:
    """What a kill may leave: last.safetensors readable with its own step's optimizer state beside it; the
    final model either absent or described by metrics.jsonl; no pending rows that a checkpoint claims."""
    from edgevision.checkpoint import read_metadata

    if (out / "last.safetensors").exists():
        step = read_metadata(out / "last.safetensors")["step"]
        assert (out / f"optimizer.step{step}.pt").is_file(), f"last.safetensors names step {step} but its optimizer state is missing"
        torch.load(out / f"optimizer.step{step}.pt", weights_only=True)
    if (out / "model.safetensors").exists() and (out / "metrics.jsonl").exists():
        final = read_metadata(out / "model.safetensors")["metrics"]
        assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1]) == final


def test_detection_training_survives_kill_9(tmp_path):
    from edgevision.checkpoint import load
    from edgevision.datasets.scenes import generate_scenes

    train_file = generate_scenes(tmp_path / "data", split="train", num_images=4, image_size=64, num_classes=2, seed=0)
    generate_scenes(tmp_path / "data", split="val", num_images=2, image_size=64, num_classes=2, seed=0)

    def argv(out: Path) -> list[str]:
        return [sys.executable, "-m", "edgevision.cli", "train", "picodet_s_320", "--task", "detection", "--data", str(train_file),
                "--epochs", str(EPOCHS), "--resolution", "64", "--batch-size", "2", "--out", str(out), "--no-progress"]

    subprocess.run(argv(tmp_path / "whole"), env=_environment(), check=True, stdout=subprocess.DEVNULL)
    out, rng, kills, resumed_at = tmp_path / "killed", random.Random(17), 0, []
    for _ in range(KILLS):
        before = _step(out)
        resumed_at.append(before)
        code, _ = start_and_kill(argv(out), _environment(), lambda: _step(out) > before, rng, 0.3)  # mid-step, mid-save or mid-clean-up
        kills += code == -signal.SIGKILL
        _check_folder(out)
    subprocess.run(argv(out), env=_environment(), check=True, stdout=subprocess.DEVNULL)
    _check_folder(out)
    print(f"detection train: {kills} kill -9, resumed at steps {resumed_at}")
    assert kills == KILLS and resumed_at == sorted(resumed_at) and len(set(resumed_at[1:])) == KILLS - 1  # progress every time
    whole, finished = load(tmp_path / "whole" / "model.safetensors").state_dict(), load(out / "model.safetensors").state_dict()
    assert_same_weights(whole, finished)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(2, 2 * EPOCHS + 1, 2))  # every epoch exactly once
    reference = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [row["train_loss"] for row in rows] == pytest.approx([row["train_loss"] for row in reference], rel=1e-5)
    assert sorted(p.name for p in out.glob("optimizer.step*.pt")) == [f"optimizer.step{2 * EPOCHS}.pt"]
