"""Fuzz every entry point (issue 19): bad CLI values and corrupt files end in one line, exit code 2.

Each generated case runs ``edgevision.cli.main`` in-process and must end with exactly one line on
stderr (``edgevision: error: ...``), exit code 2, no traceback, and every file that existed before
unchanged (``/dev/null`` and ``/dev/full`` included). No model may be built for real while a case
runs: validation happens before any work, which the ``no_real_build`` guard enforces (building on
the meta device, which allocates nothing, stays allowed). A few cases run as real subprocesses.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import edgevision as ev
from bench_helpers import make_row
from edgevision.results import ResultStore, ResultsFileError
from edgevision.builder import Network
from edgevision.cli import main
from edgevision.lut import LatencyTable
from edgevision.network import NetworkSpec
from edgevision.resolve import resolve

CASES = {"count": 0}
FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


# ---- the workspace: files a user already has, which no case may change -------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "existing.json").write_text('{"keep": "me"}\n')
    (root / "adir").mkdir()
    (root / "afile").write_text("a regular file\n")
    os.mkfifo(root / "fifo")
    LatencyTable(root / "table.sqlite").close()  # an empty table of this machine
    save_file({"w": torch.zeros(1)}, str(root / "ck.safetensors"), metadata={"edgevision.format": "edgevision.checkpoint/1"})
    return root


def _snapshot(root: Path) -> dict:
    state = {}
    for path in [root, *root.rglob("*"), Path("/dev/null"), Path("/dev/full")]:
        info = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else None
        state[str(path)] = (stat.S_IFMT(info.st_mode), info.st_rdev, digest)
    return state


_REAL_INIT = Network.__init__


@pytest.fixture(scope="module", autouse=True)
def no_real_build():
    """Building a network for real while a bad case runs means validation came too late: fail loudly."""

    def guarded(self, resolved):
        if torch.empty(0).device.type != "meta":
            raise AssertionError("a model was built before the bad input was refused")
        _REAL_INIT(self, resolved)

    Network.__init__ = guarded
    yield
    Network.__init__ = _REAL_INIT


@pytest.fixture(scope="module", autouse=True)
def one_parser():
    """Build the argument parser once: ~40 ms a build would be most of each case's time (parsers are reusable)."""
    import edgevision.cli as cli

    original = cli.build_parser
    parser = original()
    cli.build_parser = lambda: parser
    yield
    cli.build_parser = original


def invoke(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def assert_refused(argv, root: Path, *, mentions: str | None = None, changes_allowed: tuple[str, ...] = ()) -> str:
    """Run one case: exit 2, one ``edgevision: error:`` line on stderr, no pre-existing file changed."""
    before = _snapshot(root)
    code, err = invoke(argv)
    CASES["count"] += 1
    lines = err.splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith("edgevision: error: "), (argv, err)
    assert "Traceback" not in err
    after = _snapshot(root)
    changed = [path for path, value in before.items() if after.get(path) != value and not path.endswith(changes_allowed)]
    assert not changed or changed == [str(root)], (argv, changed)  # root's own entry: it changes when a file appears
    created = sorted(set(after) - set(before))
    assert not created, (argv, created)  # a refused run leaves no folder, lock or temporary file behind
    if mentions is not None:
        assert mentions in err, (argv, err)
    return err


# ---- bad values for every option --------------------------------------------------------------------
def _float_ok(text: str, low: float, high: float, *, open_low: bool = True, open_high: bool = False) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)


def _int_ok(text: str, low: int, high: int) -> bool:
    try:
        value = int(text)
    except ValueError:
        return False
    return low <= value <= high


garbage = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def floats_outside(low: float, high: float = math.inf, **bounds) -> st.SearchStrategy[str]:
    fixed = st.sampled_from(["nan", "inf", "-inf", "NaN", "1e999", "-1e999", "", " ", "abc", "0x10", "1,5", "--", "\x00"])
    numbers = st.floats(allow_nan=True, allow_infinity=True).map(repr)
    return st.one_of(fixed, numbers, garbage).filter(lambda t: not _float_ok(t, low, high, **bounds))


def ints_outside(low: int, high: int) -> st.SearchStrategy[str]:
    fixed = st.sampled_from(["", " ", "abc", "1.5", "1e3", "9" * 30, "0x10", "-", "\x00", str(low - 1), str(high + 1)])
    numbers = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).map(str)
    return st.one_of(fixed, numbers, garbage).filter(lambda t: not _int_ok(t, low, high))


def out_files(root: Path) -> st.SearchStrategy[str]:
    return st.sampled_from(
        ["", " ", str(root / "adir"), "/dev/full", "/dev/null", str(root / "fifo"), str(root / ("x" * 300 + ".json")),
         str(root / "missing" / "x.json"), str(root / "afile" / "x.json"), str(root / "/".join(["y" * 200] * 25))]
    )


def out_dirs(root: Path) -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", str(root / "afile"), "/dev/null", str(root / "fifo"), str(root / ("d" * 300)), str(root / "afile" / "sub")])


SHAPES = st.one_of(
    st.sampled_from(["", " ", "abc", "1x3x100000x100000", "9999999999999999999x3x64x64", "0x3x64x64", "-1x3x64x64",
                     "1x3x64x64x2", "1x3", "1x3x64x", "x", "1x3x64x64.5", "100000x3x1000x1000", "\x00"]),
    st.lists(st.integers(min_value=-3, max_value=10**12), min_size=1, max_size=6).map(lambda d: "x".join(map(str, d))).filter(
        lambda t: not (len(t.split("x")) == 4 and all(0 < int(d) <= 4096 for d in t.split("x")) and math.prod(int(d) for d in t.split("x")) < 1e8)
    ),
)

MEMORY = st.sampled_from(["1000000", "2147483647", "65536000"])  # parse as counts, refused by the memory estimate

OPSETS = ints_outside(11, 20)
POSITIVE = floats_outside(0)
NONNEGATIVE = floats_outside(0, open_low=False)
COUNT = ints_outside(1, 2**31 - 1)
NONEMPTY = st.sampled_from(["", " ", "\t", "\x00"])


