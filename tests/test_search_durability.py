"""kill -9 at random moments of an architecture search (issue 16): the Optuna SQLite study resumes, nothing lost or twice.

Slow (each start imports torch and Optuna), so like tests/test_durability.py it runs only with
``EDGEVISION_DURABILITY=1`` (``make test-search-durability``). A search process (``ev.search.run``,
what ``edgevision search`` calls, on the tiny space with a known fake latency table and a slow fake
accuracy estimate, so each trial takes a fraction of a second) is started and SIGKILLed at >= 10
random moments after it finished one more trial. After every kill the study database must pass
SQLite's ``integrity_check`` and keep every trained trial; a final uninterrupted run must complete
with exactly ``TRIALS`` distinct networks trained, none trained twice, and write ``pareto.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from kill_helpers import start_and_kill

pytestmark = pytest.mark.skipif(not os.environ.get("EDGEVISION_DURABILITY"), reason="slow kill -9 test: make test-search-durability")

KILLS = int(os.environ.get("EDGEVISION_KILLS", "10"))
TRIALS = KILLS + 6  # more trials than kills, so every kill lands while work remains

DRIVER = """
import json, sys, time
sys.path.insert(0, {tests!r})
from lut_helpers import TINY_SPACE
from test_search import fake_accuracy, fake_block_ms
from edgevision.lut import LatencyTable, MeasurementSetting
from edgevision.search import LatencyModel, run

log = open({log!r}, "a")

def slow_accuracy(spec):
    time.sleep(0.3)  # a trial long enough that kills land mid-training too
    log.write(spec.name + "\\n"); log.flush()  # every training that finished, killed or not
    return fake_accuracy(spec)

table = LatencyTable({table!r})
latency = LatencyModel(table, MeasurementSetting(runtime="ort", threads=2), measure_block=fake_block_ms)
run(TINY_SPACE, "random", latency_ms=0.3, table=latency, estimator=slow_accuracy, data=None, trials={trials},
    measure=lambda spec: 0.2, out={out!r}, storage={storage!r})
"""


def _trained(storage_file: Path) -> list[str]:
    """Networks of the COMPLETE trials that were trained (read-only, while the search may be writing)."""
    try:
        with sqlite3.connect(f"file:{storage_file}?mode=ro", uri=True, timeout=1.0) as db:
            rows = db.execute(
                "SELECT a.value_json FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                "WHERE t.state = 'COMPLETE' AND a.key = 'record'"
            ).fetchall()
    except sqlite3.Error:
        return []
    records = [json.loads(value) for (value,) in rows]
    return [r["network"] for r in records if r.get("trained")]


def _checked_study(storage_file: Path, kept: list[str]) -> list[str]:
    """After a kill: the study database passes SQLite's integrity check and still holds every trial trained before."""
    if storage_file.exists():  # a start killed before Optuna created it leaves none
        with sqlite3.connect(storage_file) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    now = _trained(storage_file)
    assert set(kept) <= set(now)  # nothing finished is lost
    return now


