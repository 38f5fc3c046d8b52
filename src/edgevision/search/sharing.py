"""Weight sharing: train a supernet once, score every sub-network with the weights it inherits.

Single Path One-Shot (Guo et al. 2020, Sec. 3.2-3.4): the supernet is trained with one path per
step, each choice layer's candidate drawn uniformly (so every candidate's weights are trained in
the context of every other's); a sub-network then inherits its candidates' weights unchanged, its
BatchNorm statistics are recomputed on a few training batches (Sec. 3.4: the shared statistics
belong to no single path), and its validation top-1 is the accuracy estimate. Sampling strategies
(``random``, ``evolution``) then rank thousands of paths for the cost of one supernet training
instead of one short training per trial (``run(..., accuracy="supernet")``).

A sub-network is a plain :class:`NetworkSpec` (what ``choose`` returns); :func:`path_of` recovers
the candidate index of every choice layer from it, so the estimator keeps the ordinary
``callable(NetworkSpec) -> float`` interface. Where skips make two paths the same network
(a skip at block 1 or at block 2 of a stage), the candidate is matched at the earliest position.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.choice import ChoiceBlock, ChoiceBlockSpec, IdentitySpec, choose
from ..builder import build
from ..network import NetworkSpec

__all__ = ["SUPERNET_FILE", "SharedWeights", "inherit", "path_of", "train_supernet"]


def _sections(spec: NetworkSpec) -> list[tuple]:
    return [tuple(spec.stem)] + [tuple(stage.blocks) for stage in spec.stages]


def path_of(supernet: NetworkSpec, network: NetworkSpec) -> list[int]:
    """The candidate index per choice layer (``choice_blocks`` order) that makes ``network`` from ``supernet``."""
    if len(network.stages) != len(supernet.stages):
        raise ValueError(f"{network.name} has {len(network.stages)} stages, supernet {supernet.name} has {len(supernet.stages)}: not one of its paths")
    indices: list[int] = []
    for section, (layers, blocks) in enumerate(zip(_sections(supernet), _sections(network))):
        position = 0
        for layer in layers:
            here = blocks[position] if position < len(blocks) else None
            if not isinstance(layer, ChoiceBlockSpec):
                if here != layer:
                    raise ValueError(f"{network.name} section {section} block {position} is not the supernet's fixed block {layer.kind}")
                position += 1
            elif here is not None and here in layer.candidates:
                indices.append(layer.candidates.index(here))
                position += 1
            elif IdentitySpec() in layer.candidates:
                indices.append(layer.candidates.index(IdentitySpec()))
            else:
                raise ValueError(f"{network.name} section {section} block {position} ({getattr(here, 'kind', 'none')}) is not a candidate of {layer.name or 'a choice'}")
        if position != len(blocks):
            raise ValueError(f"{network.name} section {section} has {len(blocks) - position} block(s) more than any path of {supernet.name}")
    return indices


def inherit(supernet: NetworkSpec, model: nn.Module, indices: Sequence[int], name: str | None = None) -> nn.Module:
    """The plain network of path ``indices`` (named ``name``), built and given the supernet ``model``'s weights for that path."""
    network = build(choose(supernet, indices, name=name))
    picks = iter(indices)
    sources = [model.stem, *model.stages]
    targets = [network.stem, *network.stages]
    for layers, source_modules, target_modules in zip(_sections(supernet), sources, targets):
        remaining = iter(target_modules)
        for layer, module in zip(layers, source_modules):
            if isinstance(layer, ChoiceBlockSpec):
                index = next(picks)
                if isinstance(layer.candidates[index], IdentitySpec):
                    continue  # skip: dropped from the plain network, nothing to copy
                module = module.candidates[index]
            next(remaining).load_state_dict(module.state_dict())
    network.head.load_state_dict(model.head.state_dict())
    return network