def cases(root: Path):
    """(base argv, option, strategy of bad values); option None means the positional at the end of base."""
    profile = ["profile", "mobilenetv2_050", "--input", "1x3x32x32", "--no-roofline"]
    measure = ["measure", "mobilenetv2_050", "--runtime", "eager", "--budget", "0.1"]
    export = ["export", "mobilenetv2_050", str(root / "new.onnx")]
    bench = ["bench", "--models", "mobilenetv2_050", "--runtime", "eager", "--resolution", "32", "--out", str(root / "bench_out")]
    build = ["lut", "build", "mobilenetv2_050", "--table", str(root / "new.sqlite"), "--runtime", "eager"]
    validate = ["lut", "validate", "--out", str(root / "val_out"), "--train", "2", "--test", "2", "--runtime", "eager"]
    predict = ["lut", "predict", "mobilenetv2_050", "--table", str(root / "table.sqlite"), "--runtime", "eager"]
    train = ["train", "mobilenetv2_050", "--epochs", "1", "--out", str(root / "run_out")]
    evaluate = ["eval", str(root / "ck.safetensors")]
    return [
        (profile, "--input", SHAPES), (profile, "--depth", ints_outside(0, 2**31 - 1)), (profile, "--threads", ints_outside(1, 1024)),
        (profile, "--json", out_files(root)),
        (measure, "--threads", ints_outside(1, 1024)), (measure, "--batch", COUNT), (measure, "--input", SHAPES),
        (measure, "--budget", POSITIVE), (measure, "--json", out_files(root)),
        (export, "--input", SHAPES), (export, "--opset", OPSETS), (export, "--atol", NONNEGATIVE), (export[:2], None, out_files(root)),
        (bench, "--threads", ints_outside(1, 1024)), (bench, "--batch", COUNT), (bench, "--resolution", st.one_of(COUNT, MEMORY)),
        (bench, "--budget-ms", POSITIVE), (bench, "--per-measurement-budget", POSITIVE), (bench, "--out", out_dirs(root)),
        (build, "--networks", COUNT), (build, "--seed", ints_outside(0, 2**32 - 1)), (build, "--input-size", st.one_of(COUNT, MEMORY)),
        (build, "--budget", POSITIVE), (build, "--table", out_files(root)), (build, "--threads", ints_outside(1, 1024)), (build, "--batch", COUNT),
        (validate, "--train", COUNT), (validate, "--test", COUNT), (validate, "--block-budget", POSITIVE),
        (validate, "--network-budget", POSITIVE), (validate, "--out", out_dirs(root)),
        (predict, "--input-size", st.one_of(COUNT, MEMORY)), (predict, "--predictor", NONEMPTY), (predict, "--json", out_files(root)),
        (train, "--epochs", COUNT), (train, "--resolution", st.one_of(COUNT, MEMORY, st.sampled_from(["1", "7"]))),
        (train, "--batch-size", st.one_of(COUNT, st.sampled_from(["10000000", "2147483647"]))), (train, "--lr", POSITIVE),
        (train, "--ema", floats_outside(0, 1, open_high=True)), (train, "--grad-clip", POSITIVE), (train, "--cutmix", NONNEGATIVE),
        (train, "--seed", ints_outside(0, 2**32 - 1)), (train, "--workers", ints_outside(0, 256)), (train, "--out", out_dirs(root)),
        (train, "--data", NONEMPTY),
        (evaluate, "--bins", ints_outside(1, 1000)), (evaluate, "--batch-size", ints_outside(1, 65536)), (evaluate, "--out", out_dirs(root)),
        (evaluate, "--json", out_files(root)), (evaluate, "--data", NONEMPTY),
        (["spec", "mobilenetv2_050"], "--width", POSITIVE), (["spec", "mobilenetv2_050"], "--resolution", ints_outside(1, 65536)),
        (["models", "mobilenetv2_050"], "--resolution", st.one_of(ints_outside(1, 65536), st.sampled_from(["8", "31"]))),
    ]


def fuzz_options(table, root: Path, examples: int, *, name_the_option: bool = False) -> None:
    """Draw (base, option, bad value) cases from ``table`` and check each is refused; a value drawn as
    (task, value) also passes ``--task task`` (a dense task's common option). ``name_the_option``: the error
    must name the option (its last word), so a refusal for another reason (a damaged base file) cannot pass."""

    @settings(FUZZ, max_examples=examples)
    @given(data=st.data())
    def check(data):
        base, option, values = data.draw(st.sampled_from(table))
        value = data.draw(values)
        extra = []
        if isinstance(value, tuple) and option is None:  # several positionals, one of them bad
            extra, value = list(value[:-1]), value[-1]
        elif isinstance(value, tuple):
            extra, value = ["--task", value[0]], value[1]
        argv = [*base, *extra, value] if option is None else [*base, *extra, f"{option}={value}"]  # '=': a value may start with '-'
        err = assert_refused(argv, root)
        if name_the_option and option is not None:
            assert option.split("-")[-1] in err.lower(), (argv, err)

    check()


def test_bad_option_values_are_refused_in_one_line(ws):
    fuzz_options(cases(ws), ws, 650)