def test_search_survives_kill_9(tmp_path):
    import edgevision

    storage_file = tmp_path / "study.sqlite"
    driver = tmp_path / "driver.py"
    log = tmp_path / "trained.log"
    driver.write_text(
        DRIVER.format(
            tests=str(Path(__file__).parent), log=str(log), table=str(tmp_path / "lut.sqlite"), trials=TRIALS,
            out=str(tmp_path / "out"), storage=f"sqlite:///{storage_file}",
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{Path(edgevision.__file__).parents[1]}{os.pathsep}{Path(__file__).parent}", "OMP_NUM_THREADS": "1"}
    rng = random.Random(16)
    kept: list[str] = []
    kills = 0
    for _ in range(KILLS):
        before = len(_trained(storage_file))
        # killed mid-training, mid-tell or mid-report
        code, stderr = start_and_kill([sys.executable, str(driver)], env, lambda: len(_trained(storage_file)) > before, rng, 0.6, timeout_s=300)
        kills += code == -signal.SIGKILL
        assert code in (0, -signal.SIGKILL), stderr[-2000:]
        kept = _checked_study(storage_file, kept)
        if code == 0:
            break
    assert kills >= min(KILLS, 10) or len(kept) == TRIALS
    final = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    trained = _trained(storage_file)
    assert len(trained) == TRIALS and len(set(trained)) == TRIALS  # every network trained once in the study
    data = json.loads((tmp_path / "out" / "pareto.json").read_text())
    assert data["trained"] >= TRIALS and data["pareto"]
    # trainings cut off by a kill were repeated, finished ones never: at most one repeat per kill
    finished = log.read_text().split()
    assert len(finished) - len(set(finished)) <= kills


SUPERNET_DRIVER = """
import os, sys
sys.path.insert(0, {tests!r})
from test_search import fake_block_ms
from edgevision.blocks import ChoiceBlockSpec, ClassifierHeadSpec, ConvNormActSpec, IdentitySpec, InvertedResidualSpec
from edgevision.lut import LatencyTable, MeasurementSetting
from edgevision.network import NetworkSpec, StageSpec
from edgevision.search import LatencyModel, run
from edgevision.search.sharing import SUPERNET_FILE

def layer(name, stride, skip):  # 4 inverted residuals (kernel 3/5 x expansion 2/4), and skip where the shape allows
    options = tuple(InvertedResidualSpec(out_channels=16, stride=stride, kernel_size=k, expansion_ratio=e) for k in (3, 5) for e in (2.0, 4.0))
    return ChoiceBlockSpec(name=name, candidates=options + ((IdentitySpec(),) if skip else ()))

# 4 x 5 x 5 = 100 paths: more than the trials, so every trial is a new network
supernet = NetworkSpec(name="kill-supernet", stem=(ConvNormActSpec(out_channels=8, stride=2),),
                       stages=(StageSpec(blocks=(layer("s0.b0", 2, False), layer("s0.b1", 1, True), layer("s0.b2", 1, True))),),
                       head=ClassifierHeadSpec(num_classes=10), input_size=32)

log = open({log!r}, "a")
log.write(f"start {{os.path.exists(os.path.join({out!r}, SUPERNET_FILE))}}\\n"); log.flush()

def progress(line):
    log.write(line.replace("\\n", " ") + "\\n"); log.flush()

table = LatencyTable({table!r})
latency = LatencyModel(table, MeasurementSetting(runtime="ort", threads=2), measure_block=fake_block_ms)
run(supernet, "random", latency_ms=10.0, table=latency, accuracy="supernet", data={data!r}, resolution=16, supernet_epochs=3,
    steps_per_epoch=30, trials={trials}, measure=False, out={out!r}, storage={storage!r}, progress=progress)
"""


def test_weight_sharing_search_survives_kill_9_and_never_retrains_a_saved_supernet(tmp_path):
    """``--accuracy supernet``: kills land during the supernet's training (it is trained again: nothing was saved),
    around its atomic save, and between the trials it scores; once ``supernet.safetensors`` exists no run trains
    it again, and the finished study holds every trial once."""
    import numpy as np

    import edgevision
    from edgevision.search.sharing import SUPERNET_FILE

    trials = 4 * KILLS
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    # 2,000 images: 30 steps an epoch, so the supernet trains for seconds and the first kill lands inside its training
    np.savez(data, images=rng.integers(0, 255, (2000, 16, 16), dtype=np.uint8), labels=np.arange(2000) % 10)
    storage_file, log, out = tmp_path / "study.sqlite", tmp_path / "progress.log", tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(SUPERNET_DRIVER.format(tests=str(Path(__file__).parent), log=str(log), table=str(tmp_path / "lut.sqlite"), trials=trials,
                                             out=str(out), storage=f"sqlite:///{storage_file}", data=f"npz:{data}"))
    env = {**os.environ, "PYTHONPATH": f"{Path(edgevision.__file__).parents[1]}{os.pathsep}{Path(__file__).parent}", "OMP_NUM_THREADS": "1"}

    def units() -> int:
        return (out / SUPERNET_FILE).is_file() + len(_trained(storage_file))

    draw, kills, kept = random.Random(161), 0, []
    for kill in range(KILLS):
        before = units()
        logged = log.read_text().count("\n") if log.exists() else 0

        def progressed() -> bool:  # the first start: inside the supernet's training (after its first epoch); then one more unit
            return units() > before or (kill == 0 and log.exists() and any("epoch 1/" in line for line in log.read_text().splitlines()[logged:]))

        code, stderr = start_and_kill([sys.executable, str(driver)], env, progressed, draw, 0.3, timeout_s=300)
        kills += code == -signal.SIGKILL
        assert code in (0, -signal.SIGKILL), stderr[-2000:]
        kept = _checked_study(storage_file, kept)
        if code == 0:
            break
    final = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    trained = _trained(storage_file)
    assert len(trained) == trials and len(set(trained)) == trials
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))  # the final run swept what kills left
    runs = log.read_text().split("start ")[1:]
    print(f"supernet search: {kills} kill -9 over {len(runs)} starts; supernet trained in {sum('epoch' in r for r in runs)} of them")
    assert kills >= min(KILLS, 10)
    assert sum("supernet (weight sharing) epoch" in run for run in runs) >= 2  # killed mid-training (nothing saved): trained again
    assert all("supernet (weight sharing) epoch" not in run for run in runs if run.startswith("True"))  # a saved supernet is reused
    assert any("weights reused from" in run for run in runs if run.startswith("True"))
