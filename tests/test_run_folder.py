"""A run folder's metrics always describe the checkpoint beside them; a refused run leaves nothing behind (issue 19).

A retraining killed mid-way used to have rewritten ``metrics.jsonl`` at its start, so the folder paired the
killed run's rows with the previous ``model.safetensors``. The kill is simulated here by an exception at
each step of the commit (no process is killed); the invariant is checked at every such moment and after
the next run's recovery.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import edgevision as ev
from edgevision.checkpoint import read_metadata
from edgevision.cli import main
from edgevision.training import train
from edgevision.training.loop import COMMITTED, PENDING, PREVIOUS, MetricsLog, commit_metrics, recover_metrics
from training_helpers import single_thread, tiny_model, toy_splits  # noqa: F401  (single_thread: autouse fixture)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no ``except Exception`` swallows it)."""


def _rows(folder: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def _run(folder: Path, tag: float, epochs: int = 2) -> MetricsLog:
    """A fake run whose rows carry ``tag``: what a training would log into ``folder`` before its checkpoint."""
    log = MetricsLog(folder)
    for epoch in range(epochs):
        log.append({"epoch": epoch + 1, "train_loss": tag + epoch, "val_top1": tag / 10})
    return log


def _save(folder: Path, log: MetricsLog) -> Path:
    final = {**log.rows[-1], "train_seconds": 1.5}
    return ev.save(tiny_model(), folder / "model.safetensors", {"task": "classification", "metrics": final})


def _checkpoint_tag(folder: Path) -> float:
    return read_metadata(folder / "model.safetensors")["metrics"]["val_top1"] * 10


def _assert_consistent(folder: Path) -> None:
    """metrics.jsonl is absent or its last row is the checkpoint's own final metrics."""
    if (folder / "metrics.jsonl").exists():
        assert _rows(folder)[-1]["val_top1"] * 10 == pytest.approx(_checkpoint_tag(folder))
        header = (folder / "metrics.csv").read_text().splitlines()[0]
        assert header == "epoch,train_loss,val_top1"


@pytest.fixture()
def finished(tmp_path: Path) -> Path:
    """A run folder holding a finished run (tag 1): checkpoint + committed metrics."""
    log = _run(tmp_path, 1.0)
    log.commit(lambda: _save(tmp_path, log))
    assert _rows(tmp_path)[-1]["train_loss"] == 2.0 and not any((tmp_path / n).exists() for n in PENDING + PREVIOUS)
    return tmp_path


def test_retraining_killed_before_its_checkpoint_keeps_the_previous_metrics(finished):
    log = _run(finished, 5.0)  # killed while training: only the pending rows changed
    assert _rows(finished)[-1]["train_loss"] == 2.0 and _rows(finished, PENDING[0])[-1]["train_loss"] == 6.0
    _assert_consistent(finished)

    def killed_while_saving():
        _assert_consistent(finished)  # mid-commit: the old metrics are aside, none describe the wrong weights
        raise Killed

    with pytest.raises(Killed):
        log.commit(killed_while_saving)
    _assert_consistent(finished)
    assert not (finished / "metrics.jsonl").exists() and _checkpoint_tag(finished) == pytest.approx(1.0)
    MetricsLog(finished)  # the next run restores the set-aside rows and drops the killed run's
    assert _rows(finished)[-1]["train_loss"] == 2.0
    assert not any((finished / n).exists() for n in PENDING + PREVIOUS)


def test_retraining_killed_after_its_checkpoint_landed_promotes_its_metrics(finished):
    log = _run(finished, 5.0, epochs=3)

    def saved_then_killed():
        _save(finished, log)
        _assert_consistent(finished)
        raise Killed  # between the checkpoint's rename and the metrics'

    with pytest.raises(Killed):
        log.commit(saved_then_killed)
    _assert_consistent(finished)
    assert recover_metrics(finished) == "pending"
    assert [row["epoch"] for row in _rows(finished)] == [1, 2, 3] and _rows(finished)[-1]["train_loss"] == 7.0
    _assert_consistent(finished)
    assert not any((finished / n).exists() for n in PENDING + PREVIOUS)


def test_rows_that_match_no_checkpoint_are_never_promoted(tmp_path):
    _run(tmp_path, 3.0)  # a first run killed before any checkpoint existed
    assert recover_metrics(tmp_path) is None and not (tmp_path / "metrics.jsonl").exists()
    commit_metrics(tmp_path)  # no checkpoint writer (the Python API without --out checkpoint): rows promoted as they are
    assert _rows(tmp_path)[-1]["train_loss"] == 4.0
    assert recover_metrics(tmp_path) is None  # nothing to do once committed
    commit_metrics(tmp_path)  # no new rows (a resumed run that had finished): the folder's metrics stay
    assert _rows(tmp_path)[-1]["train_loss"] == 4.0


def test_train_can_leave_its_metrics_pending_for_the_caller(tmp_path):
    """commands/train.py commits the rows with its checkpoint; by default train() commits them itself (test_training)."""
    recipe = ev.training.Recipe(name="quick", epochs=1, batch_size=8, lr=0.05)
    train(tiny_model(), toy_splits(count=16), recipe, resolution=8, device="cpu", out_dir=tmp_path, max_steps=1, pending_metrics=True)
    assert not (tmp_path / "metrics.jsonl").exists() and _rows(tmp_path, PENDING[0])[0]["epoch"] == 1


# ---- a refused run leaves no directory or lock file it created ------------------------------------------
def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.mark.parametrize("argv", [
    ["train", "mobilenetv2_050", "--data", "npz:{missing}", "--epochs", "1", "--no-progress"],  # refused after the lock (data)
    ["sparsify", "mobilenetv2_050", "--pattern", "7:4"],  # refused inside the locked run (bad pattern)
])
def test_a_refused_run_leaves_no_folder_and_no_lock(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{missing}", str(tmp_path / "missing.npz")) for a in argv]
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    for out in (["--out", "deep/er/run"], ["--out", "existing"], [] if argv[0] == "train" else ["--out", "x/y"]):
        before = _tree(tmp_path)
        assert main([*argv, *out]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert _tree(tmp_path) == before, out  # no runs/, deep/er/, existing/.lock left behind


def test_a_run_refused_by_the_lock_keeps_the_holders_lock(tmp_path, capsys):
    from edgevision.locking import exclusive_lock

    out = tmp_path / "out"
    out.mkdir()
    with exclusive_lock(out / ".lock", "test holder"):
        assert main(["sparsify", "mobilenetv2_050", "--pattern", "2:4", "--out", str(out)]) == 2
        assert "in use by pid" in capsys.readouterr().err
        assert (out / ".lock").exists() and json.loads((out / ".lock").read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("argv, folder", [
    (["train", "ssdlite320_mobilenetv3_large", "--task", "detection"], "runs/ssdlite320_mobilenetv3_large-detection-s0"),
    (["train", "fcrn_mobilenetv2_100", "--task", "depth"], "runs/fcrn_mobilenetv2_100-depth-s0"),
    (["train", "lraspp_mobilenet_v3_small", "--task", "segmentation"], "runs/lraspp_mobilenet_v3_small-seg-s0"),
    (["train", "carn_m", "--task", "super-resolution", "--scale", "4"], "runs/carn_m-x4-s0"),
])
def test_a_task_training_without_out_locks_its_default_folder(tmp_path, monkeypatch, capsys, argv, folder):
    """Without --out, two trainings of a dense task into the same default run folder: the second is refused."""
    from edgevision.locking import exclusive_lock

    monkeypatch.chdir(tmp_path)
    (tmp_path / folder).mkdir(parents=True)
    with exclusive_lock(tmp_path / folder / ".lock", "test holder"):
        assert main([*argv, "--epochs", "1"]) == 2
        assert "in use by pid" in capsys.readouterr().err