# ---- the commands added since the first fuzz pass: deploy, prune, sparsify, search, weights import, features, --task
def newer_cases(root: Path):
    """(base argv, option, bad values) for the commands that landed after the first pass; the dense tasks only get
    their common options (their own options belong to each task)."""
    from edgevision.task_spec import TASK_NAMES

    deploy = ["deploy", "mobilenetv2_050", "--runtimes", "ort", "--precisions", "fp32", "--out", str(root / "deploy_out")]
    prune = ["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--epochs", "0", "--out", str(root / "prune_out")]
    prune_ms = ["prune", "mobilenetv2_050", "--epochs", "0", "--out", str(root / "prune_out")]
    sparsify = ["sparsify", "mobilenetv2_050", "--pattern", "2:4", "--epochs", "0", "--out", str(root / "sparse_out")]
    search = ["search", "--latency-ms", "5", "--trials", "1", "--table", str(root / "search.sqlite"), "--out", str(root / "search_out")]
    weights = ["weights", "import", str(root / "ck.safetensors"), "--model", "mobilenetv2_050", "--out", str(root / "imported.safetensors")]
    features = ["features", "mobilenetv2_050"]
    names = st.sampled_from(["", " ", "no_such_model", "mobilenetv2_05", "\t", "../x"])
    lists = st.sampled_from(["", ",", " , ", "tpu", "ort,tpu", "fp16", "int4"])
    NONFINITE = st.sampled_from(["nan", "inf", "-inf", "1e999", "", "abc", "1,5"])
    tasks = st.sampled_from([t for t in TASK_NAMES if t != "classification"])
    table = [
        (deploy, "--max-drop", NONNEGATIVE), (deploy, "--input-size", st.one_of(COUNT, MEMORY)), (deploy, "--calibration", COUNT),
        (deploy, "--search", ints_outside(0, 2**31 - 1)), (deploy, "--verification", COUNT), (deploy, "--qat", ints_outside(0, 2**31 - 1)),
        (deploy, "--min-sqnr", NONFINITE), (deploy, "--threads", ints_outside(1, 1024)), (deploy, "--budget", POSITIVE),
        (deploy, "--out", out_dirs(root)), (deploy, "--runtimes", lists), (deploy, "--precisions", lists), (deploy, "--data", NONEMPTY),
        (deploy, "--checkpoint", st.sampled_from(["", str(root / "missing.safetensors"), str(root / "adir"), str(root / "afile")])),
        (deploy[:1], None, names),
        (prune, "--target-ratio", floats_outside(0, 1, open_high=True)), (prune_ms, "--target-ms", POSITIVE),
        (prune, "--epochs", ints_outside(0, 2**31 - 1)), (prune, "--step-steps", ints_outside(0, 2**31 - 1)),
        (prune, "--step-fraction", floats_outside(0, 1, open_high=True)), (prune, "--resolution", st.one_of(COUNT, MEMORY, st.sampled_from(["1", "7"]))),
        (prune, "--eval-images", COUNT), (prune, "--time-budget", POSITIVE), (prune, "--seed", ints_outside(0, 2**32 - 1)),
        (prune, "--out", out_dirs(root)), (prune, "--data", NONEMPTY), (prune, "--runtime", st.sampled_from(["", "tpu", "all"])),
        (prune, "--checkpoint", st.sampled_from(["", str(root / "missing.safetensors"), str(root / "adir"), str(root / "afile")])),
        (prune[:1], None, names),
        (sparsify, "--pattern", st.sampled_from(["", " ", "0:4", "4:4", "5:4", "2:0", "a:b", "nan", "inf", "0", "1", "-0.5", "1e999", "2:4:8"])),
        (sparsify, "--epochs", ints_outside(0, 2**31 - 1)), (sparsify, "--resolution", st.one_of(COUNT, MEMORY, st.sampled_from(["1", "7"]))),
        (sparsify, "--out", out_dirs(root)), (sparsify, "--data", NONEMPTY), (sparsify[:1], None, names),
        (search, "--latency-ms", POSITIVE), (search, "--trials", COUNT), (search, "--epochs", COUNT), (search, "--supernet-epochs", COUNT),
        (search, "--resolution", st.one_of(COUNT, MEMORY)), (search, "--time-budget", POSITIVE), (search, "--threads", ints_outside(1, 1024)),
        (search, "--workers", ints_outside(1, 1024)), (search, "--seed", ints_outside(0, 2**32 - 1)), (search, "--out", out_dirs(root)),
        (search, "--table", out_files(root)), (search, "--data", NONEMPTY), (search, "--space", names), (search, "--strategy", names),
        (search, "--runtime", st.sampled_from(["", "tpu", "all"])), (search, "--storage", st.sampled_from(["", " ", "not a url"])),
        (search, "--zoo", st.sampled_from(["", str(root / "missing.json"), str(root / "adir"), str(root / "afile"), str(root / "existing.json")])),
        (weights, "--num-classes", COUNT), (weights, "--in-chans", ints_outside(1, 4096)), (weights, "--model", names),
        (weights, "--out", st.one_of(out_files(root), st.sampled_from([str(root / "x.pt"), str(root / "adir" / "x.pth")]))),
        (weights, "--json", out_files(root)), (weights, "--from", names),
        (["weights", "import", "--model", "mobilenetv2_050", "--out", str(root / "imported.safetensors")], None,
         st.sampled_from(["", " ", str(root / "missing.pth"), str(root / "adir"), str(root / "afile"), str(root / "fifo")])),
        (features, "--resolution", ints_outside(1, 65536)), (features, "--output-stride", st.sampled_from(["", "4", "64", "0", "-8", "16.0"])),
        (features[:1], None, names),
    ]
    for command, base in (("train", ["train", "mobilenetv2_050", "--epochs", "1", "--out", str(root / "task_out")]), ("eval", ["eval", str(root / "ck.safetensors")])):
        table.append((base, "--task", st.sampled_from(["", "classify", "Segmentation", "detect", "sr"])))
        options = ([("--epochs", COUNT), ("--batch-size", COUNT), ("--lr", POSITIVE), ("--seed", ints_outside(0, 2**32 - 1)), ("--out", out_dirs(root)),
                    ("--resolution", st.one_of(COUNT, MEMORY)), ("--data", NONEMPTY), ("--workers", ints_outside(0, 256))] if command == "train" else
                   [("--batch-size", ints_outside(1, 65536)), ("--out", out_dirs(root)), ("--json", out_files(root)), ("--data", NONEMPTY)])
        for option, values in options:
            table.append((base, option, st.tuples(tasks, values)))
    return table


def test_bad_option_values_of_the_newer_commands_are_refused_in_one_line(ws):
    fuzz_options(newer_cases(ws), ws, 300)


# ---- the dense tasks' own options, `edgevision upscale`, search's newer flags ---------------------------
@pytest.fixture(scope="module")
def sr_files(ws):
    """A real x4 CARN-M checkpoint and a 16x16 PNG: upscale's valid inputs, beside which one bad value is drawn."""
    from PIL import Image

    checkpoint = ws / "sr_x4.safetensors"
    ev.save(ev.create_model("carn_m"), checkpoint, {"task": "super-resolution"})
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ws / "lr.png")
    return checkpoint, ws / "lr.png"


