"""Write a benchmark report: results.csv, report.md, report.html (self-contained) and PNG plots.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered
to Markdown and to HTML, so both say the same thing. Every number comes from the rows of
``results.jsonl``; plots are drawn with matplotlib's Agg backend and embedded in the HTML as
base64 data URIs, so the HTML opens in any browser with nothing fetched from the network.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..atomic import atomic_path, atomic_write_text
from ..console import human
from .analysis import Entry, RuntimeFindings, entries_from_rows, findings, pareto_front

__all__ = ["ReportFiles", "write_report", "header_lines"]


@dataclass(frozen=True)
class ReportFiles:
    csv: Path
    markdown: Path
    html: Path
    plots: tuple[Path, ...]
    findings: tuple[RuntimeFindings, ...]


# -- blocks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold_rows: frozenset[int] = frozenset()  # row indices to emphasize (Pareto-optimal models)


@dataclass(frozen=True)
class _Figure:
    path: Path
    caption: str


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _fmt_count(value: float | None) -> str:
    return "-" if value is None else human(value)


def _fmt_corr(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.2f}"


def _fmt_p(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2g}"


def header_lines(rows: Sequence[dict], time_budget_s: float | None = None) -> list[str]:
    """Machine, runtime versions, threads and protocol: the first lines of every report."""
    contexts = [row["result"]["context"] for row in rows]
    first = contexts[0]
    fingerprints = sorted({c["fingerprint"] for c in contexts})
    versions: dict[str, set[str]] = {}  # runtime -> "package version, ..." (more than one = mixed)
    for context in contexts:
        text = ", ".join(f"{p} {v}" for p, v in sorted(context["runtime_versions"].items()))
        versions.setdefault(context["runtime"], set()).add(text)
    budgets = sorted({row["time_budget_s"] for row in rows if row.get("time_budget_s")})
    time_budget_s = time_budget_s or (budgets[-1] if budgets else None)
    threads = sorted({c["threads"] for c in contexts})
    shape = "x".join(map(str, first["input_shape"]))
    dates = sorted(c["date"] for c in contexts)
    budget = f"; at most {time_budget_s:g} s per measurement (warm-up included)" if time_budget_s else ""
    return [
        f"Machine: {first['cpu_model']} ({first['physical_cores']} cores, {first['logical_cpus']} logical CPUs), "
        f"{first['system']}, fingerprint {', '.join(fingerprints)}" + (" (MIXED machines)" if len(fingerprints) > 1 else ""),
        "Runtime versions: " + "; ".join(
            f"{runtime}: {' / '.join(sorted(texts))}" + (" (MIXED versions)" if len(texts) > 1 else "") for runtime, texts in sorted(versions.items())
        ),
        f"Threads: {', '.join(map(str, threads))}; input {shape} float32; models in deploy form, random weights; "
        f"measured {dates[0]} to {dates[-1]}",
        "Protocol: warm up until stable, then repeat until the 95% CI of the median is within "
        f"{rows[0]['result']['target_precision']:.0%} of it (precision target){budget}; "
        "results that ran out of time first are marked noisy.",
    ]


def _blocks(rows: Sequence[dict], entries: list[Entry], analysis: list[RuntimeFindings], plots: dict[str, Path], budget_ms, time_budget_s) -> list:
    blocks: list = [_Heading("edgevision bench: which efficient network is best on this machine", 1)]
    blocks += [_Paragraph(line) for line in header_lines(rows, time_budget_s)]
    precise = sum(not e.noisy for e in entries)
    blocks.append(
        _Paragraph(
            f"{len(entries)} measurements of {len({e.model for e in entries})} models on "
            f"{len(analysis)} runtime(s); {precise} hit the precision target, {len(entries) - precise} are noisy "
            "(their medians are reported, with a wider confidence interval)."
        )
    )
    unpublished = sorted({e.model for e in entries if e.top1 is None})
    if unpublished:
        blocks.append(_Paragraph(f"Unpublished top-1 (left out of the accuracy fronts): {', '.join(unpublished)}."))

    blocks.append(_Heading("Headline findings"))
    for finding in analysis:
        macs = finding.correlations[0]
        text = (
            f"{finding.runtime}: Pareto-optimal by latency: {', '.join(finding.latency_front) or '-'}. "
            f"MACs vs latency rank correlation: Spearman {_fmt_corr(macs.spearman)}, Kendall {_fmt_corr(macs.kendall)} (n={macs.n})."
        )
        if finding.macs_only_optimal:
            text += f" Pareto-optimal by MACs but not by latency: {', '.join(finding.macs_only_optimal)}."
        if finding.best_in_budget is not None:
            best = finding.best_in_budget
            text += f" Most accurate within {budget_ms:g} ms: {best.model} ({best.top1:.1f}% top-1, {best.median_ms:.2f} ms)."
        elif budget_ms is not None:
            text += f" No published model runs within {budget_ms:g} ms."
        blocks.append(_Paragraph(text))

    blocks.append(_Heading("Accuracy–latency Pareto fronts"))
    for finding in analysis:
        blocks.append(_Heading(f"{finding.runtime}", 3))
        by_name = {e.model: e for e in finding.entries}
        table_rows = [
            (name, f"{by_name[name].top1:.1f}", _fmt_ms(by_name[name].median_ms), _fmt_count(by_name[name].macs),
             "yes" if name in finding.macs_front else "no")
            for name in finding.latency_front
        ]
        blocks.append(_Table(("model", "top-1 %", "median ms", "MACs", "also MACs-optimal"), tuple(table_rows)))
        if f"pareto_{finding.runtime}" in plots:
            blocks.append(_Figure(plots[f"pareto_{finding.runtime}"], f"Published top-1 vs measured latency on {finding.runtime}; the line joins the Pareto-optimal models."))
    if "pareto_macs" in plots:
        blocks.append(_Heading("Accuracy–MACs Pareto front"))
        front = _macs_front(entries)
        blocks.append(_Paragraph(f"Pareto-optimal by MACs: {', '.join(front) or '-'}."))
        blocks.append(_Figure(plots["pareto_macs"], "Published top-1 vs multiply-accumulates; the line joins the Pareto-optimal models."))

    blocks.append(_Heading("Do cost proxies predict this machine's latency ranking?"))
    corr_rows = [
        (f.runtime, c.proxy, str(c.n), _fmt_corr(c.spearman), _fmt_p(c.spearman_p), _fmt_corr(c.kendall), _fmt_p(c.kendall_p))
        for f in analysis
        for c in f.correlations
    ]
    blocks.append(_Table(("runtime", "proxy", "n", "Spearman rho", "p", "Kendall tau", "p"), tuple(corr_rows)))
    if "macs_vs_latency" in plots:
        blocks.append(_Figure(plots["macs_vs_latency"], "MACs vs measured median latency (log-log), one colour per runtime."))

    blocks += _roofline_blocks(entries)

    if budget_ms is not None:
        blocks.append(_Heading(f"Best model within {budget_ms:g} ms"))
        budget_rows = tuple(
            (f.runtime, f.best_in_budget.model, f"{f.best_in_budget.top1:.1f}", _fmt_ms(f.best_in_budget.median_ms))
            if f.best_in_budget else (f.runtime, "none fits", "-", "-")
            for f in analysis
        )
        blocks.append(_Table(("runtime", "model", "top-1 %", "median ms"), budget_rows))

    blocks.append(_Heading("All measurements"))
    optimal = {(f.runtime, name) for f in analysis for name in f.latency_front}
    all_rows, bold = [], set()
    for index, e in enumerate(entries):
        if (e.runtime, e.model) in optimal:
            bold.add(index)
        ci = f"{_fmt_ms(e.ci_low_ms)}–{_fmt_ms(e.ci_high_ms)}"
        fraction = e.roofline_fraction
        all_rows.append(
            (
                e.model, e.runtime, "unpublished" if e.top1 is None else f"{e.top1:.1f}", _fmt_count(e.params), _fmt_count(e.macs),
                _fmt_count(e.bytes) + "B", _fmt_count(e.peak_activation_bytes) + "B" if e.peak_activation_bytes else "-",
                _fmt_ms(e.bound_ms), _fmt_ms(e.median_ms), ci, _fmt_ms(e.p90_ms),
                "-" if fraction is None else f"{fraction:.0%}", str(e.runs),
                (f"noisy ({e.stop_reason})" if e.noisy else "precise") + (", contended" if e.contended else ""),
            )
        )
    headers = ("model", "runtime", "top-1 %", "params", "MACs", "bytes", "peak act.", "roofline ms", "median ms",
               "95% CI ms", "p90 ms", "of roofline", "runs", "precision")
    blocks.append(_Paragraph("Pareto-optimal (by latency, on that runtime) models are in bold. Raw data: results.jsonl, results.csv."))
    blocks.append(_Table(headers, tuple(all_rows), frozenset(bold)))
    if "latency_bars" in plots:
        blocks.append(_Figure(plots["latency_bars"], "Median latency per model and runtime (ms), with the 95% CI of the median."))
    return blocks


def _roofline_blocks(entries: Sequence[Entry]) -> list:
    """The roofline check: bound violations (cost-model defects) and tightness, per runtime."""
    from .analysis import roofline_check

    checks = [c for c in roofline_check(entries) if c.bounded]
    if not checks:
        return []
    rows = tuple(
        (c.runtime, str(c.bounded), str(len(c.violations)), "-" if c.median_tightness is None else f"{c.median_tightness:.2f}x",
         ", ".join(c.violations) or "-")
        for c in checks
    )  # fmt: skip
    contended = sum(e.contended for e in entries)
    text = (
        "The roofline (cache-aware, per fused kernel of each runtime) is a lower bound: a model whose bound exceeds its "
        "measured median is a defect of the cost model. Tightness = median of measured / bound."
    )
    if contended:
        text += f" {contended} measurement(s) ran while the machine was busy (marked contended below)."
    return [_Heading("Roofline check"), _Paragraph(text), _Table(("runtime", "models", "violations", "tightness", "violating models"), rows)]


def _repeatability_blocks(entries: Sequence[Entry], second_pass: Sequence[dict]) -> list:
    from .analysis import repeatability

    heading = _Heading("Repeatability of this machine")
    if not second_pass:
        return [heading, _Paragraph("Not measured: run `edgevision bench --second-pass` to measure every network twice and state it here.")]
    rows = tuple(
        (r.runtime, str(r.pairs), f"{r.within_5_percent:.0%}", f"{r.median_difference:.1%}") for r in repeatability(entries, entries_from_rows(second_pass))
    )
    text = "The same networks measured in a second pass after the first: share whose medians agree within ±5%, and the median difference."
    return [heading, _Paragraph(text), _Table(("runtime", "networks", "within ±5%", "median |difference|"), rows)]


def _model_points(entries: Sequence[Entry]) -> list[tuple[str, float, float | None]]:
    """(model, MACs, top-1) once per model, whichever runtimes measured it."""
    return sorted({e.model: (e.model, e.macs, e.top1) for e in entries}.values())


def _macs_front(entries: Sequence[Entry]) -> list[str]:
    return pareto_front(_model_points(entries))


# -- rendering ---------------------------------------------------------------------------------------


def _markdown(blocks: list) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, _Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, _Table):
            lines.append("| " + " | ".join(block.headers) + " |")
            lines.append("|" + "---|" * len(block.headers))
            for index, row in enumerate(block.rows):
                cells = [f"**{c}**" if index in block.bold_rows and c else c for c in row]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(block, _Figure):
            lines += [f"![{block.caption}]({block.path.name})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr.optimal { font-weight: bold; background: #eef7ee; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
"""


