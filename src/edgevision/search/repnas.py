"""``repnas`` (RepNAS, Zhang et al. 2021): search which branches each diverse-branch block keeps, then fuse.

RepNAS searches an "optimal diverse branch block" (ODBB) per layer: every layer of a plain conv
network is a Diverse Branch Block (Ding et al. 2021; :class:`~edgevision.blocks.DiverseBranchConvSpec`)
whose branches each carry an architecture parameter, trained in one stage with the weights; the
least important branches are pruned under a **branch-number budget** (the fraction of all
branches the trained network may keep). Whatever survives still re-parameterizes to ONE k x k conv
per layer, so the shipped network is single-path and its deploy latency is that of the plain conv
network: the latency budget constrains the backbone (widths and depths), the branch budget the
training-time cost that buys accuracy.

Here (the paper's exact importance formula could not be read here, so this is our rendering of its
scheme):

* every branch b of layer l has a gate α_lb (init 1) multiplying its output (``branch_gates``);
  weights and gates are trained together on the same batches (one stage);
* a branch's importance is its accumulated first-order Taylor saliency Σ_steps |α_lb · ∂L/∂α_lb|,
  the estimated loss change of removing it (Molchanov et al. 2019);
* after ``warmup_epochs`` the lowest-importance branches are pruned at each epoch end, linearly
  down to the budget at the last epoch; a layer always keeps at least one branch.

The backbone comes from the space: a DBB conv per block position, each stage at one of its widths
and depths, grown greedily (widest, then deepest, last stage first) while its predicted deploy
latency stays within the budget; or ``options={"network": spec}`` gives one. The searched network
(and, with ``trials >= 3``, the full DBB and the k x k-only baselines) is trained by the search's
accuracy estimator and reported as a candidate.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ClassifierHeadSpec, DiverseBranchConvSpec
from ..blocks.diverse_branch import DBB_BRANCHES, DiverseBranchConv
from ..builder import build
from ..lut.space import SearchSpace, network_id
from ..network import NetworkSpec, StageSpec
from ..resolve import resolve
from .result import Candidate, SearchError
from .study import describe_network

__all__ = ["REPNAS_BRANCH_BUDGET", "branch_layers", "repnas_backbone", "run_repnas", "with_branches"]

#: default share of all branches the searched network keeps (ours: between the k x k-only conv, 25%, and the full DBB)
REPNAS_BRANCH_BUDGET = 0.5


def _dbb_network(space: SearchSpace, widths, depths, num_classes: int) -> NetworkSpec:
    stages = []
    for choices, width, depth in zip(space.stages, widths, depths):
        blocks = tuple(DiverseBranchConvSpec(out_channels=width, stride=choices.stride if i == 0 else 1) for i in range(depth))
        stages.append(StageSpec(blocks=blocks))
    spec = NetworkSpec(
        name=f"{space.name}-dbb",
        stem=(DiverseBranchConvSpec(out_channels=min(space.stem_widths), stride=2),),
        stages=tuple(stages),
        head=ClassifierHeadSpec(num_classes=num_classes),
        input_size=space.input_size,
    )
    return spec.replace(name=f"{space.name}-dbb-{network_id(spec)}")


def repnas_backbone(space: SearchSpace, latency, budget_ms: float) -> NetworkSpec:
    """The largest DBB conv network of ``space`` found greedily within ``budget_ms`` (deploy form, table-priced)."""
    widths = [min(s.widths) for s in space.stages]
    depths = [min(s.depths) for s in space.stages]
    network = _dbb_network(space, widths, depths, space.num_classes)
    smallest_ms = latency.network_ms(network)
    if smallest_ms > budget_ms:
        raise SearchError(
            f"latency budget {budget_ms:g} ms is below repnas's smallest backbone of space {space.name!r}: {network.name} predicts "
            f"{smallest_ms:.3f} ms on {latency.setting.runtime}; raise --latency-ms to at least {smallest_ms:.3f}"
        )
    for index in reversed(range(len(space.stages))):  # late stages first: they are cheap per channel at low resolution
        for field, options in (("width", space.stages[index].widths), ("depth", space.stages[index].depths)):
            values = widths if field == "width" else depths
            for option in sorted(options, reverse=True):
                if option <= values[index]:
                    break
                trial = list(values)
                trial[index] = option
                candidate = _dbb_network(space, trial if field == "width" else widths, trial if field == "depth" else depths, space.num_classes)
                if latency.network_ms(candidate) <= budget_ms:
                    values[index] = option
                    network = candidate
                    break
    return network


def branch_layers(network: NetworkSpec) -> list[str]:
    """Resolved paths (``stem.0``, ``stages.1.0``) of the network's DBB convs, in network order."""
    return [block.path for block in resolve(network) if isinstance(block.spec, DiverseBranchConvSpec)]