def dense_cases(root: Path, sr_checkpoint: Path, lr_image: Path):
    """(base, option, bad values) for each dense task's own train/eval options (commands/tasks/*.py add_arguments),
    `upscale` and search's newer flags. Every value here is refused before any data is made or model built."""

    def train(model, task):
        return ["train", model, "--task", task, "--epochs", "1", "--out", str(root / f"{task}_out")]

    def evaluate(task):
        return ["eval", str(root / "ck.safetensors"), "--task", task]

    seg, det = train("lraspp_mobilenet_v3_small", "segmentation"), train("ssdlite320_mobilenetv2", "detection")
    sr, depth = train("carn_m", "super-resolution"), train("fcrn_mobilenetv2_100", "depth")
    choices = st.sampled_from(["", " ", "Skip", "ignore", "none", "\x00"])
    ignore_index, score, iou = ints_outside(0, 255), floats_outside(0, 1, open_low=False, open_high=True), floats_outside(0, 1)
    sr_scale, overlap = st.one_of(ints_outside(2, 8), st.sampled_from(["5", "6", "7"])), ints_outside(0, 1024)
    max_depth = st.one_of(POSITIVE, st.sampled_from(["0.001", "0.0001"]))  # at or below the default minimum depth
    min_depth = st.one_of(POSITIVE, st.sampled_from(["10", "20", "1e300"]))  # at or above fcrn's maximum depth (10 m)
    upscale = ["upscale", str(sr_checkpoint), str(lr_image), str(root / "up.png")]
    files = st.sampled_from(["", str(root / "missing.safetensors"), str(root / "adir"), str(root / "afile"), str(root / "existing.json"),
                             str(root / "ck.safetensors")])
    search = ["search", "--latency-ms", "5", "--trials", "1", "--table", str(root / "search.sqlite"), "--out", str(root / "search_out")]
    prune = ["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--epochs", "0", "--out", str(root / "prune_out")]
    return [
        (prune, "--table", out_files(root)), (prune, "--threads", ints_outside(1, 1024)),
        (prune, "--predictor", st.just(str(root / "existing.json"))),  # without --table
        ([*prune, "--table", str(root / "table.sqlite")], "--predictor", files),
        (seg, "--ignore-index", ignore_index), (seg, "--seg-on-error", choices), (seg, "--aux-weight", NONNEGATIVE),
        (seg, "--seg-scenes", ints_outside(1, 100_000)),
        (det, "--score-threshold", score), (det, "--nms-iou", iou), (det, "--bad-annotations", choices),
        (sr, "--scale", sr_scale), (sr, "--tile", COUNT), (sr, "--tile-overlap", overlap), (sr, "--patch-size", ints_outside(4, 1024)),
        (sr, "--steps-per-epoch", COUNT), (sr, "--val-size", COUNT),
        (depth, "--max-depth", max_depth), (depth, "--min-depth", min_depth), (depth, "--depth-scale", POSITIVE),
        (depth, "--depth-scenes", ints_outside(1, 100_000)), (depth, "--depth-max-scale", floats_outside(1, 4, open_low=False)),
        (depth, "--resolution", st.sampled_from(["1", "16", "31"])),
        (evaluate("segmentation"), "--ignore-index", ignore_index), (evaluate("detection"), "--score-threshold", score),
        (evaluate("detection"), "--nms-iou", iou), (evaluate("detection"), "--bad-annotations", choices),
        (evaluate("super-resolution"), "--scale", ints_outside(2, 8)), (evaluate("super-resolution"), "--tile-overlap", overlap),
        (evaluate("super-resolution"), "--max-drop-db", NONNEGATIVE), (evaluate("super-resolution"), "--int8-size", ints_outside(8, 1024)),
        (evaluate("depth"), "--max-depth", POSITIVE), (evaluate("depth"), "--min-depth", POSITIVE), (evaluate("depth"), "--depth-scale", POSITIVE),
        (upscale, "--scale", st.one_of(COUNT, st.sampled_from(["2", "3", "8"]))),  # not the checkpoint's x4
        (upscale, "--tile", st.one_of(COUNT, st.sampled_from(["4", "8", "16"]))),  # not above the 16-pixel overlap
        (upscale, "--tile-overlap", st.one_of(overlap, st.sampled_from(["256", "300"]))),  # not below the 256-pixel tile
        (upscale[:1], None, st.tuples(files, st.just(str(lr_image)), st.just(str(root / "up.png")))),
        (upscale[:2], None, st.tuples(st.sampled_from(["", str(root / "missing.png"), str(root / "adir"), str(root / "afile"),
                                                       str(root / "existing.json"), str(sr_checkpoint)]), st.just(str(root / "up.png")))),
        (upscale[:3], None, st.one_of(out_files(root), st.sampled_from([str(root / "up.jpg"), str(root / "up")]))),
        ([*search, "--strategy", "repnas"], "--branch-budget", floats_outside(0, 1)),
        (search, "--branch-budget", st.sampled_from(["0.5", "1", "nan"])),  # only for --strategy repnas
        (search, "--accuracy", st.sampled_from(["", " ", "supernets", "Train", "inherit"])),
        ([*search, "--strategy", "dnas"], "--accuracy", st.just("supernet")), ([*search, "--strategy", "repnas"], "--accuracy", st.just("supernet")),
        (search, "--predictor", st.sampled_from(["", " ", str(root / "missing.json"), str(root / "adir"), str(root / "afile"),
                                                 str(root / "existing.json"), str(root / "ck.safetensors")])),
        (search, "--calibrate", ints_outside(0, 50)),
        ([*search, "--no-measure"], "--calibrate", st.integers(1, 50).map(str)),  # calibrating measures networks end to end
    ]


def test_bad_values_of_the_dense_task_options_upscale_and_search_flags_are_refused(ws, sr_files):
    fuzz_options(dense_cases(ws, *sr_files), ws, 200, name_the_option=True)


# ---- corrupt files ----------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)

# (path in a results row, a value of the wrong type there)
ROW_FIELDS = [("model",), ("costs",), ("costs", "macs"), ("costs", "params"), ("result",), ("result", "median_ms"), ("result", "runs"),
              ("result", "noisy"), ("result", "context"), ("result", "context", "threads"), ("result", "context", "input_shape"),
              ("result", "context", "fingerprint"), ("result", "context", "runtime"), ("result", "context", "runtime_versions")]
TYPES = {"model": str, "costs": dict, "macs": (int, float), "params": (int, float), "result": dict, "median_ms": (int, float),
         "runs": int, "noisy": bool, "context": dict, "threads": int, "input_shape": list, "fingerprint": str, "runtime": str,
         "runtime_versions": dict}


def _wrong_for(field: str, value) -> bool:
    kind = TYPES[field]
    if isinstance(value, bool) and kind is not bool:
        return True
    return not isinstance(value, kind) or (field == "input_shape" and not all(isinstance(v, int) and not isinstance(v, bool) for v in value))


