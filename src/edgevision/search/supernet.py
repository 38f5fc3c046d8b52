"""Differentiable strategies on a supernet spec: ``dnas`` (FBNet) and ``proxyless`` (ProxylessNAS).

Both build the supernet (``ChoiceBlock`` layers holding every candidate), price every candidate
from the latency table at the deployment resolution, and alternate two phases per epoch on
*disjoint* splits of the training images (FBNet, Wu et al. 2019, Sec. 3.4: 80% for the weights w,
20% for the architecture parameters θ):

* ``dnas`` (FBNet Eq. 2, 6-7): per layer a soft Gumbel-softmax sample m = GS(θ, τ); the layer's
  output is Σ_k m_k · o_k; the loss is CE · α · (log LAT)^β with LAT = Σ fixed + Σ_l Σ_k m_lk ·
  t_lk the table latency of the sampled mixture (α = 0.2, β = 0.6; τ = 5.0 annealed by
  exp(-0.045) per epoch, Sec. 4.1). LAT is in microseconds so log LAT > 0 for every block here.
* ``proxyless`` (Cai et al. 2019, Sec. 3.2.1 and 3.3): binarized paths. In the weight phase one
  path per layer is sampled from softmax(α) and only it runs; in the architecture phase two
  paths are sampled, their probabilities renormalised and one of them gated on, with a
  straight-through gradient to α through both (two paths in memory); loss CE + λ · E[LAT] / budget
  with E[LAT] = Σ fixed + Σ_l Σ_k p_lk t_lk (λ = 0.1, the paper's additive latency loss).

After the supernet, the argmax architecture and further samples from the learned distribution
(FBNet samples 6, Sec. 4.1) are priced, those within the budget trained from scratch with the
search's accuracy estimator, and reported as candidates.
"""

from __future__ import annotations

import math
import random
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.choice import ChoiceBlock, choice_blocks, choose
from ..builder import build
from ..lut.space import network_id
from .result import Candidate
from .space import as_supernet, with_classes
from .study import describe_network

__all__ = ["run_dnas", "run_proxyless", "FBNET_ALPHA", "FBNET_BETA", "FBNET_TEMPERATURE", "FBNET_DECAY"]

FBNET_ALPHA, FBNET_BETA = 0.2, 0.6  # FBNet Sec. 4.1
FBNET_TEMPERATURE, FBNET_DECAY = 5.0, math.exp(-0.045)  # initial τ, per-epoch factor
PROXYLESS_LAMBDA = 0.1


def fbnet_loss(cross_entropy: torch.Tensor, latency_us: torch.Tensor, alpha: float = FBNET_ALPHA, beta: float = FBNET_BETA) -> torch.Tensor:
    """FBNet Eq. 2: CE(a, w) · α · log(LAT(a))^β."""
    return cross_entropy * alpha * torch.log(latency_us).pow(beta)


def _splits(data, weight_fraction: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train), generator=generator)
    cut = int(len(order) * weight_fraction)
    return data.train.subset(order[:cut]), data.train.subset(order[cut:])


def _batches(dataset, batch_size: int, seed: int, limit: int | None):
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    count = len(order) // batch_size
    for index in range(count if limit is None else min(count, limit)):
        picked = order[index * batch_size : (index + 1) * batch_size]
        if isinstance(getattr(dataset, "images", None), torch.Tensor):  # tensor datasets: one gather
            yield dataset.images[picked], dataset.labels[picked]
        else:
            yield torch.stack([dataset[int(i)][0] for i in picked]), torch.tensor([int(dataset[int(i)][1]) for i in picked])