def with_branches(network: NetworkSpec, kept: list[tuple[str, ...]], name_suffix: str = "") -> NetworkSpec:
    """``network`` with the i-th DBB conv keeping ``kept[i]`` (branch names, :data:`DBB_BRANCHES` order)."""
    picks = iter(kept)

    def swap(blocks):
        out = []
        for block in blocks:
            if isinstance(block, DiverseBranchConvSpec):
                wanted = set(next(picks))
                block = block.replace(branches=tuple(x for x in DBB_BRANCHES if x in wanted))
            out.append(block)
        return tuple(out)

    stem = swap(network.stem)
    stages = tuple(StageSpec(blocks=swap(stage.blocks)) for stage in network.stages)
    spec = dataclasses.replace(network, stem=stem, stages=stages)
    base = network.name.split("-dbb-")[0]
    return spec.replace(name=f"{base}-odbb{name_suffix}-{network_id(spec)}")


def _budget_count(total: int, layers: int, branch_budget: float | int) -> int:
    count = int(branch_budget) if isinstance(branch_budget, int) and not isinstance(branch_budget, bool) and branch_budget > 1 else round(float(branch_budget) * total)
    if not (layers <= count <= total):
        raise SearchError(f"repnas branch budget {branch_budget!r} keeps {count} of {total} branches; it must keep at least one per layer ({layers}) and at most all")
    return count


