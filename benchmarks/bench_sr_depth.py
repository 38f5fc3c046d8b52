"""Super-resolution + monocular depth summary (issue 18) -> benchmarks/results/sr_depth.md (+ sr_depth.json).

    make bench-sr-depth                              # full: bench_sr.py (2000 steps a model) + depth; ~1.5-2.5 h idle (estimate)
                                                     # (+~20 min when depth.json is stale and bench_depth.py reruns)
    make bench-sr-depth-fast                         # full-size, 500 SR steps a model: ~50-60 min idle (44.5 measured with two inputs)
    python benchmarks/bench_sr_depth.py --quick      # end-to-end smoke run (~10 min on a busy machine)

The issue's one file: SR params and mult-adds vs the papers (CARN, CARN-M, EFDN), PSNR/SSIM on the bundled
test photos beside bicubic after a fixed training budget, fp32 and INT8 latency at x4 for a 256x256 output, a
256x256 input (1024x1024 output) and a 1280x720 output as fps (one dynamic-size INT8 graph per model, its PSNR drop at three sizes); FCRN params
vs Laina et al., ORT latency, and the depth metrics on the procedural scenes and the real motorcycle.

SR is run by ``bench_sr.py`` (which also writes sr.md / sr.json, with ``--quick``: sr_quick.*). Depth is
``bench_depth.py``'s depth.json, **reused when it is current**: a full (not quick) run, on this machine
(same fingerprint), and no commit since the one that wrote it changed the depth code or its benchmark
(and no uncommitted change there); otherwise bench_depth.py runs first (~20 min idle; with ``--quick`` its
quick mode, written to depth_quick.*). ``--depth run`` forces a run, ``--depth reuse`` takes the file as it is.
The reason for the choice is written into the summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

RESULTS = ROOT / "benchmarks" / "results"
#: what depth.json's numbers depend on beyond the shared zoo: a commit here after depth.json makes it stale
DEPTH_SOURCES = ("src/edgevision/depth", "src/edgevision/models/depth.py", "src/edgevision/blocks/up_projection.py", "benchmarks/bench_depth.py")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def depth_is_current(path: Path, fingerprint: str) -> tuple[bool, str]:
    """(reusable, why) for a depth.json (see the module docstring)."""
    if not path.is_file() or not path.with_suffix(".md").is_file():
        return False, f"{path.name} or {path.with_suffix('.md').name} does not exist"
    report = json.loads(path.read_text())
    if report.get("quick"):
        return False, f"{path.name} is a quick run"
    if report.get("machine", {}).get("fingerprint") != fingerprint:
        return False, f"{path.name} was measured on another machine ({report.get('machine_summary', '?')})"
    relative = str(path.relative_to(ROOT))
    written = _git("log", "-1", "--format=%H", "--", relative).stdout.strip()
    if not written:
        return False, f"{relative} is not committed (git cannot date it)"
    if _git("diff", "--quiet", f"{written}..HEAD", "--", *DEPTH_SOURCES).returncode != 0:
        return False, f"the depth code changed after commit {written[:8]} wrote {relative}"
    if _git("diff", "--quiet", "HEAD", "--", *DEPTH_SOURCES).returncode != 0:
        return False, "the depth code has uncommitted changes"
    if _git("diff", "--quiet", "HEAD", "--", relative).returncode != 0:
        return False, f"{relative} has uncommitted changes (a run not yet committed)"
    return True, f"reused {relative} (commit {written[:8]}; no change to the depth code since, same machine)"


def _sr_fps_table(sr: dict) -> list[str]:
    """The headline: fp32 (ORT, eager) and INT8 (ORT) fps per model and output, side by side."""
    fps: dict = {}
    for row in sr["latency"]:
        if "fps" in row:
            fps.setdefault((row["model"], row["input"]), {})[f"fp32 {row['runtime']}"] = row["fps"]
    for row in sr["int8"]:
        for label, value in row.get("fps", {}).items():
            fps.setdefault((row["model"], label), {})["int8 ort"] = value["int8"]
    if not fps:
        return []
    lines = ["## Headline: frames per second at x4, batch 1 (fp32 deploy form; INT8 = the dynamic-size QDQ graph)", "",
             "fp32 columns from the latency table, INT8 from the INT8 table: for the INT8 speed-up read that table, whose fp32 and "
             "INT8 graphs were timed back to back.", "",
             "| model | output | fp32 ORT | fp32 eager | INT8 ORT |", "|---|---|---:|---:|---:|"]
    for (model, label), cells in fps.items():
        cell = lambda key: f"{cells[key]:.2f}" if key in cells else "-"  # noqa: E731
        lines.append(f"| {model} | {label} | {cell('fp32 ort')} | {cell('fp32 eager')} | {cell('int8 ort')} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of both parts (bench_sr.py --quick; depth reused if current, else its quick mode)")
    parser.add_argument("--fast", action="store_true", help="full-size SR run on 500 training steps a model (bench_sr.py --fast)")
    parser.add_argument("--depth", choices=("auto", "run", "reuse"), default="auto", help="depth.json: reuse when current (auto), always rerun, or reuse as is")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/sr_depth.md (quick: sr_depth_quick.md)")
    args = parser.parse_args(argv)

    import bench_depth
    import bench_sr

    from edgevision.atomic import atomic_write_text
    from edgevision.machine import machine_info

    machine = machine_info()
    started = time.perf_counter()
    suffix = "_quick" if args.quick else ""
    out = args.out or RESULTS / f"sr_depth{suffix}.md"

    # 1. depth first when it has to run: its latency is timed at the start, on a machine the SR training has not yet heated
    depth_json = RESULTS / "depth.json"
    reusable, why = depth_is_current(depth_json, machine.fingerprint)
    if args.depth == "reuse" and depth_json.is_file():
        reusable, why = True, f"reused {depth_json.relative_to(ROOT)} as it is (--depth reuse; the automatic check says: {why})"
    if args.depth == "run" or not reusable:
        if args.quick:
            depth_json = RESULTS / "depth_quick.json"
        print(f"depth: running bench_depth.py{' --quick' if args.quick else ''} ({why if args.depth != 'run' else '--depth run'})", flush=True)
        bench_depth.main((["--quick"] if args.quick else []) + ["--out", str(depth_json.with_suffix(".md"))])
        why = f"ran bench_depth.py{' --quick' if args.quick else ''} now ({why if args.depth != 'run' else '--depth run'})"
    else:
        print(f"depth: {why}", flush=True)
    depth = json.loads(depth_json.read_text())
    depth_lines = depth_json.with_suffix(".md").read_text().splitlines()[2:]  # bench_depth.py's tables, after its title

    # 2. super-resolution (bench_sr.py writes sr.md / sr.json too)
    sr_md = RESULTS / f"sr{suffix}.md"
    bench_sr.main((["--quick"] if args.quick else ["--fast"] if args.fast else []) + ["--out", str(sr_md)])
    sr = json.loads(sr_md.with_suffix(".json").read_text())

    command = f"benchmarks/bench_sr_depth.py{' --quick' if args.quick else ' --fast' if args.fast else ''}"
    lines = [
        "# Super-resolution and monocular depth (issue 18)" + (" — QUICK MODE (not the result)" if args.quick else ""), "",
        f"Machine: {machine.short}; {machine.logical_cpus} logical CPUs; fingerprint `{machine.fingerprint}`. Generated by `{command}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; SR part {sr['wall_seconds'] / 60:.1f} min "
        f"({sr['steps']} training steps a model). Detail: {sr_md.name} and {depth_json.with_suffix('.md').name}.", "",
        "# Super-resolution", "",
        *_sr_fps_table(sr), "",
        *bench_sr.markdown_lines(sr["counts"], sr["accuracy"], sr["latency"], sr["int8"], quick=sr["quick"], batch_size=sr["batch_size"],
                                 val_size=sr["val_size"]), "",
        "# Monocular depth", "",
        f"Depth source: {why}.", "",
        *depth_lines,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"), json.dumps({"machine": machine.to_dict(), "command": command, "quick": args.quick,
                                                             "wall_seconds": time.perf_counter() - started, "depth_source": why,
                                                             "super_resolution": sr, "depth": depth}, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