def train_supernet(
    supernet: NetworkSpec,
    data,
    resolution: int,
    epochs: int,
    *,
    steps_per_epoch: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> nn.Module:
    """SPOS training: every step one uniformly drawn path (``ChoiceBlock.active``), SGD with a cosine schedule."""
    from ..datasets import BatchPreprocessor
    from .supernet import _batches

    torch.manual_seed(seed)
    model = build(supernet)
    layers = [m for m in model.modules() if isinstance(m, ChoiceBlock)]
    rng = random.Random(seed)
    preprocess = BatchPreprocessor(resolution, supernet.in_channels, data.mean, data.std, crop_padding=4, flip=data.flip_safe, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=4e-5)  # SPOS Sec. 4 uses 4e-5
    batch_size = max(1, min(batch_size, len(data.train)))
    total = epochs * (steps_per_epoch or max(1, len(data.train) // batch_size))
    step = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for images, labels in _batches(data.train, batch_size, seed + epoch, steps_per_epoch):
            for layer in layers:
                layer.path_weights, layer.live_paths = None, None
                layer.active = rng.randrange(len(layer.candidates))
            for group in optimizer.param_groups:
                group["lr"] = 0.05 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(preprocess(images, train=True)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
        if progress is not None:
            progress(f"supernet (weight sharing) epoch {epoch + 1}/{epochs}: loss {sum(losses) / max(1, len(losses)):.4g}")
    for layer in layers:
        layer.active = 0
    return model.eval()


#: checkpoint metadata key of the supernet's training settings (what a resumed search must match)
SUPERNET_TRAINING = "supernet_training"

#: where a search with ``accuracy="supernet"`` keeps the trained supernet, inside its output directory
SUPERNET_FILE = "supernet.safetensors"


def _load_supernet(path: Path, supernet: NetworkSpec, config: dict) -> nn.Module:
    """The supernet weights at ``path``, if they belong to ``supernet`` trained with ``config``; else SearchError."""
    from ..checkpoint import CheckpointError, load, read_metadata
    from .result import SearchError

    remedy = "delete it to retrain, or give another --out"
    try:
        metadata = read_metadata(path)
    except CheckpointError as error:
        raise SearchError(f"supernet weights {path} cannot be read ({str(error).splitlines()[0][:160]}); {remedy}") from None
    stored_name = metadata["spec"].get("name") if isinstance(metadata["spec"], dict) else None
    if metadata["spec"] != supernet.to_dict():
        raise SearchError(
            f"supernet weights {path} belong to another space or supernet spec ({stored_name!r}, not this search's {supernet.name!r} "
            f"with its candidates and classes); {remedy}"
        )
    stored = metadata.get(SUPERNET_TRAINING)
    if stored != config:
        stored = stored if isinstance(stored, dict) else {}
        listed = ", ".join(f"{k}: {stored.get(k)!r} stored, {v!r} asked" for k, v in config.items() if stored.get(k) != v) or "no training settings stored"
        raise SearchError(f"supernet weights {path} were trained with other settings ({listed}); {remedy}")
    try:
        return load(path).eval()
    except CheckpointError as error:
        raise SearchError(f"supernet weights {path} cannot be loaded ({str(error).splitlines()[0][:160]}); {remedy}") from None


@dataclass
class _Trained:
    """What ``write_outputs`` saves as best: the model and its score (``ShortTraining.train``'s shape)."""

    model: nn.Module
    final: dict


class SharedWeights:
    """``callable(NetworkSpec) -> top-1``: the path's inherited weights, BN recalibrated, on the validation split."""

    def __init__(self, supernet: NetworkSpec, model: nn.Module, data, resolution: int, *, calibration_batches: int = 4, batch_size: int = 64, seed: int = 0) -> None:
        self.supernet, self.model, self.data = supernet, model, data
        self.resolution, self.calibration_batches, self.batch_size, self.seed = resolution, calibration_batches, batch_size, seed

    @classmethod
    def trained(
        cls,
        supernet: NetworkSpec,
        data,
        resolution: int,
        epochs: int,
        *,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        progress=None,
        path: str | os.PathLike | None = None,
        data_name: str | None = None,
    ) -> "SharedWeights":
        """Train the supernet, or, when ``path`` holds the weights of this very supernet and training, load them.

        ``path`` (``OUT/supernet.safetensors`` in a search) is written atomically once training ends, so a
        search killed afterwards resumes without retraining; a file for another supernet or other training
        settings is refused (:class:`SearchError`) rather than silently reused or overwritten.
        """
        config = {"data": data_name, "resolution": resolution, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "seed": seed}
        if path is not None and Path(path).exists():
            model = _load_supernet(Path(path), supernet, config)
            if progress is not None:
                progress(f"supernet (weight sharing) weights reused from {path}")
            return cls(supernet, model, data, resolution, seed=seed)
        model = train_supernet(supernet, data, resolution, epochs, steps_per_epoch=steps_per_epoch, seed=seed, progress=progress)
        if path is not None:
            from ..checkpoint import save

            save(model, path, metadata={SUPERNET_TRAINING: config})  # atomic: a kill leaves no file or the whole file
        return cls(supernet, model, data, resolution, seed=seed)

    def _preprocess(self):
        from ..datasets import BatchPreprocessor

        data = self.data
        return BatchPreprocessor(self.resolution, self.supernet.in_channels, data.mean, data.std, crop_padding=0, flip=False, seed=self.seed)

    def train(self, spec: NetworkSpec) -> _Trained:
        """The sub-network with inherited weights and recalibrated BN statistics (no training of its own)."""
        from .supernet import _batches

        network = inherit(self.supernet, self.model, path_of(self.supernet, spec), name=spec.name)
        preprocess = self._preprocess()
        norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:  # SPOS Sec. 3.4: the shared statistics belong to no single path
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration batches
        network.train()
        with torch.no_grad():
            for images, _ in _batches(self.data.train, min(self.batch_size, len(self.data.train)), self.seed, self.calibration_batches):
                network(preprocess(images, train=False))
        for norm in norms:
            norm.momentum = 0.1
        network.eval()
        correct = seen = 0
        with torch.no_grad():
            for images, labels in _batches(self.data.val, min(self.batch_size, len(self.data.val)), self.seed, None):
                correct += int((network(preprocess(images, train=False)).argmax(1) == labels).sum())
                seen += len(labels)
        return _Trained(network, {"val_top1": correct / max(1, seen), "inherited": True})

    def __call__(self, spec: NetworkSpec) -> float:
        return float(self.train(spec).final["val_top1"])
