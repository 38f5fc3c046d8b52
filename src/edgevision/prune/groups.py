"""Which tensor dimensions each width of each block maps to, and which widths are tied together.

The width-surgery protocol. A resolved block has up to four widths ("slots"): ``in``, ``out``,
``mid`` (expanded / bottleneck / branch width) and ``se`` (squeeze-excite width). A block *spec*
whose layers hold literal widths of their own (an Inception branch's 1x1 reduce, an Xception
block's separable convs) declares them with ``inner_widths() -> {name: width}`` and rewrites them
with ``with_inner_widths({name: width}) -> spec``; each becomes an extra slot ``"inner.<name>"``,
found, coupled (to nothing outside the block) and verified exactly like the four. A block module
may declare its own map with a ``width_dims()`` method returning ``{slot: ((state key, dim), ...)}``;
every other block is read by one generic walker that needs no per-kind code:

1. **Discover** (shape difference, on the meta device): build the block once as resolved and once
   with one slot doubled; every state tensor dimension whose size goes from ``w`` to ``2w`` holds
   exactly that slot's channels. A dimension that grows by another amount (a concatenation with a
   fixed part, a split in halves, heads x head width), a tensor that appears or disappears, or a
   builder that refuses the width makes the slot not prunable, with the reason recorded.
   A grouped convolution's input dimension (``C/g`` per group) is recognised and kept per group.
2. **Couple**: a block's ``out`` is the next block's ``in``; a block with an identity shortcut
   (a residual add, a pooling or norm layer that passes its width through) ties its ``in`` to its
   ``out``; slots that can only change together (an inverted residual without expansion, whose
   ``mid`` is its ``in``) are tied. The tied slots of a network form :class:`ChannelGroup` s, the
   unit a pruner chooses a width for: "blocks joined by a residual share a width".
3. **Verify** (numerically, optional): permuting a group's channels consistently in every mapped
   dimension of a block (and in its input / output) must leave the block's function unchanged.
   This catches what shapes cannot see (a channel shuffle, a strided split, channel attention that
   groups channels into heads), which then stay unpruned instead of being pruned wrongly.

Torch-Pruning (Fang et al., "DepGraph", CVPR 2023) finds the same couplings by tracing the graph;
reading them from the spec and checking them per block is what lets shuffle units, concatenations
and re-parameterizable blocks be handled without graph special cases.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..blocks.base import ResolvedBlock
from ..resolve import ResolvedNetwork

__all__ = [
    "SLOTS",
    "TensorDim",
    "SlotMap",
    "BlockMap",
    "ChannelGroup",
    "block_map",
    "channel_groups",
    "tiled",
    "has_identity_shortcut",
]

SLOTS = ("in", "out", "mid", "se")
INNER = "inner."  # prefix of a spec-declared inner width slot: "inner.branches.1.layers.0"


@dataclass(frozen=True)
class TensorDim:
    """One dimension of one state tensor (key local to the block) that holds a slot's channels."""

    key: str
    dim: int
    groups: int = 1  # > 1: a grouped conv's input dimension, C/groups channels per group
    repeat: int = 1  # > 1: channel c owns indices [c * repeat, (c + 1) * repeat) (a flatten before a Linear)
    # > 1: the slot's W channels are ``segments`` concatenated parts pruned alike (a Ghost module's
    # [primary, cheap]: unit u of W / segments owns channels u + k * W / segments of every part k)
    segments: int = 1
    segment: int = -1  # with segments > 1: this dimension holds only part ``segment`` (W / segments wide); -1: all W


@dataclass(frozen=True)
class SlotMap:
    slots: tuple[str, ...]  # the slots that change together (usually one)
    dims: tuple[TensorDim, ...]
    prunable: bool
    reason: str = ""


@dataclass(frozen=True)
class BlockMap:
    identity: bool  # in and out are one width (identity shortcut or pass-through)
    maps: tuple[SlotMap, ...]

    def of(self, slot: str) -> SlotMap | None:
        return next((m for m in self.maps if slot in m.slots), None)