class _Supernet:
    """The built supernet, its choice layers, architecture parameters and candidate latencies."""

    def __init__(self, context, mode: str) -> None:
        self.context = context
        self.mode = mode
        data = context.splits()
        self.data = data
        self.spec = with_classes(as_supernet(context.space), data.num_classes)
        self.priced = context.latency.supernet_latency(self.spec)
        torch.manual_seed(context.seed)
        self.model = build(self.spec)
        self.layers = [m for m in self.model.modules() if isinstance(m, ChoiceBlock)]
        self.choice_specs = choice_blocks(self.spec)
        assert len(self.layers) == len(self.priced.candidate_ms) == len(self.choice_specs)
        self.theta = nn.ParameterList([nn.Parameter(torch.zeros(len(m.candidates))) for m in self.layers])
        self.latency_us = [torch.tensor(row, dtype=torch.float32) * 1000.0 for row in self.priced.candidate_ms]
        self.fixed_us = self.priced.fixed_ms * 1000.0

    # ---- path weights --------------------------------------------------------------------
    def gumbel(self, temperature: float) -> torch.Tensor:
        """Set soft Gumbel-softmax path weights on every layer; return the sampled mixture's latency (µs)."""
        latency = torch.tensor(self.fixed_us)
        for layer, theta, cost in zip(self.layers, self.theta, self.latency_us):
            weights = F.gumbel_softmax(theta, tau=temperature, hard=False)
            layer.path_weights, layer.live_paths = weights, None
            latency = latency + (weights * cost).sum()
        return latency

    def binary(self, two_paths: bool) -> torch.Tensor:
        """Set ProxylessNAS binary gates; return the expected latency (µs) under softmax(α)."""
        latency = torch.tensor(self.fixed_us)
        for layer, alpha, cost in zip(self.layers, self.theta, self.latency_us):
            probs = F.softmax(alpha, dim=0)
            latency = latency + (probs * cost).sum()
            if not two_paths or len(probs) == 1:
                chosen = int(torch.multinomial(probs.detach(), 1))
                layer.path_weights, layer.live_paths = torch.ones(len(probs)), (chosen,)
                continue
            pair = torch.multinomial(probs.detach(), 2, replacement=False)
            pair_probs = probs[pair] / probs[pair].sum()
            on = int(torch.multinomial(pair_probs.detach(), 1))
            gates = F.one_hot(torch.tensor(on), 2).float()
            gates = gates - pair_probs.detach() + pair_probs  # value: the binary gate; gradient: through both paths' probabilities
            weights = torch.zeros(len(probs)).index_put((pair,), gates)
            layer.path_weights, layer.live_paths = weights, tuple(int(k) for k in pair)
        return latency

    def clear(self) -> None:
        for layer in self.layers:
            layer.path_weights, layer.live_paths = None, None

    def distribution(self) -> list[list[float]]:
        return [F.softmax(theta.detach(), dim=0).tolist() for theta in self.theta]


