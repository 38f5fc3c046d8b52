"""``edgevision sparsify``: N:M or unstructured sparsity trained with SR-STE; reports what is real.

Writes ``DIR/model.safetensors`` (exact zeros in the weights; the pattern holds in every sparsified
layer) and ``DIR/sparsify.json``: parameters and non-zero parameters, dense MACs and the MACs of the
non-zero weights, dense vs sparse-encoded weight bytes, accuracy before and after. No speed-up is
claimed: no AVX2 CPU runtime runs these patterns faster.

Resumable after kill -9 (like ``prune``): the starting model and its measurements, then the SR-STE
weights after every fine-tune epoch, are written atomically under ``DIR/.sparsify-resume/``; the same
command continues from the last finished epoch, a command with other settings refuses the folder
(exit 2), and the folder goes once the outputs are written. The fine-tune runs one epoch per call
at the learning rate the recipe's step schedule gives that epoch, so a resumed run trains exactly
as an uninterrupted one (same weights, same data order; the optimizer's momentum restarts each
epoch in both).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import UsageError, nonempty, output_lock, nonnegative_int, output_dir, positive_int

__all__ = ["register", "run", "epoch_lr"]

RESUME_DIR = ".sparsify-resume"


def epoch_lr(recipe, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based) of ``epochs`` under ``recipe``'s schedule, held for that whole epoch.

    Step: x0.1 at 50% and 75% of training (the basic recipe); cosine: its value at the epoch's start.
    """
    import math

    t = epoch / max(1, epochs)
    if recipe.schedule == "step":
        return recipe.lr * (0.1 if t >= 0.5 else 1.0) * (0.1 if t >= 0.75 else 1.0)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    return recipe.lr


def register(commands) -> None:
    parser = commands.add_parser("sparsify", help="N:M (2:4, 4:8, 1:4) or unstructured sparsity with SR-STE fine-tuning",
                                 description="Sparsify the convolutions and linears of a model and fine-tune with SR-STE.")
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--checkpoint", type=nonempty, default=None, metavar="F", help="trained weights of MODEL (.safetensors)")
    parser.add_argument("--pattern", required=True, help="N:M (e.g. 2:4) or a fraction of zeros (e.g. 0.5)")
    parser.add_argument("--epochs", type=nonnegative_int, default=1, metavar="N", help="SR-STE fine-tune epochs (0: masks only)")
    parser.add_argument("--data", type=nonempty, default="default", help="default | cifar10:DIR | ... (as for train)")
    parser.add_argument("--resolution", type=positive_int, default=32, metavar="R")
    parser.add_argument("--out", type=output_dir, required=True, metavar="DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with output_lock(args.out, "sparsify output directory"):  # one writer at a time: a second run on this --out is refused naming the first
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ..atomic import atomic_write_text
    from ..checkpoint import save
    from ..counting import count_macs, count_params
    from ..datasets import BatchPreprocessor, DataError, load_data
    from ..evaluation import predict, topk_accuracy
    from ..prune.sparsity import finalize, parse_pattern, sparse_size_bytes, sparsify
    from ..training import get_recipe, seed_everything, train
    from .prune import _load_model, _Resume, check_resolution

    try:
        pattern = parse_pattern(args.pattern)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.epochs < 0:
        raise UsageError(f"--epochs must be >= 0, got {args.epochs}")
    check_resolution(args.resolution)
    resume = _Resume(Path(args.out), args, folder=RESUME_DIR, command="sparsify")  # refuse another run's folder before loading anything
    try:
        data = load_data(args.data, image_size=args.resolution)
    except DataError as error:
        raise UsageError(str(error)) from None
    model, _ = _load_model(args, data.num_classes, data.in_channels)
    preprocess = BatchPreprocessor(args.resolution, data.in_channels, data.mean, data.std)

    def accuracy(network) -> float:
        logits, labels = predict(network, data.val, lambda batch: preprocess(batch, train=False))
        return float(topk_accuracy(logits, labels, (1,))[1])

    if "before" in resume.state:  # the dense model was measured and saved by an earlier (killed) run
        resume.load_state("dense", model)
        dense_macs, before = resume.state["before"]["macs"], resume.state["before"]["accuracy"]
        print(f"resuming the unfinished run in {resume.folder} after epoch {resume.state.get('epochs_done', 0)}", file=sys.stderr)
    else:
        dense_macs, before = count_macs(model, args.resolution, data.in_channels), accuracy(model)
        resume.save_state("dense", model)
        resume.write(before={"macs": dense_macs, "accuracy": before})
    layers = sparsify(model, pattern)
    done = int(resume.state.get("epochs_done", 0))
    if done:
        resume.load_state("sparse", model)  # the dense weights under the SR-STE masks, after `done` epochs
    base = get_recipe("basic")
    for epoch in range(done, args.epochs):
        seed_everything(epoch)  # dropout draws from the global stream: each epoch's own seed, killed or not
        recipe = dataclasses.replace(base, epochs=1, schedule="constant", lr=epoch_lr(base, epoch, args.epochs))
        model = train(model, data, recipe, resolution=args.resolution, seed=epoch, evaluate_every_epoch=False,
                      fresh_init=False).model.cpu()
        resume.save_state("sparse", model)  # the weights first: state.json never names an epoch not on disk
        resume.write(epochs_done=epoch + 1)
    model = finalize(model).to(memory_format=torch.contiguous_format)
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    report = {
        "model": args.model, "pattern": args.pattern, "epochs": args.epochs, "data": data.name,
        "params": count_params(model), "nonzero_params": nonzero, "sparsified_layers": len(layers),
        "macs_dense": dense_macs, "accuracy_before": before, "accuracy_after": accuracy(model),
        **sparse_size_bytes(model, pattern),
        "speedup": None, "speedup_note": "not measured: no AVX2 CPU runtime runs N:M or unstructured sparse convolutions faster",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save(model, out / "model.safetensors", {"dataset": data.name, "sparsity": args.pattern})
    atomic_write_text(out / "sparsify.json", json.dumps(report, indent=2))
    resume.finish()
    print(f"{args.model} {args.pattern}: {nonzero}/{report['params']} non-zero parameters, weights {report['dense_bytes']} -> "
          f"{report['sparse_bytes']} bytes sparse-encoded, top-1 {before:.2%} -> {report['accuracy_after']:.2%}; wrote {out}")
    return 0