def _html(blocks: list) -> str:
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, _Heading)), "edgevision bench")
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, _Paragraph):
            parts.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, _Table):
            parts.append("<table>")
            parts.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in block.headers) + "</tr></thead>")
            parts.append("<tbody>")
            for index, row in enumerate(block.rows):
                css = ' class="optimal"' if index in block.bold_rows else ""
                parts.append(f"<tr{css}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
            parts.append("</tbody></table>")
        elif isinstance(block, _Figure):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{e(block.caption)}">'
                         f"<figcaption>{e(block.caption)}</figcaption></figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# -- plots -------------------------------------------------------------------------------------------


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    return path


def _log_axis(axis, set_scale) -> None:
    """Log scale with plain numbers (0.8, 2, 10) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _) -> str:  # label 2, 3 and 5 of each decade; the rest stay unlabeled
        leading = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
        return f"{value:g}" if leading in (2, 3, 5) else ""

    set_scale("log")
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _front_plot(points: list[tuple[str, float, float]], front: Sequence[str], xlabel: str, title: str, path: Path, log_x: bool) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5))
    axes = figure.subplots()
    optimal = set(front)
    for name, x, y in points:
        is_optimal = name in optimal
        axes.scatter([x], [y], color="tab:red" if is_optimal else "tab:gray", s=36 if is_optimal else 20, zorder=3)
        axes.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                      fontweight="bold" if is_optimal else "normal")
    by_name = {name: (x, y) for name, x, y in points}
    if front:
        xs, ys = zip(*(by_name[name] for name in front))
        axes.step(xs, ys, where="post", color="tab:red", linewidth=1.2, label="Pareto front")
        axes.legend(loc="best")
    if log_x:
        _log_axis(axes.xaxis, axes.set_xscale)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("published ImageNet top-1 (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def _macs_latency_plot(analysis: list[RuntimeFindings], path: Path) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5))
    axes = figure.subplots()
    for finding in analysis:
        xs = [e.macs / 1e6 for e in finding.entries]
        ys = [e.median_ms for e in finding.entries]
        corr = finding.correlations[0]
        axes.scatter(xs, ys, s=20, label=f"{finding.runtime} (Spearman {_fmt_corr(corr.spearman)})", zorder=3)
        for e in finding.entries:
            axes.annotate(e.model, (e.macs / 1e6, e.median_ms), fontsize=6, xytext=(3, 2), textcoords="offset points")
    _log_axis(axes.xaxis, axes.set_xscale)
    _log_axis(axes.yaxis, axes.set_yscale)
    axes.set_xlabel("multiply-accumulates (millions, log scale)")
    axes.set_ylabel("measured median latency (ms, log scale)")
    axes.set_title("Does MACs predict latency on this machine?")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
    return _save(figure, path)


def _bars_plot(entries: list[Entry], runtimes: list[str], path: Path) -> Path:
    from matplotlib.figure import Figure

    models = sorted({e.model for e in entries})
    lookup = {(e.model, e.runtime): e for e in entries}
    height = 0.8 / max(len(runtimes), 1)
    figure = Figure(figsize=(8, max(3.0, 0.32 * len(models) * max(len(runtimes), 1) + 1)))
    axes = figure.subplots()
    for index, runtime in enumerate(runtimes):
        positions, widths, errors = [], [], [[], []]
        for row, model in enumerate(models):
            entry = lookup.get((model, runtime))
            if entry is None:
                continue
            positions.append(row + index * height)
            widths.append(entry.median_ms)
            low = entry.ci_low_ms if entry.ci_low_ms is not None else entry.median_ms
            high = entry.ci_high_ms if entry.ci_high_ms is not None else entry.median_ms
            errors[0].append(max(entry.median_ms - low, 0.0))
            errors[1].append(max(high - entry.median_ms, 0.0))
        axes.barh(positions, widths, height=height, xerr=errors, label=runtime, capsize=2)
    axes.set_yticks([row + height * (len(runtimes) - 1) / 2 for row in range(len(models))], models, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("median latency (ms), 95% CI of the median")
    axes.set_title("Latency per model and runtime")
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(loc="lower right")
    return _save(figure, path)


def _plots(entries: list[Entry], analysis: list[RuntimeFindings], out: Path) -> dict[str, Path]:
    plots: dict[str, Path] = {}
    for finding in analysis:
        points = [(e.model, e.median_ms, e.top1) for e in finding.entries if e.top1 is not None]
        if points:
            plots[f"pareto_{finding.runtime}"] = _front_plot(
                points, finding.latency_front, f"measured median latency on {finding.runtime} (ms, log scale)",
                f"Accuracy vs latency: {finding.runtime}", out / f"pareto_{finding.runtime}.png", log_x=True,
            )
    if analysis:
        points = [(name, macs / 1e6, top1) for name, macs, top1 in _model_points(entries) if top1 is not None]
        if points:
            plots["pareto_macs"] = _front_plot(points, _macs_front(entries), "multiply-accumulates (millions, log scale)",
                                               "Accuracy vs MACs", out / "pareto_macs.png", log_x=True)
        plots["macs_vs_latency"] = _macs_latency_plot(analysis, out / "macs_vs_latency.png")
        plots["latency_bars"] = _bars_plot(entries, [f.runtime for f in analysis], out / "latency_bars.png")
    return plots


# -- entry point -------------------------------------------------------------------------------------


def _write_csv(entries: list[Entry], path: Path) -> Path:
    buffer = io.StringIO()
    records = [e.to_dict() for e in entries]
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(path, buffer.getvalue())
    return path


def write_report(
    rows: Sequence[dict],
    out: str | Path,
    *,
    budget_ms: float | None = None,
    time_budget_s: float | None = None,
    failures: Sequence[tuple[str, str, str]] = (),
    second_pass: Sequence[dict] = (),
) -> ReportFiles:
    """Write results.csv, report.md, report.html and the PNG plots for ``rows`` into ``out``.

    ``failures``: (model, runtime, message) of measurements that failed; the report lists them.
    ``second_pass``: rows of a repeat pass over the same networks; the report states the repeatability.
    """
    if not rows:
        raise ValueError("write_report needs at least one measurement row")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = entries_from_rows(rows)
    analysis = findings(entries, budget_ms)
    plots = _plots(entries, analysis, out)
    blocks = _blocks(rows, entries, analysis, plots, budget_ms, time_budget_s)
    blocks += _repeatability_blocks(entries, second_pass)
    if failures:
        blocks += [_Heading("Failed measurements"), _Table(("model", "runtime", "error"), tuple(tuple(f) for f in failures))]
    csv_path = _write_csv(entries, out / "results.csv")
    atomic_write_text(out / "report.md", _markdown(blocks))
    atomic_write_text(out / "report.html", _html(blocks))
    return ReportFiles(csv_path, out / "report.md", out / "report.html", tuple(plots.values()), tuple(analysis))
