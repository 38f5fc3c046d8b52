"""What a search writes: ``pareto.json``, ``best.safetensors``, ``report.md``, ``report.html`` and ``front.png``.

Every file is written atomically. The plot shows every trained network, the front, the budget and,
when a zoo latency file is given (JSON list of ``{"network", "measured_ms", "accuracy"}``, e.g. the
one ``benchmarks/bench_search.py`` writes), the zoo's networks at their measured latency;
without one the report says so instead.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Callable

from ..atomic import atomic_path, atomic_write_text
from .result import SearchResult

__all__ = ["write_outputs", "read_zoo_points"]


def read_zoo_points(path: str | os.PathLike | None) -> list[dict] | None:
    if path is None or not Path(path).is_file():
        return None
    points = json.loads(Path(path).read_text(encoding="utf-8"))
    return [p for p in points if p.get("measured_ms") is not None and p.get("accuracy") is not None]


def _plot(result: SearchResult, path: Path, zoo: list[dict] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    trained = [c for c in result.candidates if c.accuracy is not None]
    axes.scatter([c.predicted_ms for c in trained], [c.accuracy for c in trained], s=12, color="0.7", label="trained (predicted ms)")
    front = result.front
    axes.step([c.predicted_ms for c in front], [c.accuracy for c in front], where="post", color="C0", label=f"{result.strategy} front (predicted)")
    measured = [c for c in front if c.measured_ms is not None]
    axes.scatter([c.measured_ms for c in measured], [c.accuracy for c in measured], marker="x", color="C0", label="front, measured ms")
    if zoo:
        axes.scatter([p["measured_ms"] for p in zoo], [p["accuracy"] for p in zoo], marker="s", color="C3", label="zoo (measured)")
        for point in zoo:
            axes.annotate(point["network"], (point["measured_ms"], point["accuracy"]), fontsize=6)
    axes.axvline(result.budget_ms, color="C1", linestyle="--", label=f"budget {result.budget_ms:g} ms")
    axes.set_xlabel(f"latency (ms, {result.runtime})")
    axes.set_ylabel("accuracy (short training)")
    axes.set_title(f"{result.space}: {result.strategy}")
    axes.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)


def _rows(result: SearchResult) -> list[list[str]]:
    rows = []
    for c in result.front:
        error = "" if c.measured_ms is None else f"{100 * (c.predicted_ms - c.measured_ms) / c.measured_ms:+.1f}%"
        rows.append(
            [c.name, f"{c.predicted_ms:.3f}", "-" if c.table_sum_ms is None else f"{c.table_sum_ms:.3f}", "-" if c.measured_ms is None else f"{c.measured_ms:.3f}", error, f"{c.accuracy:.4f}", f"{c.params / 1e6:.3f}", f"{c.macs / 1e6:.1f}"]
        )
    return rows


HEADER = ["network", "predicted ms", "table sum ms", "measured ms", "pred. error", "accuracy", "params (M)", "MACs (M)"]


def _calibration_line(calibration: dict | None) -> str:
    if not calibration:
        return ""
    rows = ", ".join(f"{row['network']} {row['measured_ms']:.3f} -> {row['remeasured_ms']:.3f} ms" for row in calibration["networks"])
    return f"- calibration networks measured before -> after the search: {rows}; drift {calibration['drift']:.3f} (1 = the machine did not move)"


def write_outputs(result: SearchResult, out: Path, estimator: Callable | None = None, zoo_file: str | os.PathLike | None = None) -> None:
    from ..builder import build
    from ..checkpoint import save

    data = result.to_dict()
    zoo = read_zoo_points(zoo_file)
    data["zoo"] = zoo
    atomic_write_text(out / "pareto.json", json.dumps(data, indent=1, default=str) + "\n")
    if result.best is not None:
        trainer = getattr(estimator, "train", None)
        if trainer is not None:  # the trained best (short training, as it was scored)
            trained = trainer(result.best.spec)
            model, metadata = trained.model, {"search": result.strategy, "val_top1": trained.final.get("val_top1"), "trained": True}
        else:
            model, metadata = build(result.best.spec), {"search": result.strategy, "trained": False}
        save(model.cpu().float().eval(), out / "best.safetensors", metadata={**metadata, "predicted_ms": result.best.predicted_ms, "measured_ms": result.best.measured_ms})
    _plot(result, out / "front.png", zoo)
    note = "" if zoo else "No zoo latency file was given (--zoo FILE), so zoo models are not overlaid; benchmarks/bench_search.py writes one."
    lines = [
        f"# Search: {result.space}, {result.strategy}, budget {result.budget_ms:g} ms on {result.runtime}",
        "",
        f"- trained networks: {data['trained']} of {data['evaluated']} evaluated; wall time {result.wall_seconds:.0f} s",
        f"- latency model: {result.latency_model}",
        _calibration_line(result.details.get("calibration")),
        f"- fastest network of the space: {data['fastest_network']['network']} ({data['fastest_network']['predicted_ms']:.3f} ms predicted)" if result.fastest else "",
        f"- hypervolume (accuracy x latency below the budget, normalised): {result.hypervolume:.4f}",
        f"- best: {result.best.name if result.best else 'none within budget'}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in _rows(result)),
        "",
        "![front](front.png)",
        "",
        note,
    ]
    if "block_kinds" in result.details:
        lines += ["", "## Block kinds (hypervolume of each kind's random-network front)", "", "| block kind | trained | hypervolume |", "|---|---|---|"]
        lines += [f"| {kind} | {row['trained']} | {row['hypervolume']:.4f} |" for kind, row in result.details["block_kinds"].items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    table = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in _rows(result))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgevision search {html.escape(result.space)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{html.escape(result.space)}: {html.escape(result.strategy)}, budget {result.budget_ms:g} ms ({html.escape(result.runtime)})</h1>"
        f"<p>{data['trained']} trained of {data['evaluated']} evaluated; hypervolume {result.hypervolume:.4f}; wall {result.wall_seconds:.0f} s</p>"
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER) + f"</tr>{table}</table>"
        f"<p><img src='front.png' alt='front'></p><p>{html.escape(note)}</p></body></html>\n"
    )
    atomic_write_text(out / "report.html", page)
