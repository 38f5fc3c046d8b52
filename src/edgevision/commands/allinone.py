"""``edgevision allinone``: one weight set for K pruning ratios, and a ratio policy for a slowing machine.

All-in-One (Gong et al., ICCAD 2022; ``edgevision.prune.allinone``): ranks every channel group once,
trains all ratios from one weight set (sandwich steps, in-place distillation from the widest), then
measures each ratio's sliced dense subnetwork at every emulated machine speed (fewer threads, a CPU
quota) and records, per speed, the widest ratio that keeps latency under ``--target-ms`` (default:
the unpruned model's latency at the fastest speed, i.e. "stay as fast as at full speed").

A command of its own rather than ``prune --ratios``: ``prune`` shrinks to one latency target and
writes one pruned network, while this trains one weight set for several ratios and times it on
several emulated speeds; the two share no required option (``prune`` requires --target-ms or
--target-ratio; here --target-ms is the policy's target and optional) and write different reports.

Writes ``DIR/model.safetensors`` (the one weight set: the full, importance-ordered network, which
``ev.load`` s as an ordinary network; the ratios and widths in its metadata), ``DIR/ratio_stats.safetensors``
(per-ratio BatchNorm statistics, a few KB) and ``DIR/allinone.json`` (per ratio: params, MACs,
accuracy, median ms per emulated speed; the policy's choice per speed). ``AllInOne.load(DIR)``
reads both files back. Resumable after kill -9 like ``prune``: the dense model, every finished epoch
(weights, statistics, momentum) and every finished measurement are written atomically under
``DIR/.allinone-resume/``; the same command continues, other settings are refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import UsageError, nonempty, nonnegative_int, output_dir, output_lock, positive_float, positive_int, seed

__all__ = ["register", "run"]

RESUME_DIR = ".allinone-resume"


def register(commands) -> None:
    parser = commands.add_parser(
        "allinone",
        help="train one weight set for several pruning ratios and pick a ratio per emulated machine speed (All-in-One)",
        description="Rank channels once, train every pruning ratio from one weight set (sandwich rule, in-place "
        "distillation), measure each ratio's sliced dense subnetwork at every emulated speed (threads x CPU quota) "
        "and choose, per speed, the widest ratio under the latency target. Without --checkpoint the dense model is "
        "trained first (--epochs).",
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--ratios", type=float, nargs="+", required=True, metavar="R",
                        help="pruning ratios, the fraction of channels removed, each in (0, 1), e.g. 0.25 0.5 0.75")
    parser.add_argument("--checkpoint", type=nonempty, default=None, metavar="F", help="trained weights of MODEL (.safetensors from `edgevision train`)")
    parser.add_argument("--epochs", type=nonnegative_int, default=1, metavar="N", help="All-in-One training epochs (and dense training without --checkpoint)")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=None, metavar="S", help="cap the steps of each epoch (default: the whole epoch)")
    parser.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default 0.05; 0.0125 from a --checkpoint)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--criterion", default="l1", choices=("l1", "l2", "bn", "taylor", "random"), help="channel importance used for the one ranking (default l1)")
    parser.add_argument("--no-inplace-distill", action="store_true", help="train narrower ratios on the labels instead of the widest ratio's outputs")
    parser.add_argument("--sample", type=nonnegative_int, default=None, metavar="N",
                        help="sandwich rule: widest + narrowest + N random ratios per step (default: every ratio each step)")
    parser.add_argument("--runtime", default="ort", choices=("ort", "eager"), help="runtime the latency is measured on (default ort)")
    parser.add_argument("--threads", type=positive_int, nargs="+", default=None, metavar="T",
                        help="emulated speeds: intra-op thread counts (default: the physical cores, halving down to 1)")
    parser.add_argument("--quota", type=positive_float, nargs="+", default=[1.0], metavar="Q",
                        help="emulated speeds: CPU quotas, the fraction of each 2 ms the process may run, in [0.05, 1] (default 1)")
    parser.add_argument("--target-ms", type=positive_float, default=None, metavar="X",
                        help="the policy's latency target (default: the unpruned model at the fastest speed)")
    parser.add_argument("--data", type=nonempty, default="default", help="default | cifar10:DIR | cifar100:DIR | imagefolder:DIR | npz:FILE")
    parser.add_argument("--resolution", type=positive_int, default=32, metavar="R", help="input resolution R x R (default 32)")
    parser.add_argument("--time-budget", type=positive_float, default=1.0, metavar="S", help="seconds per latency measurement (default 1)")
    parser.add_argument("--subnets", action="store_true", help="also write DIR/subnet_<ratio>.safetensors, each ratio as its own network")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output folder")
    parser.set_defaults(handler=run)


def _checked(args: argparse.Namespace) -> None:
    from ..prune.allinone import AllInOneError, check_ratios
    from .prune import check_resolution

    try:
        args.ratios = list(check_ratios(args.ratios))
    except AllInOneError as error:
        raise UsageError(f"--ratios: {error}") from None
    for quota in args.quota:
        if not 0.05 <= quota <= 1.0:
            raise UsageError(f"--quota is the fraction of time the process may run and must be in [0.05, 1], got {quota:g}")
    if args.threads is not None and len(set(args.threads)) != len(args.threads):
        raise UsageError("--threads lists a thread count twice; give each once")
    if len(set(args.quota)) != len(args.quota):
        raise UsageError("--quota lists a quota twice; give each once")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    check_resolution(args.resolution, args.batch_size)


def _default_threads() -> list[int]:
    from ..machine import machine_info

    threads, counts = max(1, machine_info().physical_cores), []
    while threads >= 1:
        counts.append(threads)
        threads //= 2
    return counts


def run(args: argparse.Namespace) -> int:
    with output_lock(args.out, "allinone output directory"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ..atomic import atomic_write_text
    from ..checkpoint import save
    from ..counting import count_macs, count_params
    from ..datasets import make_loader
    from ..evaluation import predict, topk_accuracy
    from ..latency import measure
    from ..prune.allinone import AllInOne, AllInOneError, calibration_batches, train_allinone
    from ..prune.dvfs import choose, cpu_quota, speeds
    from ..training import get_recipe, train
    from ._common import stderr_console
    from .prune import _Resume, _taylor_batches, load_inputs

    _checked(args)
    console = stderr_console()
    out = Path(args.out)
    resume = _Resume(out, args, folder=RESUME_DIR, command="allinone")
    data, model, trained, shape, preprocess = load_inputs(args)
    speed_list = speeds(args.threads or _default_threads(), args.quota)

    # ---- 1. the dense model (trained here without --checkpoint) ---------------------------------
    if resume.state.get("dense"):
        model = resume.load_model("dense")
        console.print(f"resuming the unfinished run in {resume.folder}")
    else:
        if not trained and args.epochs:
            console.print(f"no --checkpoint: training the dense {args.model} for {args.epochs} epoch(s) first")
            recipe = dataclasses.replace(get_recipe("basic"), epochs=args.epochs)
            model = train(model, data, recipe, resolution=args.resolution, seed=args.seed, evaluate_every_epoch=False,
                          max_steps=None if args.steps_per_epoch is None else args.steps_per_epoch * args.epochs).model
            model = model.cpu().to(memory_format=torch.contiguous_format)
        resume.save_model("dense", model)
        resume.write(dense=True)

    # ---- 2. one ranking, one weight set, sandwich training -------------------------------------
    done_epochs = int(resume.state.get("epochs_done", 0))
    if resume.state.get("calibrated"):
        allinone = AllInOne.load(resume.folder / "final")
    elif done_epochs:
        allinone = AllInOne.load(resume.folder / f"epoch{done_epochs}")
    else:
        try:
            batches = _taylor_batches(data, preprocess, make_loader) if args.criterion == "taylor" else None
            allinone = AllInOne.from_model(model.eval(), args.ratios, args.criterion, batches)
        except AllInOneError as error:
            raise UsageError(f"{args.model}: {error}") from None
    parameters = dict(allinone.full.named_parameters())
    lr = args.lr if args.lr is not None else (0.0125 if trained else 0.05)
    optimizer = torch.optim.SGD(parameters.values(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    if done_epochs and not resume.state.get("calibrated"):
        _load_momentum(optimizer, parameters, resume.folder / f"epoch{done_epochs}" / "momentum.safetensors")

    def finished(epoch: int, optimizer, loss: float) -> None:  # the files first: state.json never names an epoch not on disk
        folder = resume.folder / f"epoch{epoch}"
        allinone.save(folder)
        _save_momentum(optimizer, parameters, folder / "momentum.safetensors")
        resume.write(epochs_done=epoch)
        _remove(resume.folder / f"epoch{epoch - 1}")
        console.print(f"epoch {epoch}/{args.epochs}: mean loss over ratios {loss:.4f}")

    train_allinone(allinone, data, epochs=args.epochs, lr=lr, batch_size=args.batch_size, resolution=args.resolution,
                   steps_per_epoch=args.steps_per_epoch, seed=args.seed, inplace_distill=not args.no_inplace_distill,
                   sample=args.sample, start_epoch=done_epochs, optimizer=optimizer, on_epoch=finished)
    if not resume.state.get("calibrated"):  # exact BatchNorm statistics per ratio for the final weights
        allinone.recalibrate(calibration_batches(data, args.resolution, batch_size=args.batch_size, seed=args.seed + 1))
        allinone.save(resume.folder / "final")
        resume.write(calibrated=True)
    allinone.eval()

    # ---- 3. every ratio: counts, accuracy, latency at every emulated speed -----------------------
    members: dict[str, dict] = dict(resume.state.get("members", {}))
    subnets = {ratio: allinone.subnet(ratio) for ratio in allinone.ratios}
    for ratio, network in subnets.items():
        key = f"{ratio:g}"
        if key not in members:
            logits, labels = predict(network, data.val, lambda batch: preprocess(batch, train=False))
            members[key] = {"ratio": ratio, "params": count_params(network), "macs": count_macs(network, args.resolution, data.in_channels),
                            "accuracy": float(topk_accuracy(logits, labels, (1,))[1]), "median_ms": {}}
            resume.write(members=members)
        for speed in speed_list:
            if speed.name in members[key]["median_ms"]:
                continue
            with cpu_quota(speed.quota):
                result = measure(network, shape, runtime=args.runtime, threads=speed.threads, deploy=True,
                                 time_budget_s=args.time_budget, watch_machine=False)
            members[key]["median_ms"][speed.name] = result.median_ms
            members[key].setdefault("mean_ms", {})[speed.name] = result.mean_ms  # under a quota the mean shows the stops evenly
            resume.write(members=members)
            console.print(f"ratio {key}: {result.median_ms:.3f} ms at {speed.name}")

    # ---- 4. the policy ---------------------------------------------------------------------------
    fastest = speed_list[0].name
    target = args.target_ms if args.target_ms is not None else members["0"]["median_ms"][fastest]
    choices = [choose({m["ratio"]: m["median_ms"][s.name] for m in members.values()}, target, s.name).to_dict() for s in speed_list]
    report = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "data": data.name,
        "resolution": args.resolution,
        "criterion": args.criterion,
        "inplace_distill": not args.no_inplace_distill,
        "epochs": args.epochs,
        "runtime": args.runtime,
        "masks": "nested importance-ranked prefixes (one ranking), per-ratio BatchNorm statistics",
        "speeds": [{"name": s.name, "threads": s.threads, "quota": s.quota} for s in speed_list],
        "target_ms": target,
        "target_from": "--target-ms" if args.target_ms is not None else f"the unpruned model at {fastest}",
        "policy": "per speed, the widest ratio (least pruned) whose median latency <= target_ms; the fastest ratio when none meets it",
        "ratios": [members[f"{r:g}"] for r in allinone.ratios],
        "choices": choices,
        "widths": allinone.describe()["widths"],
    }
    out.mkdir(parents=True, exist_ok=True)
    metadata = {"dataset": data.name, "class_names": list(data.class_names),
                "preprocess": {"resolution": args.resolution, "mean": list(data.mean), "std": list(data.std)}}
    if args.subnets:
        for ratio, network in subnets.items():
            save(network, out / f"subnet_{ratio:g}.safetensors", {**metadata, "allinone_ratio": ratio})
    allinone.save(out, metadata)
    atomic_write_text(out / "allinone.json", json.dumps(report, indent=2))
    resume.finish()
    for choice in choices:
        mark = "" if choice["meets_target"] else " (misses the target: the fastest ratio)"
        print(f"{choice['speed']}: ratio {choice['ratio']:g}, {choice['ms']:.3f} ms{mark}")
    print(f"{args.model}: {len(allinone.ratios)} ratios from one weight set, target {target:.3f} ms; wrote {out}/model.safetensors, allinone.json")
    return 0


def _save_momentum(optimizer, parameters: dict, path: Path) -> None:
    from safetensors.torch import save_file

    from ..atomic import atomic_path

    tensors = {name: optimizer.state[p]["momentum_buffer"].detach().contiguous().clone()
               for name, p in parameters.items() if optimizer.state.get(p, {}).get("momentum_buffer") is not None}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary))


def _load_momentum(optimizer, parameters: dict, path: Path) -> None:
    from safetensors.torch import load_file

    for name, tensor in load_file(str(path)).items():
        if name in parameters and tensor.shape == parameters[name].shape:
            optimizer.state[parameters[name]]["momentum_buffer"] = tensor


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
