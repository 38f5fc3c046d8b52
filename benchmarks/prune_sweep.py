"""Structural pruning sweep of every zoo model at 30% of channels, on the meta device -> benchmarks/results/prune_sweep.md.

No timing and no arithmetic: each registered model is resolved at a small input, built on the
meta device in eval mode (BatchNorm uses running statistics, as a deployed model does), its channel
groups are read from the spec (``channel_groups(..., verify=False)``: the shape-difference maps plus
the builder check, without the numerical permutation test), 30% of every prunable group is removed
with ``shrink`` and the pruned network runs one meta-device forward. A model "prunes" when the pruned
spec resolves, builds and runs to (1, classes).

Columns: groups and prunable groups, the share of channels (summed group widths, the logits
excluded) in prunable groups, the share of parameters the 30% prune removes, and the first reason
a group is not prunable (what the next piece of width surgery has to handle).

    PYTHONPATH=src python benchmarks/prune_sweep.py             # all 88 models, ~15 min on 2 busy cores
    PYTHONPATH=src python benchmarks/prune_sweep.py --quick     # 4 models, ~1 min
    PYTHONPATH=src python benchmarks/prune_sweep.py --models inception_v4 ghostnet_100

Rows go to benchmarks/results/prune_sweep.jsonl as they finish (a rerun skips finished models; delete
the file or pass --fresh to redo them) and the table is rewritten after each model.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

import edgevision as ev  # noqa: E402
from edgevision.atomic import atomic_write_text  # noqa: E402
from edgevision.prune import shrink, widths_for_ratio  # noqa: E402
from edgevision.prune.groups import channel_groups  # noqa: E402
from bench_compress import _size  # noqa: E402  (the smallest input from 64 up each model resolves at; this folder is on sys.path)

RESULTS = ROOT / "results"
JSONL = RESULTS / "prune_sweep.jsonl"
TABLE = RESULTS / "prune_sweep.md"
RATIO = 0.3
QUICK = ("mobilenetv2_050", "inception_v4", "ghostnet_100", "shufflenet_v2_x0_5")


def sweep_one(name: str, ratio: float = RATIO) -> dict:
    """One row: does ``name`` prune by ``ratio`` of its channels on the meta device, and how much of it is prunable."""
    size = _size(name)
    row: dict = {"model": name, "input": size, "ratio": ratio}
    start = time.perf_counter()
    try:
        resolved = ev.resolve(ev.get_spec(name).with_classes(10), input_size=size)
        with torch.device("meta"):
            model = ev.build(resolved).eval()
        groups = channel_groups(resolved, verify=False)
        prunable = [g for g in groups if g.prunable]
        counted = [g for g in groups if "the class logits" not in g.reason]
        row["groups"], row["prunable_groups"] = len(groups), len(prunable)
        row["prunable_channels"] = sum(g.width for g in prunable) / max(1, sum(g.width for g in counted))
        blocked = [g for g in counted if not g.prunable]
        row["first_reason"] = blocked[0].reason if blocked else ""
        widths = widths_for_ratio(prunable, ratio)
        scores = {g.name: torch.arange(g.width, dtype=torch.float) for g in prunable}  # meta weights have no norms
        pruned = shrink(model, widths, scores=scores, groups=groups) if widths else model
        out = pruned(torch.empty(1, 3, size, size, device="meta"))
        row["prunes"] = tuple(out.shape) == (1, 10)
        row["params_removed"] = 1 - ev.count_params(pruned) / ev.count_params(model)
        row["error"] = "" if row["prunes"] else f"output shape {tuple(out.shape)}"
    except Exception as error:  # the row records the failure; the sweep goes on
        row["prunes"] = False
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
        row["trace"] = traceback.format_exc(limit=-3)
    row["seconds"] = round(time.perf_counter() - start, 1)  # bookkeeping only (a busy machine), not a result
    return row


def _rows() -> dict[str, dict]:
    if not JSONL.exists():
        return {}
    rows = {}
    for line in JSONL.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["model"]] = row
    return rows


def report(rows: dict[str, dict]) -> str:
    ok = [r for r in rows.values() if r["prunes"]]
    families = collections.Counter(r["first_reason"].split(":")[-1].strip()[:70] for r in rows.values() if r.get("first_reason"))
    lines = [
        f"# Structural pruning sweep: every zoo model at {int(RATIO * 100)}% of channels (meta device)",
        "",
        "`benchmarks/prune_sweep.py` (no timing, no arithmetic): resolve at a small input, build on the meta device in",
        "eval mode, read the channel groups from the spec (`channel_groups(verify=False)`), remove 30% of every",
        "prunable group with `shrink`, run one meta forward. *prunable channels*: the share of the summed group widths",
        "(logits excluded) in prunable groups. The numerical permutation check (`groups_of`) can only lower it.",
        "",
        f"**{len(ok)} of {len(rows)} models prune** (resolve, build and run after a 30% cut).",
        "",
        "| model | input | prunes | groups (prunable) | prunable channels | params removed | first unprunable group's reason / error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(rows):
        r = rows[name]
        note = r.get("error") or r.get("first_reason", "")
        note = note.replace("|", "/")[:150]
        groups = f"{r['groups']} ({r['prunable_groups']})" if "groups" in r else "-"
        share = f"{r['prunable_channels']:.0%}" if "prunable_channels" in r else "-"
        removed = f"{r['params_removed']:.0%}" if "params_removed" in r else "-"
        lines.append(f"| {name} | {r['input']} | {'yes' if r['prunes'] else 'NO'} | {groups} | {share} | {removed} | {note} |")
    if families:
        lines += ["", "Most common reasons a group stays unpruned (first per model):", ""]
        lines += [f"- {count} x {reason}" for reason, count in families.most_common(8)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--fresh", action="store_true", help="redo models already in the JSONL")
    args = parser.parse_args()
    names = args.models or (list(QUICK) if args.quick else ev.list_models())
    RESULTS.mkdir(exist_ok=True)
    rows = {} if args.fresh else _rows()
    if args.fresh and JSONL.exists():
        JSONL.unlink()
    for name in names:
        if name in rows and not args.models:
            continue
        row = sweep_one(name)
        rows[name] = row
        with JSONL.open("a") as f:  # one line per finished model: a killed sweep resumes after it
            f.write(json.dumps(row) + "\n")
        print(f"{name:28s} {'ok ' if row['prunes'] else 'FAIL'} {row.get('prunable_channels', 0):.0%} {row.get('error', '')}", flush=True)
        atomic_write_text(TABLE, report(rows))


if __name__ == "__main__":
    main()