@dataclass(frozen=True)
class ChannelGroup:
    """Slots of a network that must keep one width: the unit a pruner chooses a width for."""

    name: str  # "<path of the first member>.<slot>", e.g. "stages.1.0.out"
    members: tuple[tuple[int, str], ...]  # (index into resolved.blocks, slot)
    width: int
    step: int = 1  # widths must stay a multiple of this (grouped convolutions)
    tile: int = 1  # > 1: a segmented map (TensorDim.segments): the same units are kept in each of ``tile`` parts
    prunable: bool = True
    reason: str = ""
    dims: tuple[tuple[int, TensorDim], ...] = field(default=(), repr=False)  # (block index, tensor dim)

    @property
    def multiple(self) -> int:
        """Every width of this group is a multiple of this (equal groups x equal concatenated parts)."""
        return self.step * self.tile


# ---- one block ------------------------------------------------------------------------------
def _inner_spec(block: ResolvedBlock):
    """The spec that declares inner widths (under a fixed-width wrapper), or None."""
    spec = getattr(block.spec, "block", block.spec)
    return spec if callable(getattr(spec, "inner_widths", None)) else None


def inner_slots(block: ResolvedBlock) -> tuple[str, ...]:
    spec = _inner_spec(block)
    return tuple(INNER + name for name in spec.inner_widths()) if spec is not None else ()


def slot_order(slot: str) -> int:
    return SLOTS.index(slot) if slot in SLOTS else len(SLOTS)


def with_inner(block_spec, widths: dict[str, int]):
    """``block_spec`` (possibly fixed-width wrapped) with inner widths ``{name: width}`` rewritten."""
    if not widths:
        return block_spec
    inner = getattr(block_spec, "block", None)
    if inner is not None and callable(getattr(inner, "with_inner_widths", None)):
        return dataclasses.replace(block_spec, block=inner.with_inner_widths(widths))
    return block_spec.with_inner_widths(widths)


def _width(block: ResolvedBlock, slot: str) -> int | None:
    if slot.startswith(INNER):
        spec = _inner_spec(block)
        return None if spec is None else spec.inner_widths().get(slot[len(INNER):])
    return {"in": block.in_channels, "out": block.out_channels, "mid": block.mid_channels, "se": block.se_channels}[slot]


def _scaled(block: ResolvedBlock, slots: tuple[str, ...], factor: int = 2) -> ResolvedBlock:
    names = {"in": "in_channels", "out": "out_channels", "mid": "mid_channels", "se": "se_channels"}
    inner = {s[len(INNER):]: _width(block, s) * factor for s in slots if s.startswith(INNER)}
    changes = {names[s]: _width(block, s) * factor for s in slots if s in names}
    if inner:
        changes["spec"] = with_inner(block.spec, inner)
    return dataclasses.replace(block, **changes)


def _build(block: ResolvedBlock, device: str = "meta", deploy: bool = False) -> nn.Module:
    with torch.device(device):
        module = block.spec.build(block)
    if deploy:
        from ..reparam import reparameterize

        module = reparameterize(module, inplace=True)
    return module


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _conv_groups(module: nn.Module) -> dict[str, tuple[int, int]]:
    """weight key -> (groups, in_channels) for every grouped (not depthwise-by-width) convolution."""
    out = {}
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.conv._ConvNd) and sub.groups > 1:
            out[f"{name}.weight" if name else "weight"] = (sub.groups, sub.in_channels)
    return out


def _small(block: ResolvedBlock, side: int = 8) -> ResolvedBlock:
    """The block on a small input (channel semantics do not depend on H x W; blocks tied to one size refuse it)."""
    size = (min(block.input_size[0], side), min(block.input_size[1], side))
    return dataclasses.replace(block, input_size=size, output_size=block.spec.output_size(size))


def _run_small(block: ResolvedBlock, run):
    """``run(block)`` on the small-input block, or on the block itself where the small one fails."""
    small = _small(block)
    if small != block:
        try:
            return run(small)
        except Exception:
            pass
    return run(block)


def _canonical(block: ResolvedBlock) -> ResolvedBlock:
    return dataclasses.replace(block, section="stages", stage_index=0, block_index=0)


