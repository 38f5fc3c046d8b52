"""Width surgery: a built network + new widths for some channel groups -> the smaller network.

``shrink(model, widths)`` keeps, in every group named in ``widths``, the most important channels
(or the exact indices given), writes the pruned network as an ordinary spec (blocks whose widths
changed are wrapped in :class:`~edgevision.prune.spec.FixedWidthSpec`), builds it and moves the
kept channels' weights across: every tensor of the new network is the source tensor indexed by the
kept channels along the dimensions :mod:`edgevision.prune.groups` mapped, nothing else. Keeping all
channels is the identity; keeping a permutation of them gives the same function (the test that the
maps are right). Train form and deploy (re-parameterized) form are both handled: a deploy-form
source gives a deploy-form result.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..builder import Network, build
from ..reparam import is_deploy_form, reparameterize
from ..resolve import resolve
from .groups import INNER, ChannelGroup, TensorDim, channel_groups, tiled, with_inner
from .spec import replace_blocks, with_widths

__all__ = ["PruneError", "shrink", "groups_of", "select_keep", "widths_for_ratio"]


class PruneError(ValueError):
    """A width request the network cannot take; the message names the group and what it allows."""


def groups_of(model: Network) -> list[ChannelGroup]:
    """The channel groups of a built edgevision network (train or deploy form)."""
    if not isinstance(model, Network):
        raise PruneError(f"pruning needs an edgevision Network (create_model / build / load), got {type(model).__name__}")
    return channel_groups(model.resolved, deploy=is_deploy_form(model))


def _round_to_step(width: float, step: int) -> int:
    return max(step, int(round(width / step)) * step)


def widths_for_ratio(groups: Sequence[ChannelGroup], ratio: float) -> dict[str, int]:
    """Remove ``ratio`` of the channels of every prunable group (rounded to the group's step)."""
    if not 0.0 <= ratio < 1.0:
        raise PruneError(f"pruning ratio must be in [0, 1), got {ratio}")
    return {g.name: _round_to_step(g.width * (1.0 - ratio), g.multiple) for g in groups if g.prunable}



def select_keep(scores: torch.Tensor, width: int, step: int = 1) -> torch.Tensor:
    """Indices of the ``width`` highest scores, ascending; with ``step`` > 1 the same count per group."""
    total = scores.numel()
    if step == 1:
        return torch.sort(torch.topk(scores, width).indices).values
    per_group, size = width // step, total // step
    picks = [torch.topk(chunk, per_group).indices + g * size for g, chunk in enumerate(scores.view(step, size))]
    return torch.sort(torch.cat(picks)).values


def _select(tensor: torch.Tensor, tensor_dim: TensorDim, keep: torch.Tensor, total: int) -> torch.Tensor:
    if tensor_dim.segment >= 0:  # one part of a segmented slot: the kept units, local to the part
        part = keep.numel() // tensor_dim.segments
        local = keep[tensor_dim.segment * part : (tensor_dim.segment + 1) * part] - tensor_dim.segment * (total // tensor_dim.segments)
        return tensor.index_select(tensor_dim.dim, local)
    if tensor_dim.repeat > 1:  # channel c -> indices [c * r, (c + 1) * r)
        r = tensor_dim.repeat
        return tensor.index_select(tensor_dim.dim, (keep[:, None] * r + torch.arange(r)).reshape(-1))
    if tensor_dim.groups == 1 or tensor_dim.dim == 0:
        return tensor.index_select(tensor_dim.dim, keep)
    # grouped conv input (C_out, C_in / g, k, k): output group j reads input group j, kept per group
    groups, size = tensor_dim.groups, total // tensor_dim.groups
    rows = tensor.shape[0] // groups
    parts = []
    for g in range(groups):
        local = keep[(keep >= g * size) & (keep < (g + 1) * size)] - g * size
        parts.append(tensor[g * rows : (g + 1) * rows].index_select(1, local))
    return torch.cat(parts, 0)


def shrink(
    model: Network,
    widths: Mapping[str, int | Sequence[int] | torch.Tensor],
    scores: Mapping[str, torch.Tensor] | None = None,
    groups: Sequence[ChannelGroup] | None = None,
) -> Network:
    """The network with each named group cut to a width (an int) or to exact channel indices.

    ``widths``: group name (see :func:`groups_of`) -> new width, or -> the channel indices to keep
    (any order: a permutation of all channels reorders them). ``scores``: group name -> one score per
    channel (``edgevision.prune.importance``); without it an int width keeps the channels of largest
    L1 norm. ``groups``: the model's groups if already computed (:func:`groups_of`, or
    ``channel_groups(..., verify=False)`` for a structure-only check on the meta device). Returns a new network (same form as ``model``, same training/eval mode); ``model`` is untouched.
    """
    from .importance import importance

    groups = {g.name: g for g in (groups if groups is not None else groups_of(model))}
    keeps: dict[str, torch.Tensor] = {}
    missing = [name for name in widths if name not in groups]
    if missing:
        raise PruneError(f"no channel group {missing[0]!r} in {model.spec.name}; groups are named like {next(iter(groups))!r}")
    need_scores = [n for n, w in widths.items() if isinstance(w, int) and n not in (scores or {})]
    computed = importance(model, "l1", [groups[n] for n in need_scores]) if need_scores else {}
    for name, request in widths.items():
        group = groups[name]
        if not group.prunable:
            raise PruneError(f"channel group {name} cannot be pruned: {group.reason}")
        if isinstance(request, int):
            multiple = group.multiple
            if request < 1 or request > group.width or request % multiple:
                raise PruneError(
                    f"channel group {name} has {group.width} channels in {multiple} equal group(s) / part(s); "
                    f"a width must be a multiple of {multiple} in [{multiple}, {group.width}], got {request}"
                )
            chosen = (scores or computed)[name]
            if group.tile > 1:  # a segmented group: score each unit by all its parts, keep the same units in each part
                units = select_keep(chosen.view(group.tile, -1).sum(0), request // group.tile)
                keep = tiled(units, group.width, group.tile)
            else:
                keep = select_keep(chosen, request, group.step)
        else:
            keep = torch.as_tensor(list(request) if not isinstance(request, torch.Tensor) else request, dtype=torch.long)
            if keep.numel() < 1 or len(set(keep.tolist())) != keep.numel() or int(keep.min()) < 0 or int(keep.max()) >= group.width:
                raise PruneError(f"channel group {name}: keep indices must be distinct and in [0, {group.width})")
            if group.tile > 1 and (keep.numel() % group.tile or not torch.equal(keep, tiled(keep[: keep.numel() // group.tile], group.width, group.tile))):
                raise PruneError(f"channel group {name} is {group.tile} concatenated parts of {group.width // group.tile}: "
                                 f"keep the same units in each part, [K, K + {group.width // group.tile}, ...]")
            if group.step > 1:
                size = group.width // group.step
                counts = torch.bincount(keep // size, minlength=group.step)
                if bool((counts != counts[0]).any()) or bool(((keep // size) != torch.sort(keep // size).values).any()):
                    raise PruneError(f"channel group {name}: keep the same number of channels in each of its {group.step} groups, in group order")
        keeps[name] = keep
    return _apply(model, groups, keeps)


_SLOT_FIELD = {"out": 0, "mid": 1, "se": 2}


def _apply(model: Network, groups: Mapping[str, ChannelGroup], keeps: Mapping[str, torch.Tensor]) -> Network:
    resolved = model.resolved
    targets = {i: [b.out_channels, b.mid_channels, b.se_channels] for i, b in enumerate(resolved.blocks)}
    inner: dict[int, dict[str, int]] = {}  # block index -> {inner width name: new width}
    for name, keep in keeps.items():
        for i, slot in groups[name].members:
            if slot in _SLOT_FIELD:
                targets[i][_SLOT_FIELD[slot]] = int(keep.numel())
            elif slot.startswith(INNER):
                inner.setdefault(i, {})[slot[len(INNER):]] = int(keep.numel())
    if inner:  # literal widths inside a block spec: rewrite them there (out/mid/se do not move)
        resolved = resolve(
            replace_blocks(resolved, {i: with_inner(resolved.blocks[i].spec, w) for i, w in inner.items()}),
            input_size=resolved.input_size,
        )
    spec = with_widths(resolved, {i: tuple(t) for i, t in targets.items()})
    deploy = is_deploy_form(model)
    try:
        pruned_resolved = resolve(spec, input_size=resolved.input_size)
    except ValueError as error:
        raise PruneError(f"the pruned widths do not fit {model.spec.name}: {error}") from None

    selections = tensor_selections(model, groups, keeps)
    state = {}
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            state[key] = select_along(tensor, selections.get(key, ())).clone()
    pruned = _build_with(pruned_resolved, deploy, state, model.spec.name)
    pruned.train(model.training)
    return pruned.to(next(model.parameters()).device)


Selection = tuple[TensorDim, torch.Tensor, int]  # (tensor dim, kept channel indices, the group's full width)


def tensor_selections(model: Network, groups: Mapping[str, ChannelGroup], keeps: Mapping[str, torch.Tensor]) -> dict[str, list[Selection]]:
    """State key of ``model`` -> the selections that cut it to the kept channels (keys not listed stay whole)."""
    selections: dict[str, list[Selection]] = {}
    for name, keep in keeps.items():
        group = groups[name]
        for i, tensor_dim in group.dims:
            selections.setdefault(f"{model.resolved.blocks[i].path}.{tensor_dim.key}", []).append((tensor_dim, keep, group.width))
    return selections


def select_along(tensor: torch.Tensor, selections: Sequence[Selection]) -> torch.Tensor:
    """``tensor`` indexed by every selection in turn (differentiable: index_select carries gradients back)."""
    for tensor_dim, keep, total in selections:
        tensor = _select(tensor, tensor_dim, keep, total)
    return tensor


def _build_with(resolved, deploy: bool, state: dict[str, torch.Tensor], name: str) -> Network:
    """Build on the meta device and take ``state`` as the tensors (no random init of weights about to be replaced)."""
    for device in ("meta", "cpu"):
        with torch.device(device):
            module = build(resolved)
        if deploy:
            module = reparameterize(module, inplace=True)
        try:
            module.load_state_dict(state, strict=True, assign=device == "meta")
        except RuntimeError as error:  # a map missed a tensor: a bug in a block's width declaration, say which
            raise PruneError(f"width surgery on {name} left tensors of the wrong shape: {str(error).splitlines()[1:3]}") from None
        if not any(t.is_meta for t in list(module.parameters()) + list(module.buffers())):
            return module  # every tensor came from the state (no non-persistent buffer left on meta)
        if any(t.is_meta for t in state.values()):
            return module  # a meta-device source (a structure-only check): the result stays on meta too
    return module