def test_results_lines_of_the_wrong_shape_are_refused_by_line_number(ws):
    out = ws / "bench_results"
    out.mkdir()
    good = json.dumps(make_row("mobilenetv2_050", "eager", 1.0, 1e8, 70.0))

    @settings(FUZZ, max_examples=80)
    @given(path=st.sampled_from(ROW_FIELDS), value=JSON, delete=st.booleans(), top=st.one_of(st.none(), JSON.filter(lambda v: not isinstance(v, dict))))
    def check(path, value, delete, top):
        row = json.loads(good)
        if top is not None:
            row = top
        else:
            parent = row
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            elif _wrong_for(path[-1], value):
                parent[path[-1]] = value
            else:
                del parent[path[-1]]
        (out / "results.jsonl").write_text(good + "\n" + json.dumps(row) + "\n")
        assert_refused(["bench", "--models", "mobilenetv2_050", "--runtime", "eager", "--resolution", "64", "--out", out], ws, mentions="line 2")

    check()


def test_torn_and_random_byte_lines_are_moved_aside_and_good_rows_kept(tmp_path):
    rows = [make_row(f"m{i}", "eager", 1.0 + i, 1e8, None) for i in range(3)]

    @settings(FUZZ, max_examples=60)
    @given(junk=st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"")).filter(_not_json), min_size=1, max_size=3),
           torn=st.booleans())
    def check(junk, torn):
        CASES["count"] += 1
        path = tmp_path / "results.jsonl"
        side = path.with_name("results.jsonl.damaged")
        side.unlink(missing_ok=True)
        lines = [json.dumps(r).encode() for r in rows]
        mixed = [lines[0], *junk, *lines[1:]]
        data = b"\n".join(mixed) + b"\n"
        if torn:  # a write killed mid-line: the last line has no newline
            data += json.dumps(rows[0]).encode()[:25]
        path.write_bytes(data)
        store = ResultStore(path)
        assert store.rows == rows
        assert [json.loads(line) for line in path.read_bytes().splitlines()] == rows  # valid JSON Lines again
        assert side.read_bytes().count(b"\n") == len(junk) + torn  # nothing thrown away

    check()


def _not_json(data: bytes) -> bool:
    if not data.strip():
        return False
    try:
        json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return True
    return False


def _table(path: Path, setup: str, *params) -> Path:
    LatencyTable(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(setup, params)
    return path


def test_latency_tables_of_another_schema_or_with_bad_medians_are_refused(ws, tmp_path):
    key = json.dumps({"block": {"spec": {"kind": "x"}}, "runtime": "eager", "threads": 2})
    insert = "INSERT INTO entries VALUES (?, 'x', 'eager', 2, ?, NULL, NULL, 1, 0, 'now')"
    other = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE photos(id INTEGER, path TEXT)")
    renamed = tmp_path / "renamed.sqlite"
    with contextlib.closing(sqlite3.connect(renamed)) as db, db:
        db.execute("CREATE TABLE header(name TEXT, value TEXT)")
        db.execute("CREATE TABLE entries(key TEXT, latency REAL)")
    variants = {
        "other app": (other, "not an edgevision latency table"),
        "other schema": (renamed, "has columns"),
        "format 2": (_table(tmp_path / "v2.sqlite", "UPDATE header SET value = '2' WHERE name = 'format_version'"), "format 2"),
        "header JSON": (_table(tmp_path / "h.sqlite", "UPDATE header SET value = '{bad' WHERE name = 'fingerprint'"), "not valid JSON"),
        "fingerprint type": (_table(tmp_path / "f.sqlite", "UPDATE header SET value = '[1]' WHERE name = 'fingerprint'"), "fingerprint"),
        "no fingerprint": (_table(tmp_path / "n.sqlite", "DELETE FROM header WHERE name = 'fingerprint'"), "fingerprint"),
        "not sqlite": (tmp_path / "bytes.sqlite", "not a latency table"),
    }
    (tmp_path / "bytes.sqlite").write_bytes(os.urandom(2048))
    for name, median in (("null", None), ("text", "fast"), ("negative", -1.0), ("blob", b"\x00")):
        variants[f"median {name}"] = (_table(tmp_path / f"m-{name}.sqlite", insert, key, median), "no valid median_ms")
    for name, (path, message) in variants.items():
        copy = ws / f"table-{name.replace(' ', '-')}.sqlite"
        copy.write_bytes(path.read_bytes())
        assert_refused(["lut", "predict", "mobilenetv2_050", "--table", copy, "--runtime", "eager"], ws, mentions=message)


def test_predictor_files_of_the_wrong_shape_are_refused(ws):
    fingerprint = LatencyTable(ws / "table.sqlite").fingerprint
    good = {"format": "edgevision-latency-predictor", "version": 1, "setting": {"runtime": "eager", "threads": 2, "batch": 1, "model_form": "deploy"},
            "table_fingerprint": fingerprint, "correction": {"features": ["sum_ms", "blocks", "megabytes", "constant"],
            "coefficients": [1.0, 0.0, 0.0, 0.0], "relative_residual_std": 0.1}, "regressor": None}
    path = ws / "predictor.json"
    mutations = st.one_of(
        JSON.filter(lambda v: not isinstance(v, dict)).map(lambda v: ("whole", v)),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=8).filter(lambda c: len(c) != 4).map(lambda c: ("coefficients", c)),
        st.lists(st.one_of(st.text(max_size=3), st.none(), st.just(float("nan")), st.just(float("inf"))), min_size=4, max_size=4).map(lambda c: ("coefficients", c)),
        st.sampled_from(["setting", "table_fingerprint", "correction", "regressor", "format", "version"]).map(lambda k: ("delete", k)),
        st.tuples(st.sampled_from(["setting", "table_fingerprint", "correction", "regressor"]), JSON.filter(lambda v: not isinstance(v, dict) and v is not None)).map(lambda kv: ("set", kv)),
        st.sampled_from([float("nan"), -1.0, "x", None]).map(lambda v: ("std", v)),
    )

    @settings(FUZZ, max_examples=80)
    @given(mutation=mutations)
    def check(mutation):
        kind, value = mutation
        data = json.loads(json.dumps(good))
        if kind == "whole":
            data = value
        elif kind == "coefficients":
            data["correction"]["coefficients"] = value
        elif kind == "delete":
            del data[value]
        elif kind == "set":
            data[value[0]] = value[1]
        else:
            data["correction"]["relative_residual_std"] = value
        path.write_text(json.dumps(data))
        assert_refused(["lut", "predict", "mobilenetv2_050", "--table", ws / "table.sqlite", "--runtime", "eager", "--predictor", path], ws)

    check()
    path.write_text("[1, 2")
    assert_refused(["lut", "predict", "mobilenetv2_050", "--table", ws / "table.sqlite", "--runtime", "eager", "--predictor", path], ws)


