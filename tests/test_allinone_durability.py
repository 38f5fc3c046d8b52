"""``edgevision allinone`` survives kill -9, again and again (issue 15, the robustness rules of issue 19).

The run is started ``EDGEVISION_ALLINONE_KILLS`` times (10 by default) and SIGKILLed at a random moment after it
has recorded one more unit of work in ``DIR/.allinone-resume/state.json`` (a finished epoch, the BatchNorm
recalibration, one ratio's accuracy or one latency measurement): mid-epoch, mid-save, mid-measurement. After every
kill the state must read back and name only what is on disk (the epoch folder it names loads); a final run must
finish with exactly the weights and accuracies of an uninterrupted run (one thread, so both do the same float
arithmetic). Latencies are real measurements, so they are only checked to be present, one per ratio and speed.

Slow (one CLI run per kill, each importing torch): runs only with ``EDGEVISION_DURABILITY=1``
(``make test-allinone-durability``, ~3-5 min on 2 idle cores, estimated). Timings do not matter, so it may run on a
busy machine.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_same_weights
from kill_helpers import start_and_kill

pytestmark = pytest.mark.skipif(not os.environ.get("EDGEVISION_DURABILITY"), reason="slow kill -9 test: make test-allinone-durability")

KILLS = int(os.environ.get("EDGEVISION_ALLINONE_KILLS", "10"))
EPOCHS = 2 * KILLS  # an epoch is 4 steps over 3 ratios: the work outlasts the kills


def _environment() -> dict:
    import edgevision

    return {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


def _state(out: Path) -> dict:
    try:
        return json.loads((out / ".allinone-resume" / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _units(state: dict) -> int:
    """Work recorded: finished epochs + the recalibration + each ratio's accuracy and each of its measurements."""
    members = state.get("members", {})
    return int(state.get("epochs_done", 0)) + bool(state.get("calibrated")) + len(members) + sum(len(m["median_ms"]) for m in members.values())


def _check_state(out: Path) -> None:
    from edgevision.prune.allinone import AllInOne

    state = _state(out)
    folder = out / ".allinone-resume"
    if state.get("calibrated"):
        AllInOne.load(folder / "final")
    elif state.get("epochs_done"):
        done = int(state["epochs_done"])
        AllInOne.load(folder / f"epoch{done}")
        assert (folder / f"epoch{done}" / "momentum.safetensors").is_file(), f"epoch {done} is recorded without its momentum"


def test_allinone_resumes_after_repeated_kill_9_to_the_uninterrupted_result(tmp_path):
    import edgevision as ev
    from edgevision.prune.allinone import AllInOne

    generator = np.random.default_rng(0)  # 64 grey 16x16 images of 3 classes (held out: the loader's split)
    np.savez(tmp_path / "tiny.npz", images=generator.integers(0, 255, (64, 16, 16), dtype=np.uint8), labels=np.arange(64) % 3)
    narrow = ev.get_spec("resnet18").with_classes(3).with_input_channels(1).with_width(0.25)  # no dropout: resumable bit for bit
    torch.manual_seed(0)
    checkpoint = ev.save(ev.build(ev.resolve(narrow, input_size=32)), tmp_path / "dense.safetensors")

    def argv(out: Path) -> list[str]:
        return [sys.executable, "-m", "edgevision.cli", "allinone", "resnet18", "--checkpoint", str(checkpoint), "--data", f"npz:{tmp_path / 'tiny.npz'}",
                "--ratios", "0.5", "0.75", "--epochs", str(EPOCHS), "--steps-per-epoch", "4", "--batch-size", "8", "--threads", "1",
                "--runtime", "eager", "--time-budget", "0.2", "--out", str(out)]

    subprocess.run(argv(tmp_path / "whole"), env=_environment(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out, draw, kills, resumed_at = tmp_path / "run", random.Random(15), 0, []
    for kill in range(KILLS):
        before = _units(_state(out))
        resumed_at.append(before)
        code, stderr = start_and_kill(argv(out), _environment(), lambda: _units(_state(out)) > before, draw, 0.4)
        assert code == -signal.SIGKILL, f"kill {kill + 1}: the run ended (exit {code}) before its kill; more --epochs or fewer kills. stderr: {stderr[-400:]}"
        kills += 1
        _check_state(out)
        assert not (out / "allinone.json").exists()
    final = subprocess.run(argv(out), env=_environment(), capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    print(f"allinone: {kills} kill -9, resumed at units {resumed_at}")
    assert resumed_at == sorted(resumed_at) and len(set(resumed_at[1:])) == KILLS - 1  # progress every time
    whole, finished = AllInOne.load(tmp_path / "whole").full.state_dict(), AllInOne.load(out).full.state_dict()
    assert_same_weights(whole, finished)
    report, reference = (json.loads((folder / "allinone.json").read_text()) for folder in (out, tmp_path / "whole"))
    assert [(r["ratio"], r["params"], r["macs"]) for r in report["ratios"]] == [(r["ratio"], r["params"], r["macs"]) for r in reference["ratios"]]
    assert [r["accuracy"] for r in report["ratios"]] == pytest.approx([r["accuracy"] for r in reference["ratios"]], abs=1e-9)
    assert all(set(r["median_ms"]) == {"1 thread"} for r in report["ratios"])
    assert not (out / ".allinone-resume").exists() and not list(out.rglob("*.tmp"))
    assert kills == KILLS
