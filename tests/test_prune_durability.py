"""``edgevision prune`` survives kill -9: killed after each accepted NetAdapt step, it resumes from the last
one and finishes with a loadable pruned model whose steps continue the killed run's.

Slow (several CLI runs, each importing torch): runs only with ``EDGEVISION_DURABILITY=1``
(``make test-prune-durability``), like tests/test_durability.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("EDGEVISION_DURABILITY"), reason="slow kill -9 test: make test-prune-durability")

ARGS = ["prune", "mobilenetv2_050", "--target-ratio", "0.6", "--epochs", "0", "--step-steps", "2", "--step-fraction", "0.25",
        "--eval-images", "32", "--time-budget", "0.05", "--runtime", "eager", "--resolution", "32"]


def _run(out: Path, kill_after_steps: int | None) -> tuple[int, int]:
    """Run the command; with ``kill_after_steps``, SIGKILL it as soon as the resume state records that many steps."""
    import edgevision

    env = {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "edgevision.cli", *ARGS, "--out", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while kill_after_steps is not None and process.poll() is None and time.monotonic() < deadline:
        if _steps_on_disk(out) >= kill_after_steps:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=600)
    return process.returncode, _steps_on_disk(out)


def _steps_on_disk(out: Path) -> int:
    try:
        return len(json.loads((out / ".prune-resume" / "state.json").read_text()).get("progress", {}).get("steps", []))
    except (OSError, ValueError):
        return 0


def test_prune_resumes_after_kill_9_from_the_last_step(tmp_path):
    import edgevision as ev

    out = tmp_path / "run"
    code, steps = _run(out, kill_after_steps=1)
    assert code == -signal.SIGKILL and steps >= 1, "the run finished before the first step was recorded: nothing was tested"
    killed = json.loads((out / ".prune-resume" / "state.json").read_text())["progress"]["steps"]
    assert not (out / "prune.json").exists()
    code, _ = _run(out, kill_after_steps=None)
    assert code == 0
    report = json.loads((out / "prune.json").read_text())
    assert report["steps"][: len(killed)] == killed  # the resumed run kept the killed run's steps, not new ones
    assert not (out / ".prune-resume").exists()
    model = ev.load(out / "model.safetensors")
    assert ev.count_params(model) == report["after"]["params"] < report["before"]["params"]
