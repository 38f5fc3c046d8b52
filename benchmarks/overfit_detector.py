"""Overfit check for a detector: train on a handful of embedded scenes and evaluate on the *same* scenes.

Not an accuracy result (no held-out data): it tells whether assignment, box decoding, post-processing and
the COCO evaluation agree, i.e. whether a detector can learn at all on the pipeline.

    python benchmarks/overfit_detector.py picodet_s_320 --size 128 --scenes 16 --epochs 150
    python benchmarks/overfit_detector.py picodet_s_320 --quick      # 64 px, 4 scenes, 2 epochs
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import edgevision as ev
from edgevision.datasets.scenes import generate_scenes
from edgevision.detection.data import FLIP_ONLY, load_coco_detection
from edgevision.detection.training import evaluate_detector, train_detector


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    size, scenes, epochs = (64, 4, 2) if args.quick else (args.size, args.scenes, args.epochs)
    with tempfile.TemporaryDirectory() as work:
        annotations = generate_scenes(work, split="train", num_images=scenes, image_size=size, num_classes=3, seed=0)
        data = load_coco_detection(annotations)
        torch.manual_seed(0)
        model = ev.create_model(args.model, num_classes=len(data.class_names))
        start = time.perf_counter()
        result = train_detector(model, data, epochs=epochs, batch_size=8, lr=3e-3, image_size=size, seed=0, log=lambda _: None,
                                augmentation=FLIP_ONLY)  # an overfit check: the recipe it was verified with
        metrics = evaluate_detector(model, data, annotations, image_size=size)
    print(f"{args.model}: {scenes} scenes x {epochs} epochs at {size} px, loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f} "
          f"({time.perf_counter() - start:.0f} s); train-set " + " ".join(f"{k} {metrics[k]:.3f}" for k in ("mAP", "AP50", "AP75", "APs", "APm", "APl")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