def _spec_json(**changes) -> str:
    spec = ev.get_spec("mobileone_s0").with_classes(10).with_input_channels(1).to_dict()
    for where, value in changes.items():
        target = spec
        *parents, last = where.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return json.dumps(spec)


CHECKPOINT_HEADERS = {
    "no metadata key": {"edgevision.spec": _spec_json(), "edgevision.form": "train"},
    "no spec key": {"edgevision.metadata": "{}", "edgevision.form": "train"},
    "no form key": {"edgevision.metadata": "{}", "edgevision.spec": _spec_json()},
    "metadata not JSON": {"edgevision.metadata": "{not json"},
    "metadata a list": {"edgevision.metadata": "[1, 2]"},
    "metadata a number": {"edgevision.metadata": "1e999"},
    "spec not JSON": {"edgevision.spec": "{"},
    "spec a list": {"edgevision.spec": "[]"},
    "spec nested 5000 deep": {"edgevision.spec": "[" * 5000 + "]" * 5000},
    "spec of a stage": {"edgevision.spec": json.dumps({"kind": "stage", "blocks": []})},
    "form unknown": {"edgevision.form": "fast"},
    "format other": {"edgevision.format": "edgevision.checkpoint/2"},
    "preprocess a list": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": [32]})},
    "resolution text": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"resolution": "abc"}})},
    "resolution huge": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"resolution": 10**12}})},
    "mean strings": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"mean": ["a"], "std": [1.0]}})},
    "std zero": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"mean": [0.5], "std": [0.0]}})},
    "mean for 3 channels": {"edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"mean": [0.1, 0.2, 0.3]}})},
    "dataset a number": {"edgevision.metadata": json.dumps({"dataset": 5})},
    "class names a dict": {"edgevision.metadata": json.dumps({"dataset": "default", "class_names": {"a": 1}})},
    "1e9 conv branches": {"edgevision.spec": _spec_json(stem__0__num_conv_branches=10**9)},
    "1e12 channels": {"edgevision.spec": _spec_json(stem__0__out_channels=10**12)},
    "infinite width": {"edgevision.spec": _spec_json(width_multiplier=1e308 * 10)},
    "channels past memory": {"edgevision.spec": _spec_json(**{f"stages__{i}__blocks__{j}__out_channels": 65536 for i in (2, 3) for j in range(2)})},
    "expansion inf": {"edgevision.spec": _spec_json(stem__0__se_ratio=float("inf"))},
    "tensors of another model": {},
}


def test_corrupt_checkpoints_are_diagnosed_before_building(ws):
    base = {"edgevision.format": "edgevision.checkpoint/1", "edgevision.spec": _spec_json(), "edgevision.form": "train",
            "edgevision.metadata": json.dumps({"dataset": "default", "preprocess": {"resolution": 32, "mean": [0.1], "std": [0.3]}})}
    for name, changes in CHECKPOINT_HEADERS.items():
        header = {**base, **changes}
        if name.startswith("no "):
            header = {"edgevision.format": base["edgevision.format"], **changes}
        path = ws / f"ck-{name.replace(' ', '-')}.safetensors"
        save_file({"w": torch.zeros(2, 2)}, str(path), metadata=header)
        assert_refused(["eval", path], ws)
    for name, data in {"random bytes": os.urandom(300), "empty": b"", "truncated": (ws / "ck.safetensors").read_bytes()[:40]}.items():
        path = ws / f"ck-{name.replace(' ', '-')}.safetensors"
        path.write_bytes(data)
        assert_refused(["eval", path], ws)
    assert_refused(["eval", ws / "adir"], ws)


def test_spec_json_from_anywhere_raises_only_value_or_type_errors():
    base = ev.get_spec("mobilenetv2_050").to_dict()
    leaves = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))
        elif not isinstance(node, str):
            leaves.append(path)

    walk(base, ())
    bad_numbers = st.sampled_from([float("inf"), float("nan"), -1, 0, 10**12, 2**64, 1e308, -(10**9), "8", None, [], True])

    @settings(FUZZ, max_examples=120)
    @given(path=st.sampled_from(leaves), value=st.one_of(bad_numbers, JSON))
    def check(path, value):
        CASES["count"] += 1
        data = json.loads(json.dumps(base))
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        try:
            resolve(NetworkSpec.from_json(json.dumps(data)))
        except (ValueError, TypeError):
            pass

    check()
    for text in ("[" * 3000 + "]" * 3000, '{"kind": "network", "stem": ' + "[" * 3000 + "]" * 3000 + "}"):
        with pytest.raises(ValueError, match="nested too deeply"):
            NetworkSpec.from_json(text)


def test_a_size_past_memory_names_what_it_needs_and_what_the_machine_has(ws):
    """Issue 19, deliverable 2: the refusal names both numbers (estimated need, available), before any allocation."""
    import re

    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15, "EB": 1e18, "ZB": 1e21, "YB": 1e24}

    def parse(text: str) -> float:
        number, unit = text.split()
        return float(number) * units[unit]

    for argv in (["profile", "mobilenetv2_050", "--input", "1x3x100000x100000", "--no-roofline"],
                 ["train", "mobilenetv2_050", "--resolution", "65536000", "--epochs", "1", "--out", ws / "r"],
                 ["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--resolution", "2147483647", "--out", ws / "p"]):
        err = assert_refused(argv, ws)
        match = re.search(r"needs about (.+) of memory but this machine has (.+) available", err)
        assert match, err
        assert parse(match[1]) > parse(match[2]) > 0, err


def test_python_api_rejects_wrong_types_and_infinite_widths_clearly():
    for name in (None, 123, 1.5):
        with pytest.raises(TypeError, match="model name must be a string"):
            ev.create_model(name)
    for width in (math.inf, math.nan, 1e9):
        with pytest.raises(ValueError, match="width_multiplier"):
            resolve(ev.get_spec("mobilenetv2_050"), width_multiplier=width)


