"""Dense-prediction benchmark (issue 17): every registered segmentation and detection model in one table.

Per model: parameters and MACs at its task resolution against the published figures; ONNX Runtime
latency at that resolution of the fp32 graph and of its INT8 form (static PTQ through the deploy
package's :func:`edgevision.deploy.quantize.quantize`, calibrated on embedded scenes at that size);
and the task metric on the embedded procedural scenes after one fixed training budget (same seed,
scenes and recipe for every model of a task, from scratch), for the PyTorch model and for its INT8
graph (:func:`edgevision.deploy.tasks.quantize_within_budget`, the path ``edgevision deploy`` judges
by). Detectors are timed on the head graph that ``deploy`` quantizes (decode + NMS stay fp32) and,
for fp32, also on the exported graph with ``NonMaxSuppression`` inside.

    python benchmarks/bench_dense.py            # full (make bench-dense): 12 models; ~45-60 min on 2 idle cores
    python benchmarks/bench_dense.py --quick    # smoke test: 7 models, 64 px, 1 epoch on 8 scenes (checks the script)
    python benchmarks/bench_dense.py --models lraspp_mobilenet_v3_small picodet_s_320

Rows go to benchmarks/results/dense.jsonl as each model finishes (a killed run resumes with the next
model); the table to benchmarks/results/dense.md (``--quick``: dense_quick.*).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import edgevision as ev
from edgevision.atomic import atomic_write_text
from edgevision.machine import machine_info

RESULTS = Path(__file__).parent / "results"

#: model -> (params, GMACs, at resolution, source). torchvision's "GFLOPS" are multiply-accumulates; PaddleDetection's
#: and Ultralytics' FLOPs are 2 x MACs, halved here. The YOLO rows are YOLOv5n/s with their own PAN neck and anchor
#: head (Ultralytics v6.0 table), the reference the GSConv slim-neck slims: not the same layout.
PUBLISHED = {
    "lraspp_mobilenet_v3_large": (3_221_538, 2.09, 520, "torchvision"),
    "deeplabv3_mobilenet_v3_large": (11_029_328, 10.45, 520, "torchvision (with aux head)"),
    "deeplabv3_mobilenet_v2": (2_110_000, 2.75, 513, "Sandler et al. 2018 Table 7"),
    "ssdlite320_mobilenetv3_large": (3_440_060, 0.583, 320, "torchvision"),
    "ssdlite320_mobilenetv2": (4_300_000, 0.80, 320, "Sandler et al. 2018 Table 6"),
    "picodet_s_320": (990_000, 0.365, 320, "PaddleDetection 2021.10 (0.73 GFLOPs)"),
    "yolov5n_gsconv": (1_900_000, 2.25, 640, "YOLOv5n, Ultralytics v6.0 (4.5 GFLOPs; PAN neck)"),
    "yolov5s_gsconv": (7_200_000, 8.25, 640, "YOLOv5s, Ultralytics v6.0 (16.5 GFLOPs; PAN neck)"),
}
QUICK_MODELS = ["lraspp_mobilenet_v3_small", "deeplabv3_mobilenet_v2", "unet_mobilenet_v2", "binary_fcn", "ssdlite320_mobilenetv3_large",
                "picodet_s_320", "yolov5n_gsconv"]


def _budget(task: str, quick: bool) -> dict:
    """The fixed training budget of a task (every model of the task gets the same)."""
    if quick:
        return {"train_scenes": 8, "val_scenes": 4, "epochs": 1, "size": 64, "batch_size": 4}
    if task == "segmentation":
        return {"train_scenes": 96, "val_scenes": 32, "epochs": 12, "size": 160, "batch_size": 8, "lr": 1e-3}
    return {"train_scenes": 192, "val_scenes": 64, "epochs": 12, "size": 160, "batch_size": 16, "lr": 3e-3}


def _budget_text(task: str, budget: dict) -> str:
    recipe = "AdamW 1e-3 poly, aux loss" if task == "segmentation" else "AdamW 3e-3 cosine, SSD augmentation"
    return f"{budget['train_scenes']} scenes x {budget['epochs']} ep at {budget['size']} px, batch {budget['batch_size']}, {recipe}"


def _export(module, path: Path, size: int) -> Path:
    from edgevision.export import export_onnx

    export_onnx(module, path, (3, size, size), deploy=False)
    return path


def _latency(path: Path, threads: int, budget_s: float) -> dict:
    result = ev.measure(str(path), runtime="ort", threads=threads, time_budget_s=budget_s)
    return {"median_ms": result.median_ms, "ci_low_ms": result.ci_low_ms, "ci_high_ms": result.ci_high_ms, "noisy": bool(result.noisy)}


def _segmentation(name: str, budget: dict, work: Path):
    """(trained deploy-form model, evaluator at the training size, evaluator factory for any size, metrics)."""
    from edgevision.reparam import reparameterize
    from edgevision.segmentation.data import load_segmentation_data
    from edgevision.segmentation.deploy import SegmentationEvaluator
    from edgevision.segmentation.training import SegmentationRecipe, train_segmentation

    train_set, val_set = load_segmentation_data("default", cache_dir=work / "seg-scenes", scene_images=(budget["train_scenes"], budget["val_scenes"]),
                                                scene_size=max(budget["size"], 64), seed=0)
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=train_set.num_classes)
    recipe = SegmentationRecipe(epochs=budget["epochs"], batch_size=budget["batch_size"], crop_size=budget["size"], lr=budget.get("lr", 1e-3))
    started = time.perf_counter()
    result = train_segmentation(model, train_set, val_set, recipe, seed=0)
    metrics = {"metric": "mIoU", "fp32": result.final["miou"], "pixel_accuracy": result.final["pixel_accuracy"],
               "train_seconds": time.perf_counter() - started}
    deployed = reparameterize(copy.deepcopy(model).cpu().eval())

    def evaluator(size: int):
        return SegmentationEvaluator(train_set, val_set, resolution=size, calibration_count=32)

    return deployed, evaluator, metrics


def _detection(name: str, budget: dict, work: Path):
    from edgevision.datasets.scenes import generate_scenes
    from edgevision.detection.data import SSD_AUGMENTATION, load_coco_detection
    from edgevision.detection.deploy_eval import DetectionEvaluator
    from edgevision.detection.training import evaluate_detector, train_detector

    root = work / "det-scenes"  # generate_scenes is deterministic: every detector of the run reads the same files
    train_file, val_file = (root / "annotations" / f"instances_{split}.json" for split in ("train", "val"))
    if not (train_file.is_file() and val_file.is_file()):
        train_file = generate_scenes(root, split="train", num_images=budget["train_scenes"], image_size=max(budget["size"], 64), seed=0)
        val_file = generate_scenes(root, split="val", num_images=budget["val_scenes"], image_size=max(budget["size"], 64), seed=0)
    train_set, val_set = load_coco_detection(train_file), load_coco_detection(val_file)
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=len(train_set.class_names))
    result = train_detector(model, train_set, epochs=budget["epochs"], batch_size=budget["batch_size"], lr=budget.get("lr", 3e-3),
                            image_size=budget["size"], seed=0, augmentation=SSD_AUGMENTATION,
                            log=lambda line: print(f"  {name} {line}", file=sys.stderr, flush=True))
    scores = evaluate_detector(model, val_set, val_file, image_size=budget["size"])
    metrics = {"metric": "mAP", "fp32": scores["mAP"], "AP50": scores["AP50"], "train_seconds": result["train_seconds"]}
    model.eval()

    def evaluator(size: int):
        model.set_input_size(size)
        return DetectionEvaluator(model, train_set.samples[:32], val_set, str(val_file), image_size=size)

    return model, evaluator, metrics


def _row(name: str, task: str, quick: bool, threads: int, work: Path) -> dict:
    from edgevision.deploy.quantize import quantize
    from edgevision.deploy.tasks import quantize_within_budget, torch_forward

    reference = ev.create_model(name).eval()  # the registered model (its published class count); MACs need a real forward
    spec_size = reference.spec.input_size
    size = 64 if quick else (spec_size if isinstance(spec_size, int) else spec_size[0])
    row = {"model": name, "task": task, "resolution": size, "params": sum(p.numel() for p in reference.parameters()),
           "macs": ev.count_macs(reference, size)}
    del reference
    budget = _budget(task, quick)
    module, evaluator, metrics = (_segmentation if task == "segmentation" else _detection)(name, budget, work)
    row.update(budget=_budget_text(task, budget), **metrics)
    # the task metric of the INT8 graph at the training size, judged as `edgevision deploy` judges it (1-point budget)
    at_training = evaluator(budget["size"])
    float_small = _export(module, work / f"{name}.train.fp32.onnx", budget["size"])
    judged = quantize_within_budget(float_small, at_training, work / f"{name}.train.int8.onnx", 1.0,
                                    float_metrics=at_training.evaluate(torch_forward(module)))
    row.update(int8=judged["judgement"]["int8_value"], int8_change_points=judged["judgement"]["change"])
    # latency at the task resolution: the fp32 graph and its INT8 form calibrated on scenes at that size
    at_task = evaluator(size)
    float_task = _export(module, work / f"{name}.fp32.onnx", size)
    report = quantize(float_task, at_task.calibration_images(), work / f"{name}.int8.onnx", calibration_count=32)
    time_budget = 2.0 if quick else 20.0
    row["ort_fp32"] = _latency(float_task, threads, time_budget)
    row["ort_int8"] = _latency(Path(report.path), threads, time_budget)
    row["int8_qdq_nodes"] = report.quantize_linear_nodes
    if task == "detection":
        from edgevision.detection.export import export_detector_onnx

        try:  # the shipped detector: decode + NonMaxSuppression inside the fp32 graph
            export_detector_onnx(module, work / f"{name}.nms.onnx", image_size=size)
            row["ort_fp32_nms"] = _latency(work / f"{name}.nms.onnx", threads, time_budget)
        except (ValueError, RuntimeError) as error:
            row["ort_fp32_nms"] = {"error": str(error).splitlines()[0]}
    return row


def _ms(value: dict | None) -> str:
    if not value or "median_ms" not in value:
        return "-" if not value else f"({value.get('error', '-')[:40]})"
    return f"{value['median_ms']:.1f}" + (" (noisy)" if value["noisy"] else "")


def _table(rows: list[dict], args, threads: int) -> str:
    machine = machine_info()
    command = "python benchmarks/bench_dense.py" + (" --quick" if args.quick else "")
    lines = [f"# Dense prediction: cost vs published, ORT fp32 / INT8 latency, accuracy on the embedded scenes ({datetime.date.today()})", "",
             f"`{command}`; ONNX Runtime CPU, {threads} thread(s), batch 1, median within a {2 if args.quick else 20} s budget per graph "
             f"(95% CI in {'dense_quick' if args.quick else 'dense'}.jsonl; \"noisy\": the CI did not reach 2%). "
             f"Machine: {machine.cpu_model} ({machine.fingerprint}), torch {torch.__version__}."
             + (" QUICK MODE: 64 px and one epoch on 8 scenes; the numbers only show that the script runs." if args.quick else ""), "",
             "Training budgets are small and from scratch (no pretrained backbone): the metrics compare models under one budget, "
             "they are not the models' published accuracy. INT8 = static PTQ (deploy.quantize, this CPU's scheme, minmax, 32 "
             "calibration scenes); its metric is computed at the training size, its latency at the task resolution. "
             "Detector latency is the raw head graph (what `edgevision deploy` quantizes; decode + NMS run after it), "
             "\"+NMS\" the fp32 graph with NonMaxSuppression inside.", "",
             "| model | task | input | params | published params | GMACs | published GMACs | ORT fp32 ms | ORT INT8 ms | INT8 speed-up | "
             "fp32 +NMS ms | metric | fp32 | INT8 | INT8 drop (points; > 0 worse) | training budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = PUBLISHED.get(r["model"])
        pub_params = f"{published[0] / 1e6:.2f}M ({published[3]})" if published else "-"
        pub_macs = f"{published[1]:.2f} at {published[2]}" if published else "-"
        fp32, int8 = r["ort_fp32"], r["ort_int8"]
        speedup = f"{fp32['median_ms'] / int8['median_ms']:.2f}x" if fp32.get("median_ms") and int8.get("median_ms") else "-"
        lines.append(f"| {r['model']} | {r['task']} | {r['resolution']} | {r['params'] / 1e6:.3f}M | {pub_params} | {r['macs'] / 1e9:.3f} | "
                     f"{pub_macs} | {_ms(fp32)} | {_ms(int8)} | {speedup} | {_ms(r.get('ort_fp32_nms'))} | {r['metric']} | "
                     f"{r['fp32']:.3f} | {r['int8']:.3f} | {r['int8_change_points']:+.2f} | {r['budget']} |")
    lines += ["", "Per-task details (per-class IoU, AP75/APs/m/l, robustness): `make bench-dense-seg` (dense_segmentation.md) and "
              "`make bench-dense-det` (dense_detection.md)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 models at 64 px, 1 epoch on 8 scenes: the script end to end, not a result")
    parser.add_argument("--models", nargs="+", default=None, help="a subset (default: every segmentation and detection model)")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads and torch threads (default 2)")
    parser.add_argument("--fresh", action="store_true", help="ignore the rows of an earlier (killed) run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:  # a smoke run does not wait for a quiet machine before re-measuring (measure()'s default waits 10 s)
        import os

        os.environ.setdefault("EDGEVISION_QUIET_WAIT_S", "0")
    tasks = {name: task for task in ("segmentation", "detection") for name in ev.list_models(task=task)}
    names = args.models or (QUICK_MODELS if args.quick else list(tasks))
    unknown = [name for name in names if name not in tasks]
    if unknown:
        parser.error(f"not a segmentation or detection model: {', '.join(unknown)}; see `edgevision models --task detection`")
    stem = "dense_quick" if args.quick else "dense"
    rows_path = RESULTS / f"{stem}.jsonl"
    rows = [] if args.fresh or not rows_path.exists() else [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    done = {r["model"] for r in rows}
    with tempfile.TemporaryDirectory(prefix="edgevision-bench-dense-") as directory:
        for name in names:
            if name in done:
                continue
            started = time.perf_counter()
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(_row(name, tasks[name], args.quick, args.threads, Path(directory)))
            rows[-1]["seconds"] = time.perf_counter() - started
            atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))  # resumable after kill -9
            r = rows[-1]
            print(f"{name}: fp32 {_ms(r['ort_fp32'])} ms, INT8 {_ms(r['ort_int8'])} ms, {r['metric']} {r['fp32']:.3f} (INT8 {r['int8']:.3f}); "
                  f"{r['seconds']:.0f} s", file=sys.stderr, flush=True)
    order = {name: index for index, name in enumerate(tasks)}
    atomic_write_text(RESULTS / f"{stem}.md", _table(sorted(rows, key=lambda r: order.get(r["model"], 99)), args, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
