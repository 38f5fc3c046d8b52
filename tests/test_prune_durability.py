"""``edgevision prune`` survives kill -9, again and again: killed as soon as each new NetAdapt step is on disk
(``EDGEVISION_PRUNE_KILLS`` times, 10 by default), each rerun of the same command resumes from the last
recorded step, and the last one finishes with a loadable pruned model whose steps continue every killed run's.

Slow (one CLI run per kill, each importing torch and measuring latency): runs only with
``EDGEVISION_DURABILITY=1`` (``make test-prune-durability``, 10 kills, ~15-30 min on 2 idle cores), like
tests/test_durability.py. A quick check: ``EDGEVISION_DURABILITY=1 EDGEVISION_PRUNE_KILLS=2 pytest -s tests/test_prune_durability.py``.
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

KILLS = int(os.environ.get("EDGEVISION_PRUNE_KILLS", "10"))
# small steps (5% of one group's channels each) to 70% of the latency, at 96 px so that eager time follows the
# widths rather than the per-layer overhead (at 32 px the floor is ~80%): more steps than kills
ARGS = ["prune", "mobilenetv2_050", "--target-ratio", "0.7", "--epochs", "0", "--step-steps", "2", "--step-fraction", "0.05",
        "--eval-images", "32", "--time-budget", "0.2", "--runtime", "eager", "--resolution", "96"]


def _run(out: Path, kill_after_steps: int | None) -> tuple[int, int, str]:
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
    return process.returncode, _steps_on_disk(out), process.stderr.read().decode(errors="replace")[-300:]


def _steps_on_disk(out: Path) -> int:
    try:
        return len(json.loads((out / ".prune-resume" / "state.json").read_text()).get("progress", {}).get("steps", []))
    except (OSError, ValueError):
        return 0


def test_prune_resumes_after_repeated_kill_9_from_the_last_step(tmp_path):
    import edgevision as ev

    out = tmp_path / "run"
    recorded: list = []  # the steps on disk at each kill: every later run must keep them
    for kill in range(KILLS):
        code, steps, err = _run(out, kill_after_steps=len(recorded) + 1)
        assert code == -signal.SIGKILL and steps > len(recorded), (
            f"kill {kill + 1} of {KILLS}: the run finished (exit {code}) before step {len(recorded) + 1} was recorded; "
            f"lower EDGEVISION_PRUNE_KILLS or take smaller steps. stderr: {err}"
        )
        now = json.loads((out / ".prune-resume" / "state.json").read_text())["progress"]["steps"]
        assert now[: len(recorded)] == recorded, f"kill {kill + 1}: the resumed run changed the steps it resumed from"
        recorded = now
        assert not (out / "prune.json").exists()
    code, _, err = _run(out, kill_after_steps=None)
    assert code == 0, err
    report = json.loads((out / "prune.json").read_text())
    assert report["steps"][: len(recorded)] == recorded  # the last run kept every killed run's steps
    assert len(recorded) >= KILLS
    assert not (out / ".prune-resume").exists()
    model = ev.load(out / "model.safetensors")
    assert ev.count_params(model) == report["after"]["params"] < report["before"]["params"]