def _npz(path: Path, images, labels, **extra) -> Path:
    np.savez(path, images=images, labels=labels, **extra)
    return path


def test_training_data_with_nan_one_class_or_bad_labels_is_refused_with_count_and_first_index(ws):
    rng = np.random.default_rng(0)

    @settings(FUZZ, max_examples=40)
    @given(bad=st.lists(st.integers(0, 19), min_size=1, max_size=5, unique=True), value=st.sampled_from([np.nan, np.inf, -np.inf]))
    def nan_images(bad, value):
        images = rng.random((20, 1, 8, 8)).astype(np.float32)
        for index in bad:
            images[index, 0, index % 8, 3] = value
        path = _npz(ws / "nan.npz", images, np.arange(20) % 2)
        assert_refused(["train", "mobilenetv2_050", "--data", f"npz:{path}", "--epochs", "1", "--out", ws / "r"], ws,
                       mentions=f"{len(bad)} image(s) contain NaN or infinite pixels (first: image {min(bad)})")

    nan_images()
    images = rng.integers(0, 255, (20, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(20) % 2
    out_of_range = labels.copy()
    out_of_range[[5, 9]] = 7
    negative = labels.copy()
    negative[3] = -2
    for name, path, message in [
        ("one class", _npz(ws / "one.npz", images, np.zeros(20, dtype=np.int64)), "at least 2 classes"),
        ("past class_names", _npz(ws / "range.npz", images, out_of_range, class_names=np.array(["a", "b"])), "2 label(s) outside 0..1 (first: index 5"),
        ("negative", _npz(ws / "neg.npz", images, negative), "(first: index 3, label -2)"),
        ("0-d class_names", _npz(ws / "names.npz", images, labels, class_names=np.array("ab")), "class_names must be a 1-D"),
    ]:
        assert_refused(["train", "mobilenetv2_050", "--data", f"npz:{path}", "--epochs", "1", "--out", ws / "r"], ws, mentions=message)


USER_MODELS = {
    "raises": "def factory():\n    raise RuntimeError('no weights here')\n",
    "needs args": "def factory(width):\n    return width\n",
    "not a module": "def factory():\n    return 42\n",
    "syntax error": "def factory(:\n",
    "import error": "import no_such_module_xyz\n",
    "no factory": "x = 1\n",
    "exits": "def factory():\n    raise SystemExit(3)\n",
}


def test_user_model_files_that_fail_give_one_line(ws):
    for name, source in USER_MODELS.items():
        path = ws / f"user_{name.replace(' ', '_')}.py"
        path.write_text(source)
        assert_refused(["profile", f"{path}:factory", "--input", "1x3x32x32", "--no-roofline"], ws)
    assert_refused(["profile", f"{ws / 'missing.py'}:factory"], ws)


# ---- writes: devices are never replaced, a full disk is exit 2 ------------------------------------------
def test_atomic_writes_refuse_fifos_and_devices_and_write_through_symlinks(tmp_path):
    from edgevision.atomic import atomic_write_text, check_writable

    os.mkfifo(tmp_path / "fifo")
    for target in (tmp_path / "fifo", Path("/dev/null")):
        with pytest.raises(OSError, match="not a regular file"):
            check_writable(target)
    link = tmp_path / "link.json"
    (tmp_path / "real.json").write_text("old")
    link.symlink_to(tmp_path / "real.json")
    atomic_write_text(link, "new")
    assert link.is_symlink() and (tmp_path / "real.json").read_text() == "new"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_dev_full_is_never_replaced(ws, monkeypatch):
    """Runs only after the FIFO check above passed; os.replace is guarded too, so even a regression cannot destroy /dev/full."""
    from edgevision.atomic import atomic_write_text

    os.mkfifo(ws / "fifo2")
    with pytest.raises(OSError):
        atomic_write_text(ws / "fifo2", "x")
    assert stat.S_ISFIFO(os.lstat(ws / "fifo2").st_mode)
    original = os.replace

    def guarded_replace(source, target, *args, **kwargs):
        if os.path.exists(target) and not stat.S_ISREG(os.stat(target).st_mode):
            raise AssertionError(f"would replace the non-regular file {target}")
        return original(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", guarded_replace)
    for argv in (["profile", "mobilenetv2_050", "--input", "1x3x32x32", "--no-roofline", "--json", "/dev/full"],
                 ["eval", ws / "ck.safetensors", "--json", "/dev/full"],
                 ["export", "mobilenetv2_050", "/dev/full"]):
        assert_refused(argv, ws, mentions="not a regular file")
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_text("/dev/full", "x")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_full_disk_is_exit_2_and_leaves_the_old_file(tmp_path, monkeypatch):
    import errno

    import edgevision.atomic as atomic

    target = tmp_path / "report.json"
    target.write_text("old report")

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(atomic, "_fsync", full)
    model = tmp_path / "tiny.py"
    model.write_text("import torch\n\ndef factory():\n    return torch.nn.Conv2d(3, 4, 3)\n")
    code, err = invoke(["profile", f"{model}:factory", "--input", "1x3x8x8", "--no-roofline", "--json", target])
    assert code == 2 and "no space left" in err and len(err.splitlines()) == 1, err
    assert target.read_text() == "old report" and not list(tmp_path.glob(".*.tmp"))


# ---- durability: locks, stale temporaries ---------------------------------------------------------------
def test_a_second_bench_on_the_same_out_is_refused_naming_the_first(ws):
    from edgevision.locking import exclusive_lock

    out = ws / "locked_out"
    out.mkdir()
    with exclusive_lock(out / ".lock", "test"):
        assert_refused(["bench", "--models", "mobilenetv2_050", "--runtime", "eager", "--resolution", "64", "--out", out], ws,
                       mentions=f"pid {os.getpid()}")


def test_a_second_lut_build_on_the_same_table_is_refused(ws):
    from edgevision.locking import exclusive_lock

    table = ws / "busy.sqlite"
    with exclusive_lock(ws / ".busy.sqlite.lock", "test"):
        assert_refused(["lut", "build", "mobilenetv2_050", "--table", table, "--runtime", "eager"], ws, mentions=f"pid {os.getpid()}")
        # prune --table measures missing blocks into the table: held by a build, it is refused before any model is built
        assert_refused(["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--table", table, "--runtime", "eager", "--out", ws / "prune_busy"],
                       ws, mentions=f"pid {os.getpid()}")


def test_a_second_writer_of_any_output_folder_is_refused_naming_the_first(ws):
    """train (every task), lut validate, deploy, prune, sparsify and search hold their --out like bench does."""
    from edgevision.locking import exclusive_lock

    out = ws / "shared_out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"a finished result")  # what the first writer already wrote stays as it is
    writers = [
        ["train", "mobilenetv2_050", "--epochs", "1", "--out", out],
        ["train", "mobilenetv2_050", "--task", "segmentation", "--epochs", "1", "--out", out],
        ["lut", "validate", "--out", out, "--train", "2", "--test", "2", "--runtime", "eager"],
        ["deploy", "mobilenetv2_050", "--runtimes", "ort", "--precisions", "fp32", "--out", out],
        ["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--epochs", "0", "--out", out],
        ["sparsify", "mobilenetv2_050", "--pattern", "2:4", "--epochs", "0", "--out", out],
        ["search", "--latency-ms", "5", "--trials", "1", "--table", ws / "search.sqlite", "--out", out],
    ]
    with exclusive_lock(out / ".lock", "test"):
        for argv in writers:
            err = assert_refused(argv, ws, mentions=f"pid {os.getpid()}")
            assert "is in use by" in err, (argv, err)
    assert (out / "model.safetensors").read_bytes() == b"a finished result"


def test_stale_lock_and_temporaries_of_a_killed_run_are_taken_over_and_removed(tmp_path):
    from edgevision.bench import BenchConfig, run_bench

    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid  # a process that has exited: what a kill -9 leaves behind
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead, "started": "2026-01-01T00:00:00+00:00"}))
    leftover = tmp_path / f".report.md.{dead}.abc123.tmp"
    leftover.write_text("half a report")
    mine = tmp_path / f".report.md.{os.getpid()}.def456.tmp"  # a live writer's temporary stays
    mine.write_text("being written")
    bench = run_bench(BenchConfig(models=(), runtimes=("eager",), threads=1), tmp_path)
    assert any(f"pid {dead}" in note for note in bench.notes) and any("removed 1 temporary" in note for note in bench.notes)
    assert not leftover.exists() and mine.exists()
    assert (tmp_path / ".lock").read_text() == ""  # released cleanly: no stale holder left behind