def _train_supernet(context, mode: str, epochs: int, steps_per_epoch: int | None, time_limit_s: float | None, batch_size: int = 64) -> _Supernet:
    from ..datasets import BatchPreprocessor

    net = _Supernet(context, mode)
    data = net.data
    weight_split, arch_split = _splits(data, 0.8, context.seed)
    batch_size = max(1, min(batch_size, len(arch_split)))  # small datasets: at least one architecture batch per epoch
    preprocess = BatchPreprocessor(context.resolution, net.spec.in_channels, data.mean, data.std, crop_padding=4, flip=data.flip_safe, seed=context.seed)
    weights_optimizer = torch.optim.SGD(net.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)  # FBNet Sec. 4.1
    arch_optimizer = torch.optim.Adam(net.theta.parameters(), lr=0.01, weight_decay=5e-4)
    total = epochs * (steps_per_epoch or max(1, len(weight_split) // batch_size))
    warmup_epochs = epochs // 4  # w first, so θ is not fitted to untrained candidates (FBNet trains w alone at the start)
    started, step, history = time.perf_counter(), 0, []
    budget_us = context.budget_ms * 1000.0
    for epoch in range(epochs):
        temperature = FBNET_TEMPERATURE * FBNET_DECAY**epoch
        net.model.train()
        losses = []
        for images, labels in _batches(weight_split, batch_size, context.seed + epoch, steps_per_epoch):
            for group in weights_optimizer.param_groups:
                group["lr"] = 0.05 * (1 + math.cos(math.pi * step / total))  # cosine from 0.1
            with torch.no_grad():
                net.gumbel(temperature) if mode == "dnas" else net.binary(two_paths=False)
            inputs = preprocess(images, train=True)
            loss = F.cross_entropy(net.model(inputs), labels)
            weights_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            weights_optimizer.step()
            losses.append(loss.item())
            step += 1
        row = {"epoch": epoch + 1, "temperature": temperature, "weight_loss": sum(losses) / max(1, len(losses))}
        if epoch >= warmup_epochs:
            arch_losses, expected = [], []
            for images, labels in _batches(arch_split, batch_size, context.seed + 7919 + epoch, steps_per_epoch):
                latency = net.gumbel(temperature) if mode == "dnas" else net.binary(two_paths=True)
                cross_entropy = F.cross_entropy(net.model(preprocess(images, train=False)), labels)
                if mode == "dnas":
                    loss = fbnet_loss(cross_entropy, latency)
                else:
                    loss = cross_entropy + PROXYLESS_LAMBDA * latency / budget_us
                arch_optimizer.zero_grad(set_to_none=True)
                weights_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                arch_optimizer.step()
                arch_losses.append(loss.item())
                expected.append(float(latency.detach()) / 1000.0)
            row.update(arch_loss=sum(arch_losses) / max(1, len(arch_losses)), latency_ms=sum(expected) / max(1, len(expected)))
        history.append(row)
        if context.progress is not None:
            context.progress(f"{mode} epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            break
    net.clear()
    net.history = history
    return net


def _derive(context, net: _Supernet, samples: int, source: str, deadline: float | None = None) -> list[Candidate]:
    """Argmax + ``samples`` draws from the learned distribution; the ones within budget trained from scratch.

    Past ``deadline`` (``time.perf_counter()`` value) no further network is trained, the argmax always is:
    the wall-clock budget bounds the whole strategy, so strategies compare at equal cost.
    """
    rng = random.Random(context.seed)
    probabilities = net.distribution()
    picks = [tuple(max(range(len(p)), key=p.__getitem__) for p in probabilities)]
    for _ in range(samples * 20):
        if len(picks) >= samples + 1:
            break
        draw = tuple(rng.choices(range(len(p)), weights=p)[0] for p in probabilities)
        if draw not in picks:
            picks.append(draw)
    base = context.space.name.removesuffix("-supernet")
    candidates = []
    for rank, indices in enumerate(picks):
        network = choose(net.spec, indices)
        network = network.replace(name=f"{base}-{network_id(network)}")
        predicted = context.latency.network_ms(network)
        params, macs = describe_network(network)
        within = predicted <= context.budget_ms
        if rank > 0 and deadline is not None and time.perf_counter() > deadline:
            break
        accuracy = float(context.estimator(network)) if within else None
        candidates.append(
            Candidate(network, predicted, accuracy, params, macs, source=source, extra={"path": list(indices), "argmax": rank == 0})
        )
        if context.progress is not None:
            context.progress(f"{source} derived {network.name}: {predicted:.2f} ms" + (f", accuracy {accuracy:.3f}" if within else " (over budget)"))
    return candidates


def _run(context, mode: str, epochs: int | None, samples: int | None, steps_per_epoch: int | None) -> list[Candidate]:
    epochs = epochs or context.epochs_supernet
    started = time.perf_counter()
    time_limit = None if context.time_budget_s is None else 0.6 * context.time_budget_s  # the rest trains the derived networks
    deadline = None if context.time_budget_s is None else started + context.time_budget_s
    net = _train_supernet(context, mode, epochs, steps_per_epoch or context.steps_per_epoch, time_limit)
    context.details.update(
        supernet=net.spec.name,
        history=net.history,
        architecture={name: [round(p, 4) for p in probs] for name, probs in zip(net.priced.names, net.distribution())},
        candidates={spec.name: [c.kind for c in spec.candidates] for spec in net.choice_specs},
    )
    return _derive(context, net, samples if samples is not None else max(1, context.trials - 1), mode, deadline)


def run_dnas(context, epochs: int | None = None, samples: int | None = None, steps_per_epoch: int | None = None) -> list[Candidate]:
    return _run(context, "dnas", epochs, samples, steps_per_epoch)


def run_proxyless(context, epochs: int | None = None, samples: int | None = None, steps_per_epoch: int | None = None) -> list[Candidate]:
    return _run(context, "proxyless", epochs, samples, steps_per_epoch)