def has_identity_shortcut(block: ResolvedBlock) -> bool:
    """True when the block's input width must equal its output width (identity shortcut or pass-through).

    One small function the rest of ``prune`` calls, so it can later read a block's own declaration
    (``ResolvedBlock.identity_shortcut``) instead of probing: a block that keeps its input width, or
    whose module changes structure, refuses to build, or fails to run when its output width alone
    differs from its input, adds (or passes) its input to its output.
    """
    return _identity(_canonical(block))


@functools.lru_cache(maxsize=4096)
def _identity(block: ResolvedBlock) -> bool:
    spec = block.spec
    inner = getattr(spec, "block", spec)
    if getattr(inner, "preserves_channels", False):
        return True
    if block.in_channels != block.out_channels:
        return False
    try:
        reference = _build(block)
        other = _build(_scaled(block, ("out",)))
    except Exception:
        return True
    if set(_shapes(reference)) != set(_shapes(other)) or getattr(reference, "use_residual", False):
        return True
    def run(candidate: ResolvedBlock) -> None:  # on the CPU: the meta device's first forward imports for seconds
        with torch.no_grad():
            _build(_scaled(candidate, ("out",)), device="cpu").eval()(torch.zeros(1, candidate.in_channels, *candidate.input_size))

    try:
        _run_small(block, run)
    except Exception:
        return True
    return False


def _inner_is_internal(block: ResolvedBlock, slots: tuple[str, ...]) -> bool:
    """An inner width must leave the block's out/mid/se as they are (they are other slots)."""
    from ..blocks.base import ChannelScale

    spec, grown = _inner_spec(block), getattr(_scaled(block, slots).spec, "block", _scaled(block, slots).spec)
    unit = ChannelScale(1.0, 1)
    try:
        return spec.widths(block.in_channels, unit) == grown.widths(block.in_channels, unit)
    except ValueError:
        return False