def test_every_output_folder_lock_removes_a_killed_writers_temporaries(tmp_path):
    """train, deploy, prune, sparsify, search and lut validate hold --out through output_lock: taking it removes the
    temporaries of writers that no longer run (a kill -9 mid-write), never a live writer's."""
    from edgevision.commands._common import output_lock

    finished = subprocess.Popen(["true"])
    finished.wait()
    leftover = tmp_path / f".deploy.json.{finished.pid}.abc123.tmp"
    leftover.write_text("half a report")
    mine = tmp_path / f".deploy.json.{os.getpid()}.def456.tmp"
    mine.write_text("being written")
    with output_lock(tmp_path, "deploy output directory"):
        assert not leftover.exists() and mine.exists()


# ---- a few real subprocesses --------------------------------------------------------------------------
#: run in a subprocess that imports edgevision once, then forks one fresh process per case with its own fd 1 and 2
#: (native code writing C++ frames to fd 2 would show, which redirect_stderr in-process cannot see) and its own exit
#: status; the import (~3 s a process on 2 idle cores) is paid once instead of once per case
_FORKING_DRIVER = r"""
import json, os, sys, traceback
from edgevision.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the case's own process
        os.close(read)
        os.dup2(write, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        try:
            code = main(argv)
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        err = pipe.read().decode(errors="replace")
    results.append({"argv": argv, "code": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), "stderr": err})
print(json.dumps(results))
"""


def test_real_processes_exit_2_with_one_line(ws):
    """One case through ``python -m edgevision.cli`` itself (the entry point's sys.exit), the rest as forked processes."""
    (ws / "sub").mkdir()
    bad_ck = ws / "sub" / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad_ck), metadata={"edgevision.format": "edgevision.checkpoint/1", "edgevision.metadata": "[}"})
    entry_point = ["profile", "mobilenetv2_050", "--input", "1x3x100000x100000"]
    forked = [
        ["profile", "mobilenetv2_050", "--input", "1x3x32x32", "--no-roofline", "--json", "/dev/full"],
        ["export", "mobilenetv2_050", str(ws / "sub" / "m.onnx"), "--opset", "7"],
        ["eval", str(bad_ck)],
        ["measure", "mobilenetv2_050", "--budget", "nan"],
    ]
    environment = {**os.environ, "PYTHONPATH": str(Path(ev.__file__).parents[1])}
    whole = subprocess.Popen([sys.executable, "-m", "edgevision.cli", *entry_point], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    driver = subprocess.run([sys.executable, "-c", _FORKING_DRIVER, json.dumps(forked)], capture_output=True, text=True, env=environment, timeout=300)
    assert driver.returncode == 0, driver.stderr[-2000:]
    _, err = whole.communicate(timeout=300)
    results = [{"argv": entry_point, "code": whole.returncode, "stderr": err.decode()}, *json.loads(driver.stdout)]
    assert [r["argv"] for r in results] == [entry_point, *forked]
    for result in results:
        CASES["count"] += 1
        text = result["stderr"]
        assert result["code"] == 2 and len(text.splitlines()) == 1 and text.startswith("edgevision: error:"), result
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and not (ws / "sub" / "m.onnx").exists()


def test_lut_build_drops_entries_without_a_median_so_they_are_measured_again(tmp_path):
    key = json.dumps({"block": {"spec": {"kind": "x"}}, "runtime": "eager", "threads": 2})
    path = _table(tmp_path / "t.sqlite", "INSERT INTO entries VALUES (?, 'x', 'eager', 2, NULL, NULL, NULL, 1, 0, 'now')", key)
    with pytest.raises(ev.lut.LutError, match="1 entry has no valid median_ms"):
        LatencyTable(path)
    with LatencyTable(path, drop_invalid=True) as table:
        assert table.dropped == [key] and key not in table and len(table) == 0


def test_at_least_1000_generated_cases_ran():  # last in the file: counts every case above (one file runs on one xdist worker)
    print(f"fuzz cases run: {CASES['count']}")
    assert CASES["count"] >= 1000, CASES