class _BranchSearch:
    """The DBB network built with one gate per branch, the gates' accumulated saliency and the prune masks."""

    def __init__(self, network: NetworkSpec, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = build(network)
        self.layers = [m for m in self.model.modules() if isinstance(m, DiverseBranchConv)]
        self.names = branch_layers(network)
        assert len(self.layers) == len(self.names)
        self.gates = nn.ParameterList([nn.Parameter(torch.ones(len(m.branches))) for m in self.layers])
        self.masks = [torch.ones(len(m.branches)) for m in self.layers]
        self.saliency = [torch.zeros(len(m.branches)) for m in self.layers]

    def set_gates(self) -> None:
        for layer, gate, mask in zip(self.layers, self.gates, self.masks):
            layer.branch_gates = gate * mask

    def accumulate(self) -> None:
        for gate, saliency, mask in zip(self.gates, self.saliency, self.masks):
            if gate.grad is not None:
                saliency += (gate.detach() * gate.grad).abs() * mask

    def kept(self) -> int:
        return int(sum(m.sum() for m in self.masks))

    def prune_to(self, count: int) -> None:
        """Switch off the lowest-saliency live branches until ``count`` remain (one per layer at least)."""
        live = [(float(s[b]), l, b) for l, (s, m) in enumerate(zip(self.saliency, self.masks)) for b in range(len(m)) if m[b] > 0]
        for _, l, b in sorted(live):
            if self.kept() <= count:
                break
            if self.masks[l].sum() > 1:
                self.masks[l][b] = 0.0

    def kept_branches(self) -> list[tuple[str, ...]]:
        return [tuple(name for name, on in zip(layer.branches, mask) if on > 0) for layer, mask in zip(self.layers, self.masks)]

    def clear(self) -> None:
        for layer in self.layers:
            layer.branch_gates = None


def _search_branches(context, network: NetworkSpec, branch_budget, epochs: int, warmup_epochs: int, steps_per_epoch, time_limit_s, batch_size: int = 64):
    from ..datasets import BatchPreprocessor
    from .supernet import _batches

    data = context.splits()
    search = _BranchSearch(network.with_classes(data.num_classes), context.seed)
    total = sum(len(m) for m in search.masks)  # what the built layers really have (a depthwise DBB: 3)
    budget_count = _budget_count(total, len(search.layers), branch_budget)
    preprocess = BatchPreprocessor(context.resolution, network.in_channels, data.mean, data.std, crop_padding=4, flip=data.flip_safe, seed=context.seed)
    weights_optimizer = torch.optim.SGD(search.model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    gates_optimizer = torch.optim.Adam(search.gates.parameters(), lr=0.01)  # no weight decay: a gate's size is its importance
    batch_size = max(1, min(batch_size, len(data.train)))
    started, history = time.perf_counter(), []
    for epoch in range(epochs):
        search.model.train()
        losses = []
        for images, labels in _batches(data.train, batch_size, context.seed + epoch, steps_per_epoch):
            search.set_gates()
            loss = F.cross_entropy(search.model(preprocess(images, train=True)), labels)
            weights_optimizer.zero_grad(set_to_none=True)
            gates_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            search.accumulate()
            weights_optimizer.step()
            gates_optimizer.step()
            losses.append(loss.item())
        if epoch >= warmup_epochs:  # linear schedule from all branches to the budget at the last epoch
            share = (epoch - warmup_epochs + 1) / max(1, epochs - warmup_epochs)
            search.prune_to(total - math.ceil((total - budget_count) * share))
        row = {"epoch": epoch + 1, "loss": sum(losses) / max(1, len(losses)), "kept_branches": search.kept()}
        history.append(row)
        if context.progress is not None:
            context.progress(f"repnas epoch {epoch + 1}/{epochs}: loss {row['loss']:.4g}, {row['kept_branches']}/{total} branches kept")
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            break
    search.prune_to(budget_count)  # a time-limited search still ships within the branch budget
    search.clear()
    return search, history, total


def run_repnas(
    context,
    network: NetworkSpec | None = None,
    branch_budget: float | int = REPNAS_BRANCH_BUDGET,
    epochs: int | None = None,
    warmup_epochs: int | None = None,
    steps_per_epoch: int | None = None,
    batch_size: int = 64,
) -> list[Candidate]:
    """Search the branches of ``network`` (default: :func:`repnas_backbone` of the space) under ``branch_budget``.

    ``branch_budget``: share of all branches kept (0-1], or a count > 1.
    """
    space = context.space
    if network is None:
        if not isinstance(space, SearchSpace):
            raise SearchError("strategy 'repnas' grows a DBB backbone from a SearchSpace (e.g. --space mobile); for a supernet give options={'network': spec}")
        network = repnas_backbone(space, context.latency, context.budget_ms)
    if not branch_layers(network):
        raise SearchError(f"strategy 'repnas' needs diverse_branch_conv layers in {network.name}; it has none")
    predicted = context.latency.network_ms(network)
    if predicted > context.budget_ms:
        raise SearchError(f"repnas backbone {network.name} predicts {predicted:.3f} ms, over the {context.budget_ms:g} ms budget")
    epochs = epochs or context.epochs_supernet
    warmup = epochs // 4 if warmup_epochs is None else warmup_epochs
    layers = branch_layers(network)
    started = time.perf_counter()
    deadline = None if context.time_budget_s is None else started + context.time_budget_s
    search, history, total = _search_branches(
        context, network, branch_budget, epochs, warmup, steps_per_epoch or context.steps_per_epoch,
        None if context.time_budget_s is None else 0.6 * context.time_budget_s, batch_size,
    )
    kept = search.kept_branches()
    context.details.update(
        backbone=network.name,
        branch_budget={"kept": search.kept(), "total": total, "requested": branch_budget},
        branches=dict(zip(layers, [list(k) for k in kept])),
        importance={name: [round(float(v), 6) for v in s] for name, s in zip(layers, search.saliency)},
        history=history,
    )
    searched = with_branches(network, kept)
    roles = [("searched", searched)]
    if context.trials >= 3:  # the paper's comparison: the manual DBB (every branch) and the plain conv
        roles += [("dbb", with_branches(network, [DBB_BRANCHES] * len(layers), "-all")), ("kxk_only", with_branches(network, [("kxk",)] * len(layers), "-kxk"))]
    candidates = []
    for role, spec in roles:
        if role != "searched" and deadline is not None and time.perf_counter() > deadline:
            break
        params, macs = describe_network(spec)
        ms = context.latency.network_ms(spec)
        accuracy = float(context.estimator(spec))
        candidates.append(Candidate(spec, ms, accuracy, params, macs, source="repnas", extra={"role": role}))
        if context.progress is not None:
            context.progress(f"repnas {role} {spec.name}: {ms:.2f} ms, accuracy {accuracy:.3f}")
    return candidates