def _diff(block: ResolvedBlock, slots: tuple[str, ...], deploy: bool = False) -> SlotMap:
    width = _width(block, slots[0])
    try:
        reference, grown = _build(block, deploy=deploy), _build(_scaled(block, slots), deploy=deploy)
    except Exception as error:
        return SlotMap(slots, (), False, f"the block does not build with another {'/'.join(slots)} width ({type(error).__name__})")
    if any(slot.startswith(INNER) for slot in slots) and not _inner_is_internal(block, slots):
        return SlotMap(slots, (), False, f"the inner width {'/'.join(slots)} changes the block's own widths (declare only internal ones)")
    before, after = _shapes(reference), _shapes(grown)
    if set(before) != set(after):
        return SlotMap(slots, (), False, f"changing the {'/'.join(slots)} width changes the block's structure")
    grouped = _conv_groups(reference)
    grouped_after = _conv_groups(grown)
    dims: list[TensorDim] = []
    for key, shape in before.items():
        new = after[key]
        for dim, (old_size, new_size) in enumerate(zip(shape, new)):
            if old_size == new_size:
                continue
            groups, in_channels = grouped.get(key, (1, 0))
            if dim == 0 and groups > 1 and groups != in_channels and old_size == width and new_size == 2 * width:
                dims.append(TensorDim(key, dim, groups))  # a grouped conv's outputs: kept per group
                continue
            if old_size == width and new_size == 2 * width:
                dims.append(TensorDim(key, dim))
                continue
            if new_size == 2 * old_size and old_size % width == 0 and old_size > width and not groups > 1:
                # flatten (B, C, h, w) -> (B, C*h*w) before a Linear (VGG's head): each channel owns h*w
                # consecutive inputs; the permutation check below rejects any other layout
                dims.append(TensorDim(key, dim, repeat=old_size // width))
                continue
            if dim == 1 and groups > 1 and in_channels == width and grouped_after.get(key, (0, 0))[0] == groups:
                dims.append(TensorDim(key, dim, groups))  # (C_out, C_in / g, k, k): kept per group
                continue
            return SlotMap(slots, (), False, f"{key} dim {dim} grows {old_size} -> {new_size} with the {'/'.join(slots)} width {width}: not one channel per index")
    for key, (groups, in_channels) in grouped.items():  # a grouped conv whose group count follows the width
        if grouped_after.get(key, (groups, 0))[0] != groups and groups != in_channels:
            return SlotMap(slots, (), False, f"{key}: the group count changes with the width (fixed group width)")
    if dims:
        mismatch = _builder_follows(block, _scaled(block, slots), slots, deploy)
        if mismatch:
            return SlotMap(slots, (), False, mismatch)
    if not dims:
        if slots == ("in", "out") and not before:  # a parameter-free pass-through (pooling): nothing to slice
            return SlotMap(slots, (), True)
        return SlotMap(slots, (), False, f"no tensor follows the {'/'.join(slots)} width (the block derives it itself)")
    return SlotMap(slots, tuple(dims), True)


def _meta_out_width(block: ResolvedBlock, deploy: bool = False) -> int:
    """The channel count the built block really outputs (a meta-device forward: shapes only, no arithmetic)."""

    def run(candidate: ResolvedBlock) -> int:
        module = _build(candidate, deploy=deploy).eval()
        with torch.no_grad():
            return module(torch.empty(1, candidate.in_channels, *candidate.input_size, device="meta")).shape[1]

    return _run_small(block, run)


def _builder_follows(block: ResolvedBlock, grown: ResolvedBlock, slots: tuple[str, ...], deploy: bool) -> str:
    """Why the module built for ``grown`` does not run as its widths say ("" when it does).

    The shape difference only sees tensors. A builder that sizes one layer from a width but the
    layers around it from something else (an Inception-ResNet module's up-projection reads ``mid``,
    its branches their own literal widths) or a block that concatenates its input to its output
    (a pooling branch, Inception v4's Mixed_3a; a DenseNet layer) would pass it and then feed the
    next block other channels than its spec says (torch's "Invalid channel dimensions" at the
    next conv). A block that cannot run alone on a 4-D input (a token block) is left to the
    network-level checks.
    """
    try:
        expected = _meta_out_width(block, deploy)
    except Exception:
        return ""
    if expected != block.out_channels:
        return ""  # the block's output is not (B, out, H, W) in the first place (a flattening head)
    try:
        actual = _meta_out_width(grown, deploy)
    except Exception as error:
        return f"the block does not run with another {'/'.join(slots)} width ({type(error).__name__}: its layers size it from other widths)"
    if actual != grown.out_channels:
        if "in" in slots and "out" not in slots:
            return ("the output width follows the input width (the input is concatenated to the output, e.g. a pooling branch): "
                    "in and out would need one segmented map")
        return f"with another {'/'.join(slots)} width the block outputs {actual} channels instead of {grown.out_channels}"
    return ""


@functools.lru_cache(maxsize=4096)
def _block_map(block: ResolvedBlock, deploy: bool = False, verify: bool = True) -> BlockMap:
    identity = _identity(block)
    present = [s for s in SLOTS if _width(block, s) is not None]
    inner = list(inner_slots(block))
    maps: list[SlotMap] = []
    done: set[str] = set()
    first = [("in", "out")] if identity and "in" in present else []
    for slots in first + [(s,) for s in present + inner]:
        if set(slots) & done:
            continue
        found = _diff(block, slots, deploy)
        if not found.prunable and len(slots) == 1 and slots[0] in SLOTS:  # tied slots change together (mid == in, ...)
            for partner in present:
                if partner in done or partner == slots[0] or _width(block, partner) != _width(block, slots[0]):
                    continue
                joint = _diff(block, tuple(sorted((slots[0], partner), key=SLOTS.index)), deploy)
                if joint.prunable:
                    found = joint
                    break
        maps.append(found)
        done |= set(found.slots)
    if verify:
        maps = [_verified(block, m, deploy) if m.prunable and m.dims else m for m in maps]
    declared = _declared(block, deploy)
    if declared:  # the module's own map replaces what discovery found for those slots (and what they were tied to)
        mapped = {slot for slots in declared for slot in (slots if isinstance(slots, tuple) else (slots,))}
        # a discovered map that tied a declared slot to another one: the other keeps no map of its own
        orphans = [tuple(s for s in m.slots if s not in mapped) for m in maps if set(m.slots) & mapped]
        maps = [m for m in maps if not set(m.slots) & mapped] + [
            SlotMap(slots if isinstance(slots, tuple) else (slots,),
                    tuple(_declared_dim(d) for d in dims), True)
            for slots, dims in declared.items()
        ] + [SlotMap(o, (), False, "discovery tied it to a width the block declares itself") for o in orphans if o]
        if verify:
            maps = [_verified(block, m, deploy) if m.prunable and m.dims and set(m.slots) & mapped else m for m in maps]
    return BlockMap(identity, tuple(maps))


def tiled(units: torch.Tensor, width: int, tile: int) -> torch.Tensor:
    """Channel indices (of ``width``) of the kept ``units`` in each of ``tile`` equal parts: [K, K + W/t, ...]."""
    return torch.cat([units + part * (width // tile) for part in range(tile)]) if tile > 1 else units


def _permutation(width: int, groups: int, generator: torch.Generator) -> torch.Tensor:
    size = width // groups
    return torch.cat([torch.randperm(size, generator=generator) + g * size for g in range(groups)])


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Random weights and BatchNorm statistics, so that no channel is interchangeable with another."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                fill = torch.rand(tensor.shape, generator=generator) + 0.5 if name.endswith("running_var") else torch.randn(tensor.shape, generator=generator) * 0.5
                tensor.copy_(fill)


def _random_module(block: ResolvedBlock, generator: torch.Generator) -> nn.Module:
    """The block on the CPU with random state, without paying for its initializer (built on meta)."""
    module = _build(block)
    persistent = len(module.state_dict())
    if persistent == sum(1 for _ in module.parameters()) + sum(1 for _ in module.buffers()):
        module = module.to_empty(device="cpu")
    else:  # a non-persistent buffer (an attention index table) must come from the constructor
        module = _build(block, device="cpu")
    _randomize(module, generator)
    return module


def _verified(block: ResolvedBlock, slot_map: SlotMap, deploy: bool) -> SlotMap:
    """``slot_map`` if permuting its channels everywhere it maps them leaves the block's function unchanged.

    What a shape difference cannot see (a channel shuffle, a strided split, channels grouped into
    attention heads) breaks this; the slot then stays unpruned, with the reason.
    """
    from .surgery import _select

    generator = torch.Generator().manual_seed(0)

    def run(candidate: ResolvedBlock):
        module = _random_module(candidate, generator)
        if deploy:
            from ..reparam import reparameterize

            module = reparameterize(module, inplace=True)
        module.eval()
        x = torch.randn(1, candidate.in_channels, *candidate.input_size, generator=generator)
        with torch.no_grad():
            return module, x, module(x)

    try:
        module, x, reference = _run_small(block, run)
    except Exception:
        return slot_map  # the block cannot run alone on a 4-D input: the network-level test covers it
    width = _width(block, slot_map.slots[0])
    step = math.lcm(*(d.groups for d in slot_map.dims))
    tile = math.lcm(*(d.segments for d in slot_map.dims))
    if width % step or width % tile:
        return dataclasses.replace(slot_map, prunable=False, reason=f"width {width} is not a multiple of its {max(step, tile)} groups / parts")
    perm = tiled(_permutation(width // tile, step, generator), width, tile)
    state = {}
    for key, tensor in module.state_dict().items():
        for tensor_dim in slot_map.dims:
            if tensor_dim.key == key:
                tensor = _select(tensor, tensor_dim, perm, width)
        state[key] = tensor
    module.load_state_dict(state)
    if "in" in slot_map.slots:
        x = x[:, perm]
    if "out" in slot_map.slots:
        reference = reference[:, perm]
    with torch.no_grad():
        permuted = module(x)
    scale = float(reference.abs().max()) + 1e-6
    if permuted.shape != reference.shape or float((permuted - reference).abs().max()) > 1e-4 * scale:
        return dataclasses.replace(
            slot_map, prunable=False,
            reason=f"permuting the {'/'.join(slot_map.slots)} channels changes the block's output (a shuffle, split or head layout the tensors do not show)",
        )
    return slot_map


def _declared(block: ResolvedBlock, deploy: bool = False) -> dict | None:
    """A block module's own ``width_dims()`` declaration, where it has one (the protocol override)."""
    try:
        module = _build(block, deploy=deploy)
    except Exception:
        return None
    declare = getattr(module, "width_dims", None)
    return declare() if callable(declare) else None


def _declared_dim(entry) -> TensorDim:
    """A ``width_dims()`` entry: a TensorDim, (key, dim), or (key, dim, segments, segment) for one part of a segmented slot."""
    if isinstance(entry, TensorDim):
        return entry
    if len(entry) == 4:
        key, dim, segments, segment = entry
        return TensorDim(key, dim, segments=segments, segment=segment)
    key, dim = entry
    return TensorDim(key, dim)


def block_map(block: ResolvedBlock, deploy: bool = False, verify: bool = True) -> BlockMap:
    """The slot -> tensor-dimension map of one resolved block (cached per block shape and form).

    ``verify=False`` skips the numerical permutation check (structure only, meta device, fast).
    """
    return _block_map(_canonical(block), deploy, verify)


# ---- a network ------------------------------------------------------------------------------
def channel_groups(resolved: ResolvedNetwork, deploy: bool = False, verify: bool = True) -> list[ChannelGroup]:
    """Every width of ``resolved`` as tied groups, in network order, with what constrains each.

    ``deploy``: map the tensors of the re-parameterized (deploy) form instead of the train form.
    ``verify``: check every block's maps numerically (see :func:`block_map`).
    """
    blocks = resolved.blocks
    maps = [block_map(b, deploy, verify) for b in blocks]
    parent: dict[tuple[int, str], tuple[int, str]] = {}

    def find(node):
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    def union(a, b):
        parent[find(a)] = find(b)

    for i, block in enumerate(blocks):
        for slot in SLOTS + inner_slots(block):
            if _width(block, slot) is not None:
                find((i, slot))
        if i + 1 < len(blocks):
            union((i, "out"), (i + 1, "in"))
        if maps[i].identity:
            union((i, "in"), (i, "out"))
        for slot_map in maps[i].maps:
            for other in slot_map.slots[1:]:
                union((i, slot_map.slots[0]), (i, other))
    members: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for node in sorted(parent, key=lambda n: (n[0], slot_order(n[1]))):
        members.setdefault(find(node), []).append(node)

    groups = []
    for nodes in members.values():
        first = nodes[0]
        if first == (0, "in") or any(n == (0, "in") for n in nodes):
            continue  # the image channels
        name = f"{blocks[first[0]].path}.{first[1]}"
        width = _width(blocks[first[0]], first[1])
        reasons, dims, step, tile = [], [], 1, 1
        if any(n == (len(blocks) - 1, "out") for n in nodes):
            reasons.append("the class logits")
        seen_maps = set()
        for i, slot in nodes:
            slot_map = maps[i].of(slot)
            if slot_map is None or (i, slot_map.slots) in seen_maps:
                continue
            seen_maps.add((i, slot_map.slots))
            if not slot_map.prunable:
                reasons.append(f"{blocks[i].path} ({type(getattr(blocks[i].spec, 'block', blocks[i].spec)).__name__}): {slot_map.reason}")
                continue
            for tensor_dim in slot_map.dims:
                dims.append((i, tensor_dim))
                step = math.lcm(step, tensor_dim.groups)
                tile = math.lcm(tile, tensor_dim.segments)
        if not dims and not reasons:
            reasons.append("no tensor holds these channels")
        if step > 1 and width % step:
            reasons.append(f"width {width} is not a multiple of the group count {step}")
        if tile > 1 and (width % tile or step > 1):
            reasons.append(f"width {width} in {tile} concatenated parts{' and grouped' if step > 1 else ''}: not one unit per part")
        groups.append(
            ChannelGroup(name=name, members=tuple(nodes), width=width, step=step, tile=tile, prunable=not reasons,
                         reason="; ".join(reasons[:2]), dims=tuple(dims))
        )
    return groups
