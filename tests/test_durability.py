"""kill -9 at random moments of ``bench``, ``lut build``, ``train``, ``deploy`` and ``sparsify`` (issue 19): nothing lost,
nothing twice, files readable (``prune`` and ``search``: tests/test_prune_durability.py, tests/test_search_durability.py).

Slow (about 2 minutes on 2 idle cores: each run imports torch), so it runs only with
``EDGEVISION_DURABILITY=1`` (``make test-durability``). Each command is killed with SIGKILL at
>= 10 random moments between its start-up and its expected end; after every kill the output must
read back (results.jsonl as JSON Lines with every finished measurement exactly once and none of
the earlier ones lost; the SQLite table passing ``integrity_check``), and a final uninterrupted
run must complete with every model / block present exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("EDGEVISION_DURABILITY"), reason="slow kill -9 test: make test-durability")

KILLS = int(os.environ.get("EDGEVISION_KILLS", "10"))
#: 12 small models: more results than kills, so every kill lands while work remains
MODELS = ["mobilenetv3_small_075", "ghostnet_050", "mobilenetv2_050", "mobilenetv3_small_100", "mobilenetv3_large_075", "ghostnet_100",
          "mobilenetv2_100", "mobilenetv3_large_100", "mnasnet_100", "mnasnet_a1", "ghostnet_130", "mobilenetv2_140"]


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "edgevision.cli", *argv]


def _environment() -> dict:
    import edgevision

    return {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1])}


def _kill_at_random(argv: list[str], check, progress, rng: random.Random, spread_s: float, count: int = KILLS) -> int:
    """Start ``argv`` ``count`` times; once it has finished one more unit of work (``progress()`` grew), SIGKILL it
    after a random further 0..``spread_s`` seconds (mid-measurement, mid-write or mid-report); ``check()`` after each."""
    kills = 0
    for _ in range(count):
        before = progress()
        process = subprocess.Popen(argv, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while process.poll() is None and progress() <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            time.sleep(rng.uniform(0.0, spread_s))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        check()
    return kills


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _entries(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.Error:
        return 0


def _bench_rows(out: Path) -> list[dict]:
    from edgevision.results import ResultStore

    store = ResultStore(out / "results.jsonl")  # moves a torn line aside, refuses a malformed one
    for line in (out / "results.jsonl").read_text().splitlines():
        json.loads(line)  # valid JSON Lines after the repair
    return store.rows


def test_bench_survives_kill_9(tmp_path):
    out = tmp_path / "bench"
    argv = _command("bench", "--models", *MODELS, "--runtime", "eager", "--resolution", "32", "--threads", "1",
                    "--per-measurement-budget", "0.3", "--out", str(out))
    seen: dict[str, dict] = {}

    def check():
        if not (out / "results.jsonl").exists():
            return
        rows = _bench_rows(out)
        models = [row["model"] for row in rows]
        assert len(models) == len(set(models)), f"a measurement recorded twice: {models}"
        for model, row in seen.items():  # nothing finished earlier is lost
            assert any(r["model"] == model and r["result"]["median_ms"] == row["result"]["median_ms"] for r in rows), model
        seen.update({row["model"]: row for row in rows})

    kills = _kill_at_random(argv, check, lambda: _lines(out / "results.jsonl"), random.Random(19), 1.5)
    final = subprocess.run(argv, env=_environment(), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    check()
    import pandas

    frame = pandas.read_json(out / "results.jsonl", lines=True)
    assert sorted(frame["model"]) == sorted(MODELS)  # every model exactly once
    assert not list(out.glob(".*.tmp")) and (out / "report.md").is_file()
    print(f"bench: {kills} kill -9, {len(seen)} results kept through them")
    assert kills == KILLS  # every run was killed mid-way, none finished before its kill


def test_lut_build_survives_kill_9(tmp_path):
    table = tmp_path / "lut.sqlite"
    # 10 sampled networks: 84 distinct blocks at 128 px, more work than 10 runs killed within seconds can finish
    argv = _command("lut", "build", "--space", "mobile", "--networks", "10", "--table", str(table), "--runtime", "eager",
                    "--threads", "1", "--budget", "0.1")
    counts = [0]

    def check():
        if not table.exists():
            return
        with sqlite3.connect(table) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            keys = [row[0] for row in db.execute("SELECT key FROM entries")]
        assert len(keys) == len(set(keys)) and len(keys) >= counts[-1]  # none twice, none lost
        counts.append(len(keys))

    kills = _kill_at_random(argv, check, lambda: _entries(table), random.Random(6), 1.5)
    final = subprocess.run(argv, env=_environment(), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    again = subprocess.run(argv, env=_environment(), capture_output=True, text=True)
    assert again.returncode == 0 and "measured 0," in again.stdout, again.stdout  # the table was complete
    check()
    print(f"lut build: {kills} kill -9, entries after each: {counts}")
    assert kills == KILLS


# ---- train and deploy: no half-written result ever replaces a good one ---------------------------------
def _kill_at_uniform_moments(argv: list[str], check, rng: random.Random, span_s: float) -> int:
    """Start ``argv`` until it has been SIGKILLed KILLS times (at most 2 x KILLS starts), each time at a uniform random
    moment of its ``span_s``-second run (start-up, work or the final writes); ``check()`` after each. A run that
    finishes before its moment is no kill, so the count of kills, not of starts, meets the target."""
    kills = 0
    for _ in range(2 * KILLS):
        if kills == KILLS:
            break
        process = subprocess.Popen(argv, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=rng.uniform(0.2, span_s))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        check()
    return kills


def _run_timed(argv: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, env=_environment(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - start


def test_train_killed_never_leaves_a_half_written_checkpoint(tmp_path):
    """A run folder with a finished checkpoint, retrained (another seed) and killed at random moments: the
    checkpoint always loads and is either the old one or a complete new one; metrics.csv always parses and
    metrics.jsonl (when present) ends with the checkpoint's own final metrics;
    no temporary file outlives the next run; the final run completes and its lock is released."""
    import csv
    import hashlib

    import edgevision as ev
    from edgevision.checkpoint import read_metadata

    import numpy as np

    data = tmp_path / "small.npz"  # 256 images: a run takes seconds beyond start-up, so kills land in every phase
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.integers(0, 255, (256, 3, 32, 32), dtype=np.uint8), labels=np.arange(256) % 4)
    out = tmp_path / "run"
    first = _command("train", "mobilenetv2_050", "--data", f"npz:{data}", "--epochs", "2", "--resolution", "32", "--recipe", "basic",
                     "--no-progress", "--out", str(out))
    span = _run_timed(first)
    model = out / "model.safetensors"
    digests = {hashlib.sha256(model.read_bytes()).hexdigest()}
    again = [*first[:-2], "--seed", "1", "--out", str(out)]

    def check():
        loaded = ev.load(model)  # complete: the header, the spec and every tensor read back
        assert loaded.spec.name == "mobilenetv2_050"
        digests.add(hashlib.sha256(model.read_bytes()).hexdigest())
        if (out / "metrics.csv").exists():
            list(csv.DictReader((out / "metrics.csv").open()))
        if (out / "metrics.jsonl").exists():  # absent only for the instant of a commit; else it is this checkpoint's
            rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            final = read_metadata(model)["metrics"]
            assert all(final[key] == value for key, value in rows[-1].items()), (rows[-1], final)

    kills = _kill_at_uniform_moments(again, check, random.Random(11), span * 1.1)
    _run_timed(again)
    check()
    assert not list(out.glob(".*.tmp")), list(out.glob(".*.tmp"))
    assert (out / ".lock").read_text() == ""  # released by the clean run
    print(f"train: {kills} kill -9, {len(digests)} distinct complete checkpoints seen, run {span:.1f} s")
    assert kills == KILLS


def test_deploy_killed_resumes_and_never_leaves_a_half_written_result(tmp_path):
    """deploy killed at random moments: deploy.json / model.onnx are absent or complete, never half; the rerun
    (reusing OUT/.work) completes."""
    import onnx

    out = tmp_path / "deploy"
    argv = _command("deploy", "mobilenetv2_050", "--runtimes", "ort", "--precisions", "fp32,int8", "--no-mixed", "--input-size", "32",
                    "--calibration", "16", "--verification", "64", "--budget", "1", "--threads", "1", "--out", str(out))
    probe = tmp_path / "probe"
    span = _run_timed([*argv[:-1], str(probe)])

    def check():
        if (out / "deploy.json").exists():
            data = json.loads((out / "deploy.json").read_text())
            assert data["runtime"] and (out / "report.md").read_text().strip()
        for path in out.glob("*.onnx"):
            onnx.checker.check_model(str(path))

    kills = _kill_at_uniform_moments(argv, check, random.Random(12), span * 1.1)
    _run_timed(argv)
    check()
    assert (out / "deploy.json").is_file() and not list(out.glob(".*.tmp"))
    print(f"deploy: {kills} kill -9, one run {span:.1f} s")
    assert kills == KILLS


# ---- sparsify: every SR-STE epoch applied exactly once across kills ------------------------------------
SPARSIFY_KILLS = int(os.environ.get("EDGEVISION_SPARSIFY_KILLS", str(KILLS)))


def _sparsify_epochs_done(out: Path) -> int:
    try:
        return int(json.loads((out / ".sparsify-resume" / "state.json").read_text()).get("epochs_done", 0))
    except (OSError, ValueError):
        return 0


def test_sparsify_survives_kill_9_with_every_epoch_applied_exactly_once(tmp_path):
    """sparsify killed at a random moment after each newly finished epoch (``EDGEVISION_SPARSIFY_KILLS`` times, default
    ``EDGEVISION_KILLS``): after every kill the resume state reads back (state.json parses, its weights load) and no
    finished epoch is lost; the final run ends with exactly the weights and report of an uninterrupted run, which an
    epoch applied twice or skipped would change (each epoch trains from its own seed at its own learning rate)."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    import edgevision as ev

    rng = np.random.default_rng(0)  # 40 images, 4 classes: an epoch is one small batch, the run is mostly start-up
    data = tmp_path / "tiny.npz"
    np.savez(data, images=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), labels=np.arange(40) % 4)
    start = tmp_path / "start.safetensors"  # fixed starting weights: a run without --checkpoint draws its own
    torch.manual_seed(0)
    ev.save(ev.create_model("mobilenetv2_050", num_classes=4), start)
    epochs = 3 * SPARSIFY_KILLS + 3  # at most ~2 epochs between a run's first new epoch and its kill

    def argv(out: Path) -> list[str]:
        return _command("sparsify", "mobilenetv2_050", "--checkpoint", str(start), "--pattern", "2:4", "--epochs", str(epochs),
                        "--data", f"npz:{data}", "--resolution", "32", "--out", str(out))

    span = _run_timed(argv(tmp_path / "reference"))
    reference = load_file(str(tmp_path / "reference" / "model.safetensors"))
    out = tmp_path / "run"
    done = [0]

    def check():
        resume = out / ".sparsify-resume"
        now = _sparsify_epochs_done(out)
        if (resume / "state.json").exists():
            json.loads((resume / "state.json").read_text())  # never torn
            load_file(str(resume / "dense.safetensors"))
            if now:
                load_file(str(resume / "sparse.safetensors"))  # the weights state.json's epoch names are on disk
        assert now >= done[-1], f"finished epochs lost: {done[-1]} -> {now}"
        assert not (out / "sparsify.json").exists()
        done.append(now)

    kills = _kill_at_random(argv(out), check, lambda: _sparsify_epochs_done(out), random.Random(23), span / epochs, SPARSIFY_KILLS)
    _run_timed(argv(out))
    final = load_file(str(out / "model.safetensors"))
    assert final.keys() == reference.keys() and all(torch.equal(final[k], reference[k]) for k in reference)
    report, expected = (json.loads((folder / "sparsify.json").read_text()) for folder in (out, tmp_path / "reference"))
    assert report == expected
    assert not (out / ".sparsify-resume").exists() and not list(out.rglob("*.tmp"))
    print(f"sparsify: {kills} kill -9, epochs done after each: {done[1:]} of {epochs}, one run {span:.1f} s")
    assert kills == SPARSIFY_KILLS
