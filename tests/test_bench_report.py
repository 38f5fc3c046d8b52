"""Report files from known rows: CSV, Markdown, self-contained HTML (parses), PNG plots (decode)."""

import base64
import csv
import io
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from bench_helpers import make_row

from edgevision.bench import write_report

ROWS = [
    make_row("small", "ort", 1.0, 50e6, 60.0),
    make_row("mid", "ort", 3.0, 40e6, 70.0, noisy=True),
    make_row("big", "ort", 10.0, 400e6, 78.0),
    make_row("mystery", "ort", 0.5, 10e6, None),
    make_row("small", "eager", 4.0, 50e6, 60.0),
    make_row("mid", "eager", 5.0, 40e6, 70.0),
    make_row("big", "eager", 30.0, 400e6, 78.0),
    make_row("mystery", "eager", 2.0, 10e6, None),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    """Checks that every opened element is closed in order and collects images and table rows."""

    VOID = {"meta", "img", "br", "hr", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.bold_rows, self.errors = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "tr" and attrs.get("class") == "optimal":
            self.bold_rows += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report(ROWS, out, budget_ms=4.5, time_budget_s=3.0, failures=[("broken", "ort", "cannot export")])


def test_report_files_and_findings(report):
    out, files = report
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(
        ["results.csv", "report.md", "report.html", "pareto_ort.png", "pareto_eager.png", "pareto_macs.png", "macs_vs_latency.png", "latency_bars.png"]
    )
    eager, ort = sorted(files.findings, key=lambda f: f.runtime)
    assert ort.latency_front == ("small", "mid", "big") and ort.best_in_budget.model == "mid"
    assert eager.latency_front == ("small", "mid", "big") and eager.best_in_budget.model == "small"


def test_csv_has_one_row_per_measurement(report):
    out, _ = report
    records = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert len(records) == len(ROWS)
    mid = next(r for r in records if r["model"] == "mid" and r["runtime"] == "ort")
    assert float(mid["median_ms"]) == 3.0 and mid["noisy"] == "True" and float(mid["macs"]) == 40e6


def test_markdown_starts_with_machine_versions_threads_and_flags_noisy(report):
    out, _ = report
    text = (out / "report.md").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[1].startswith("Machine: ") and "fingerprint" in lines[1]
    assert lines[2] == "Runtime versions: eager: torch 2.13.0; ort: torch 2.13.0"
    assert lines[3].startswith("Threads: 1;")
    assert "7 hit the precision target, 1 are noisy" in text and "noisy (time budget)" in text
    assert "Unpublished top-1 (left out of the accuracy fronts): mystery." in text
    assert "| **mid** | **ort** |" in text and "| mystery | ort | unpublished |" in text
    assert "## Failed measurements" in text and "| broken | ort | cannot export |" in text
    assert "Pareto-optimal by MACs but not by latency" not in text  # MACs and latency agree in this data
    for name in ("pareto_ort.png", "pareto_macs.png", "macs_vs_latency.png", "latency_bars.png"):
        assert f"]({name})" in text


def test_html_is_well_formed_and_self_contained(report):
    out, _ = report
    parser = _Collector()
    parser.feed((out / "report.html").read_text())
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert len(parser.images) == 5 and parser.bold_rows == 6  # 3 Pareto-optimal models x 2 runtimes
    for image in parser.images:
        assert image["src"].startswith("data:image/png;base64,") and image["alt"]
        assert base64.b64decode(image["src"].split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert "http://" not in (out / "report.html").read_text() and "https://" not in (out / "report.html").read_text()


def test_pngs_decode(report):
    import matplotlib.image

    _, files = report
    assert len(files.plots) == 5
    for path in files.plots:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_write_report_needs_rows(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium, Debian package 'chromium') is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    out, _ = report
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={screenshot}", "--window-size=1280,2000",
         (out / "report.html").as_uri()],
        check=True, timeout=60, capture_output=True,
    )
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
