"""Accuracy estimates for architecture search: short training, and zero-cost proxies with their baselines.

* :class:`ShortTraining`: train the candidate for a few epochs with the Bag of Tricks recipe
  (He et al. 2019; ``edgevision.training``) on the embedded MNIST sample (or any ``--data``) at a
  small resolution, and score validation top-1. What every strategy ranks by unless told otherwise.
* Zero-cost proxies scored at initialization on one mini-batch: **synflow** (Tanaka et al. 2020,
  Eq. 2, as used for NAS by Abdelfattah et al. 2021: sum of |θ ⊙ ∂R/∂θ| with all-ones input and
  |θ| weights, in float64), **NASWOT** (Mellor et al. 2021, Eq. 2: log |det K_H| of the Hamming
  kernel of the activations' binary codes) and **grad-norm** (Abdelfattah et al. 2021: the sum of
  per-parameter gradient L2 norms of the cross-entropy), always next to the **params** and
  **MACs** baselines, which Abdelfattah et al. (Table 2) show are hard to beat.
* :func:`proxy_correlations`: each proxy's Spearman and Kendall rank correlation against
  short-trained accuracy over the same networks.

An estimator is any ``callable(NetworkSpec) -> float``; tests pass cheap fakes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..network import NetworkSpec

__all__ = ["PROXIES", "ProxyScore", "ShortTraining", "proxy_correlations", "proxy_scores", "grad_norm", "naswot", "synflow"]

Estimator = Callable[[NetworkSpec], float]


@functools.lru_cache(maxsize=4)
def _data(data: str):
    from ..datasets import load_data

    return load_data(data)


@dataclass(frozen=True)
class ShortTraining:
    """Validation top-1 after ``epochs`` of the ``recipe`` preset at ``resolution`` px (picklable: Ray ships it)."""

    data: str = "default"
    epochs: int = 1
    resolution: int = 32
    recipe: str = "tricks"
    batch_size: int = 64
    seed: int = 0
    max_steps: int | None = None
    threads: int | None = None  # torch intra-op threads in this process (Ray workers get 1 each)

    def splits(self):
        return _data(self.data)

    def train(self, spec: NetworkSpec, epochs: int | None = None):
        """Train ``spec`` (classes set from the data) and return the training result (``.model``, ``.final``)."""
        import dataclasses

        from ..builder import build
        from ..training import get_recipe, seed_everything, train

        if self.threads:
            torch.set_num_threads(self.threads)
        data = self.splits()
        recipe = dataclasses.replace(get_recipe(self.recipe), epochs=epochs or self.epochs).with_batch_size(self.batch_size)
        recipe = dataclasses.replace(recipe, warmup_epochs=min(recipe.warmup_epochs, recipe.epochs / 2))
        seed_everything(self.seed)
        model = build(spec.with_classes(data.num_classes))
        return train(model, data, recipe, resolution=self.resolution, seed=self.seed, device="cpu", workers=0, max_steps=self.max_steps, evaluate_every_epoch=False)

    def __call__(self, spec: NetworkSpec) -> float:
        return float(self.train(spec).final["val_top1"])


# ---- zero-cost proxies ------------------------------------------------------------------------
def _batch(data, count: int, resolution: int, in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..datasets import BatchPreprocessor

    images = torch.stack([data.train[i][0] for i in range(count)])
    labels = torch.tensor([int(data.train[i][1]) for i in range(count)])
    preprocess = BatchPreprocessor(resolution, in_channels, data.mean, data.std, crop_padding=0, flip=False, seed=0)
    return preprocess(images, train=False), labels


def synflow(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Σ |θ ⊙ ∂R/∂θ| with θ -> |θ|, input all ones, R = sum of outputs; float64, BN in eval (identity at init)."""
    model = model.double().eval()
    signs = {}
    with torch.no_grad():
        for name, parameter in model.state_dict().items():
            if parameter.is_floating_point():
                signs[name] = torch.sign(parameter)
                parameter.abs_()
    model.zero_grad()
    output = model(torch.ones_like(inputs, dtype=torch.float64)[:1])
    output.sum().backward()
    score = sum((p * p.grad).abs().sum().item() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        for name, parameter in model.state_dict().items():
            if name in signs:
                parameter.mul_(signs[name])
    model.float()
    return math.log(score) if score > 0 else -math.inf


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU, nn.PReLU)


def naswot(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """log |det K_H|, K_H[i, j] = number of activation units where inputs i and j have the same sign pattern."""
    codes: list[torch.Tensor] = []

    def hook(module, args, output) -> None:
        codes.append((output.detach().flatten(1) > 0).double())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _ACTIVATIONS)]
    try:
        model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    if not codes:
        return 0.0
    c = torch.cat(codes, dim=1)  # (B, units)
    kernel = c @ c.t() + (1 - c) @ (1 - c).t()  # agreements, (B, B)
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def grad_norm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Σ over parameters of ||∂CE/∂θ||_2 on one mini-batch at initialization."""
    model.train()
    model.zero_grad()
    F.cross_entropy(model(inputs), labels).backward()
    return float(sum(p.grad.norm().item() for p in model.parameters() if p.grad is not None))


PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm}


@dataclass(frozen=True)
class ProxyScore:
    network: str
    scores: dict[str, float]  # synflow, naswot, grad_norm, params, macs


def proxy_scores(spec: NetworkSpec, data: str = "default", resolution: int = 32, batch: int = 32, seed: int = 0) -> ProxyScore:
    """Every zero-cost proxy plus params and MACs (at ``resolution``) of ``spec`` at initialization."""
    from ..builder import build
    from ..counting import count_macs, count_params

    splits = _data(data)
    inputs, labels = _batch(splits, batch, resolution, spec.in_channels)
    scores: dict[str, float] = {}
    for name, proxy in PROXIES.items():
        torch.manual_seed(seed)  # the same initialization for every proxy
        model = build(spec.with_classes(splits.num_classes))
        scores[name] = proxy(model, inputs, labels)
    model = build(spec.with_classes(splits.num_classes))
    scores["params"] = float(count_params(model))
    scores["macs"] = float(count_macs(model, resolution))
    return ProxyScore(spec.name, scores)


def proxy_correlations(scores: Sequence[ProxyScore], accuracies: Sequence[float]) -> dict[str, dict[str, float]]:
    """Proxy -> {spearman, kendall} rank correlation with ``accuracies`` (same order as ``scores``)."""
    from scipy.stats import kendalltau, spearmanr

    if len(scores) != len(accuracies) or len(scores) < 3:
        raise ValueError(f"rank correlation needs >= 3 networks with one accuracy each, got {len(scores)} scores and {len(accuracies)} accuracies")
    out = {}
    for name in scores[0].scores:
        values = [s.scores[name] for s in scores]
        values = [v if math.isfinite(v) else -1e300 for v in values]
        out[name] = {"spearman": float(spearmanr(values, accuracies).statistic), "kendall": float(kendalltau(values, accuracies).statistic)}
    return out
