"""All-in-One: one weight set that runs at K pruning ratios, switched at run time.

Follows the use case and the representation of Gong et al., "All-in-One: A Highly Representative
DNN Pruning Framework for Edge Devices with Dynamic Power Management" (ICCAD 2022): one set of
weights plus channel masks (and auxiliary parameters of negligible storage) stands for several
pruned models; when dynamic voltage and frequency scaling slows the device down, the model is
re-configured to a higher pruning ratio so that its latency stays put.

What is built here, and where it departs from the paper. The paper learns *soft* masks; its text
beyond the abstract was not available to us, so we do not claim its mask training. We use nested
*hard* masks instead (the slimmable / universally-slimmable construction, Yu et al. ICLR 2019 and
ICCV 2019): every channel group is ranked by importance once (:mod:`.importance`), the network's
channels are permuted so the most important come first (a permutation leaves the function
unchanged; :func:`~edgevision.prune.surgery.shrink` checks this for every block), and ratio ``r``
keeps the first ``widths_for_ratio(groups, r)`` channels of each group. So ratio ``r``'s mask is a
prefix, every narrower ratio is a subset of every wider one, and the subnetwork of a ratio is a
*sliced dense* network (real smaller convolutions: ``shrink`` with the prefix indices), an ordinary
spec that resolves, counts, exports and ``ev.load`` s. The auxiliary parameters are per-ratio
BatchNorm statistics ("private" statistics, as in slimmable networks: a narrower network sees other
activation statistics, sharing them costs most of its accuracy); the affine BN weights are shared.

Training updates all ratios from the one weight set: each step runs the sandwich rule over the
ratios (widest and narrowest always, all or ``sample`` random others in between), each through a
functional call of its sliced structure on *index_select views* of the shared tensors, so every
ratio's gradient lands on the one weight set; optionally with in-place distillation (the widest
ratio's detached logits are the soft targets of the narrower ones, US-Nets Sec. 3.3).

Ratios are *pruning* ratios, the fraction of channels removed (``widths_for_ratio``): 0.25 keeps
75% of each prunable group. The unpruned network (ratio 0) is always a member, the widest one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..builder import Network
from .groups import ChannelGroup, tiled
from .importance import importance
from .surgery import PruneError, Selection, groups_of, select_along, shrink, tensor_selections, widths_for_ratio

__all__ = ["AllInOne", "AllInOneError", "check_ratios", "ranking", "nested_keep", "train_allinone", "calibration_batches"]

_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class AllInOneError(PruneError):
    """A ratio list or a model All-in-One cannot take; the message says what to change."""


def check_ratios(ratios: Iterable[float]) -> tuple[float, ...]:
    """The pruning ratios, validated and ascending (each in (0, 1), no duplicates, at least one)."""
    values = list(ratios)
    if not values:
        raise AllInOneError("give at least one pruning ratio in (0, 1), e.g. 0.25 0.5 0.75")
    for value in values:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise AllInOneError(f"a pruning ratio is the fraction of channels removed and must be in (0, 1), got {value!r}")
    seen = set()
    for value in values:
        if value in seen:
            raise AllInOneError(f"pruning ratio {value:g} is given twice; give each ratio once")
        seen.add(value)
    return tuple(sorted(values))


def ranking(group: ChannelGroup, scores: torch.Tensor) -> torch.Tensor:
    """A permutation of ``group``'s channels, most important first, that keeps the group's layout rules.

    Plain group: channels by descending score. Grouped convolution (``step`` > 1): sorted inside each
    of its equal groups, so a prefix of every group is a valid keep. Segmented group (``tile`` > 1):
    units ranked by their summed score, the same order in every concatenated part.
    """
    if group.tile > 1:
        units = torch.argsort(scores.view(group.tile, -1).sum(0), descending=True, stable=True)
        return tiled(units, group.width, group.tile)
    if group.step > 1:
        size = group.width // group.step
        return torch.cat([torch.argsort(chunk, descending=True, stable=True) + g * size for g, chunk in enumerate(scores.view(group.step, size))])
    return torch.argsort(scores, descending=True, stable=True)


def nested_keep(group: ChannelGroup, width: int) -> torch.Tensor:
    """The kept channels at ``width`` of a group already ordered by :func:`ranking`: a prefix (per group / part)."""
    if group.tile > 1:
        return tiled(torch.arange(width // group.tile), group.width, group.tile)
    if group.step > 1:
        size = group.width // group.step
        return torch.cat([torch.arange(width // group.step) + g * size for g in range(group.step)])
    return torch.arange(width)


@dataclass(frozen=True)
class _Member:
    ratio: float
    widths: dict[str, int]  # group name -> width
    keeps: dict[str, torch.Tensor]  # group name -> kept channel indices (nested)


class AllInOne(nn.Module):
    """One weight set (``self.full``, importance-ordered), K pruning ratios, switched with :meth:`set_ratio`.

    Build with :meth:`from_model` (ranks and orders the channels) or :meth:`load`. In eval mode
    ``forward`` runs the active ratio's sliced dense subnetwork; in training mode it runs the same
    structure on views of the shared weights (gradients reach the one weight set).
    """

    def __init__(self, full: Network, ratios: Sequence[float], stats: Mapping[float, Mapping[str, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.full = full
        self.pruning_ratios = check_ratios(ratios)
        self.groups = {g.name: g for g in groups_of(full) if g.prunable}
        if not self.groups:
            reasons = "; ".join(sorted({g.reason for g in groups_of(full) if g.reason})[:2])
            raise AllInOneError(f"{full.spec.name} has no channel group that can be sliced ({reasons}); All-in-One needs a prunable model")
        self.members: dict[float, _Member] = {0.0: _Member(0.0, {n: g.width for n, g in self.groups.items()}, {})}
        previous = self.members[0.0].widths
        for ratio in self.pruning_ratios:
            widths = widths_for_ratio(list(self.groups.values()), ratio)
            if widths == previous:
                raise AllInOneError(
                    f"pruning ratio {ratio:g} gives the same widths as the next smaller ratio on {full.spec.name} "
                    "(its groups round to the same channel counts); drop it or space the ratios further apart"
                )
            previous = widths
            keeps = {n: nested_keep(self.groups[n], w) for n, w in widths.items() if w < self.groups[n].width}
            self.members[ratio] = _Member(ratio, widths, keeps)
        self._skeletons: dict[float, Network] = {}
        self._selections: dict[float, dict[str, list[Selection]]] = {}
        self._param_keys = {k for k, _ in full.named_parameters()}
        self.stats: dict[float, dict[str, torch.Tensor]] = {}
        for ratio in self.pruning_ratios:
            with torch.no_grad():
                fresh = {k: v.detach().clone() for k, v in self._sliced_state(ratio, buffers_from_full=True).items() if k not in self._param_keys}
            given = (stats or {}).get(ratio)
            if given is not None:
                wrong = sorted(k for k in fresh if k not in given or given[k].shape != fresh[k].shape)
                if wrong or set(given) != set(fresh):
                    raise AllInOneError(f"the BatchNorm statistics given for ratio {ratio:g} do not fit its subnetwork "
                                        f"({(wrong or sorted(set(given) ^ set(fresh)))[0]}); they belong to another model or ratio list")
                fresh = {k: given[k].clone().to(fresh[k].dtype) for k in fresh}
            self.stats[ratio] = fresh
        self.active = 0.0
        self._version = 0  # bumped whenever the shared weights may have changed
        self._loaded: dict[float, int] = {}  # ratio -> version its skeleton's tensors were copied at

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: Network, ratios: Sequence[float], criterion: str = "l1", batches=None) -> "AllInOne":
        """Rank every prunable group of ``model`` once by ``criterion``, order its channels, and wrap it.

        ``model`` is untouched; the All-in-One's full network computes the same function with its
        channels permuted (most important first).
        """
        ratios = check_ratios(ratios)
        if not isinstance(model, Network):
            raise AllInOneError(f"All-in-One needs an edgevision Network (create_model / build / load), got {type(model).__name__}")
        groups = [g for g in groups_of(model) if g.prunable]
        if not groups:
            reasons = "; ".join(sorted({g.reason for g in groups_of(model) if g.reason})[:2])
            raise AllInOneError(f"{model.spec.name} has no channel group that can be sliced ({reasons}); All-in-One needs a prunable model")
        scores = importance(model, criterion, groups, batches)
        ordered = shrink(model, {g.name: ranking(g, scores[g.name]) for g in groups}, groups=groups)
        return cls(ordered, ratios)

    # ---- the members ------------------------------------------------------------------------
    @property
    def ratios(self) -> tuple[float, ...]:
        """Every member, widest first: 0 (the unpruned network), then the pruning ratios ascending."""
        return tuple(self.members)

    def widths(self, ratio: float) -> dict[str, int]:
        return dict(self._member(ratio).widths)

    def _member(self, ratio: float) -> _Member:
        if ratio not in self.members:
            raise AllInOneError(f"pruning ratio {ratio:g} is not one of this All-in-One's ratios {', '.join(f'{r:g}' for r in self.ratios)}")
        return self.members[ratio]

    def _skeleton(self, ratio: float) -> Network:
        """The sliced structure of ``ratio`` (an ordinary network; its own tensors are refreshed on demand)."""
        if ratio == 0.0:
            return self.full
        if ratio not in self._skeletons:
            member = self._member(ratio)
            with torch.no_grad():
                self._skeletons[ratio] = shrink(self.full, member.keeps, groups=list(self.groups.values()))
        return self._skeletons[ratio]

    def _selection(self, ratio: float) -> dict[str, list[Selection]]:
        if ratio not in self._selections:
            self._selections[ratio] = tensor_selections(self.full, self.groups, self._member(ratio).keeps)
        return self._selections[ratio]

    def _sliced_state(self, ratio: float, buffers_from_full: bool = False) -> dict[str, torch.Tensor]:
        """Every tensor of ``ratio``'s subnetwork: parameters as differentiable slices of the shared ones, its BN statistics."""
        selection = self._selection(ratio)
        state = {}
        for key, tensor in self.full.state_dict(keep_vars=True).items():
            if key in self._param_keys or buffers_from_full or ratio == 0.0:
                state[key] = select_along(tensor, selection.get(key, ()))
            else:
                state[key] = self.stats[ratio][key]
        return state

    # ---- running ----------------------------------------------------------------------------
    def set_ratio(self, ratio: float) -> "AllInOne":
        """Switch to ``ratio``: later eval-mode calls run its sliced dense subnetwork (cheap when switching back)."""
        self._member(ratio)
        self.active = ratio
        if not self.training:
            self._runtime(ratio)
        return self

    def _runtime(self, ratio: float) -> Network:
        skeleton = self._skeleton(ratio)
        if ratio != 0.0 and self._loaded.get(ratio) != self._version:
            with torch.no_grad():
                skeleton.load_state_dict({k: v.detach() for k, v in self._sliced_state(ratio).items()})
            self._loaded[ratio] = self._version
        return skeleton.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.forward_ratio(x, self.active)
        return self._runtime(self.active)(x)

    def forward_ratio(self, x: torch.Tensor, ratio: float) -> torch.Tensor:
        """``ratio``'s subnetwork on the shared weights (train or eval mode as this module is); differentiable."""
        if torch.is_grad_enabled():
            self._version += 1  # an optimizer step may follow
        if ratio == 0.0:
            return self.full(x)
        skeleton = self._skeleton(ratio).train(self.training)
        return torch.func.functional_call(skeleton, self._sliced_state(ratio), (x,))

    def subnet(self, ratio: float) -> Network:
        """A standalone copy of ``ratio``'s sliced dense network (ordinary spec: counts, saves, ``ev.load`` s, exports)."""
        if ratio == 0.0:
            return copy.deepcopy(self.full).eval()
        return copy.deepcopy(self._runtime(ratio))

    def masked(self, ratio: float) -> Network:
        """The full-width network with every channel ``ratio`` drops zeroed in every tensor that holds it.

        The masked form of the same member: its output equals :meth:`subnet`'s (dropped channels are
        exact zeros through every layer whose zero maps to zero). Slower than the subnet; for checks.
        """
        masked = copy.deepcopy(self.full).eval()
        selection = self._selection(ratio)
        state = {}
        with torch.no_grad():
            sliced = self._sliced_state(ratio)
            for key, tensor in self.full.state_dict().items():
                positions = select_along(torch.arange(tensor.numel()).view(tensor.shape), selection.get(key, ()))
                out = torch.zeros_like(tensor) if tensor.dim() else sliced[key].detach().clone()
                if tensor.dim():
                    out.view(-1)[positions.reshape(-1)] = sliced[key].detach().reshape(-1).to(out.dtype)
                state[key] = out
        masked.load_state_dict(state)
        return masked

    def export_ratio(self, ratio: float, path, input_shape: Sequence[int] | None = None, **options):
        """Export ``ratio``'s subnetwork alone to ONNX (``edgevision.export_onnx``: checks ONNX Runtime parity)."""
        from ..export import export_onnx

        return export_onnx(self.subnet(ratio), path, input_shape, **options)

    # ---- training ---------------------------------------------------------------------------
    def sandwich(self, sample: int | None = None, generator: torch.Generator | None = None) -> list[float]:
        """The ratios one step trains, widest first: all, or widest + narrowest + ``sample`` random others."""
        ratios = list(self.ratios)
        if sample is None or len(ratios) <= 2 + sample:
            return ratios
        middle = ratios[1:-1]
        picks = torch.randperm(len(middle), generator=generator)[:sample].tolist()
        return [ratios[0]] + [middle[i] for i in sorted(picks)] + [ratios[-1]]

    def train_step(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        inplace_distill: bool = True,
        temperature: float = 1.0,
        teacher: nn.Module | None = None,
        sample: int | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[float, float]:
        """One sandwich step over the ratios from the one weight set; returns each ratio's loss.

        The widest ratio learns from the labels (and, with ``teacher``, also from the teacher's soft
        targets); with ``inplace_distill`` every narrower ratio learns from the widest ratio's detached
        logits (KL at ``temperature``), otherwise from the labels. Gradients of all ratios are
        accumulated on the shared weights, then one optimizer step.
        """
        from ..training.distill import kd_loss

        self.train()
        optimizer.zero_grad(set_to_none=True)
        targets = None
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher.eval()(images)
        losses = {}
        for index, ratio in enumerate(self.sandwich(sample, generator)):
            logits = self.forward_ratio(images, ratio)
            if index == 0:
                loss = F.cross_entropy(logits, labels)
                if teacher_logits is not None:
                    loss = 0.5 * loss + 0.5 * kd_loss(logits, teacher_logits, 4.0)
                targets = logits.detach()
            elif inplace_distill:
                loss = kd_loss(logits, targets, temperature)
            else:
                loss = F.cross_entropy(logits, labels)
            loss.backward()
            losses[ratio] = float(loss.detach())
        optimizer.step()
        self._version += 1
        return losses

    @torch.no_grad()
    def recalibrate(self, batches: Iterable[torch.Tensor]) -> None:
        """Recompute every ratio's BatchNorm statistics as exact averages over ``batches`` (images only).

        After training, the running averages lag the final weights; each ratio needs its own statistics.
        """
        images = list(batches)
        if not images:
            return
        self._version += 1
        for ratio in self.ratios:
            skeleton = self._skeleton(ratio)
            norms = [m for m in skeleton.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.momentum = None  # cumulative average over the calibration batches
            if ratio == 0.0:
                for m in norms:
                    m.reset_running_stats()
            else:
                for key, tensor in self.stats[ratio].items():
                    tensor.fill_(1.0 if key.endswith("running_var") else 0.0)
            was = self.training
            self.train()
            for batch in images:
                self.forward_ratio(batch, ratio)
            self.train(was)
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
        self._loaded.clear()

    # ---- storage ----------------------------------------------------------------------------
    def stats_tensors(self) -> dict[str, torch.Tensor]:
        """The per-ratio BatchNorm statistics as flat named tensors (``ratio=0.5/<state key>``)."""
        return {f"ratio={ratio:g}/{key}": t.detach().contiguous().clone() for ratio, stats in self.stats.items() for key, t in stats.items()}

    def describe(self) -> dict:
        """The JSON a checkpoint of this All-in-One carries: ratios and per-ratio widths of every prunable group."""
        return {"ratios": list(self.pruning_ratios), "widths": {f"{r:g}": m.widths for r, m in self.members.items()}}

    def save(self, folder, metadata: dict | None = None) -> None:
        """``folder/model.safetensors`` (the one weight set: the full network, ``ev.load``-able) + ``folder/ratio_stats.safetensors``."""
        from pathlib import Path

        from safetensors.torch import save_file

        from ..atomic import atomic_path
        from ..checkpoint import save

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "ratio_stats.safetensors") as temporary:
            save_file(self.stats_tensors(), str(temporary))
        save(self.full, out / "model.safetensors", {**(metadata or {}), "allinone": self.describe()})

    @classmethod
    def load(cls, folder) -> "AllInOne":
        """The All-in-One :meth:`save` wrote (its ratio statistics included)."""
        from pathlib import Path

        from safetensors.torch import load_file

        from ..checkpoint import CheckpointError, load, read_metadata

        folder = Path(folder)
        info = read_metadata(folder / "model.safetensors").get("allinone")
        if not isinstance(info, dict) or not isinstance(info.get("ratios"), list):
            raise CheckpointError(f"{str(folder / 'model.safetensors')!r} is not an All-in-One checkpoint (no 'allinone' ratios in its metadata)")
        full = load(folder / "model.safetensors").train()
        flat = load_file(str(folder / "ratio_stats.safetensors"))
        stats: dict[float, dict[str, torch.Tensor]] = {}
        for name, tensor in flat.items():
            head, key = name.split("/", 1)
            stats.setdefault(float(head[len("ratio="):]), {})[key] = tensor
        missing = [r for r in check_ratios(info["ratios"]) if r not in stats]
        if missing:
            raise CheckpointError(f"{str(folder / 'ratio_stats.safetensors')!r} lacks the statistics of ratio {missing[0]:g}; the two files are mismatched")
        try:
            return cls(full, info["ratios"], stats).eval()
        except AllInOneError as error:
            raise CheckpointError(f"{str(folder)!r}: {error}") from None


def train_allinone(
    allinone: AllInOne,
    data,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    resolution: int = 32,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    inplace_distill: bool = True,
    sample: int | None = None,
    start_epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch=None,
) -> torch.optim.Optimizer:
    """Sandwich-train ``allinone`` on ``data`` (``edgevision.datasets`` splits) for ``epochs`` epochs.

    SGD (Nesterov momentum 0.9, weight decay 4e-5) with cosine decay from ``lr`` over the whole run;
    ``start_epoch`` and ``optimizer`` continue an interrupted run; ``on_epoch(epoch, optimizer, mean_loss)``
    is called after each finished epoch (1-based) so a caller can save it. Returns the optimizer.
    """
    from ..datasets import BatchPreprocessor, make_loader

    preprocess = BatchPreprocessor(resolution, data.in_channels, data.mean, data.std)
    if optimizer is None:
        optimizer = torch.optim.SGD(allinone.full.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    loader = make_loader(data.train, batch_size, train=True, seed=seed, workers=0)
    per_epoch = len(loader) if steps_per_epoch is None else min(len(loader), steps_per_epoch)
    total = max(1, per_epoch * epochs)
    generator = torch.Generator()
    for epoch in range(start_epoch, epochs):
        loader.sampler.set_epoch(epoch)
        generator.manual_seed(seed * 1000 + epoch)  # the same ratio draws after a resume
        losses = []
        for step, (images, labels) in enumerate(loader):
            if step >= per_epoch:
                break
            for group in optimizer.param_groups:  # cosine decay over the whole run
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * (epoch * per_epoch + step) / total))
            step_losses = allinone.train_step(preprocess(images, train=True), labels, optimizer,
                                              inplace_distill=inplace_distill, sample=sample, generator=generator)
            losses.append(sum(step_losses.values()) / len(step_losses))
        if on_epoch is not None:
            on_epoch(epoch + 1, optimizer, sum(losses) / max(1, len(losses)))
    return optimizer


def calibration_batches(data, resolution: int = 32, count: int = 8, batch_size: int = 64, seed: int = 1) -> list[torch.Tensor]:
    """``count`` preprocessed training batches (images only) for :meth:`AllInOne.recalibrate`."""
    from ..datasets import BatchPreprocessor, make_loader

    preprocess = BatchPreprocessor(resolution, data.in_channels, data.mean, data.std)
    batches = []
    for images, _ in make_loader(data.train, batch_size, train=True, seed=seed, workers=0):
        batches.append(preprocess(images, train=False))
        if len(batches) == count:
            break
    return batches
