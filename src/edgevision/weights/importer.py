"""Import a timm / torchvision / authors' checkpoint into an edgevision network, tensor by tensor.

For every tensor of our train-form state dict the family's :class:`~edgevision.weights.keymap.KeyMap`
names the source tensor; each is shape-checked and every source tensor must be used exactly once
(BatchNorm ``num_batches_tracked`` counters are taken when present and never required: they do not
affect inference). Then

* a classifier whose class count differs from the file's is left at our initialisation (noted),
* a stem convolution whose input channels differ is adapted as timm's ``adapt_input_conv`` does
  (Wightman, timm ``models/_manipulate.py``): summed over RGB for 1 channel, otherwise RGB
  repeated to ``in_chans`` and scaled by ``3 / in_chans`` so activations keep their magnitude.
* where the source computes with another BatchNorm eps than our spec (``KeyMap.norm_eps``), the
  model takes the source's eps and its spec says so (``NetworkSpec.norm_eps``), so the feature maps,
  not only the logits, equal the source's and ``ev.save`` / ``ev.load`` keep it.

A source that also releases re-parameterized files (``KeyMap.deploy_rules``: apple's MobileOne)
loads them into our deploy form: :func:`load_pretrained` into a model already re-parameterized,
``ev.create_model(name, pretrained=FILE)`` and ``edgevision weights import`` by re-parameterizing
first when the file is one (merged branches cannot be split back into a train form).

Nothing is loaded unless everything matches: missing, unexpected and mis-shaped tensors are listed
(the first few of each) in one :class:`WeightImportError`.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..tensor_listing import mismatch_listing
from ..task_spec import TaskModelSpec
from .io import EMA_KEYS, WeightImportError, read_checkpoint
from .keymap import BlockIndex, KeyMap

__all__ = [
    "ImportReport", "load_pretrained", "load_pretrained_any_form", "keymaps_for", "SOURCES", "adapt_input_conv", "map_state_dict",
    "to_source_layout", "DeployFormCheckpoint",
]

SOURCES = ("timm", "torchvision", "official")
_SHOWN = 4  # how many offending keys an error names


@dataclass
class ImportReport:
    """What :func:`load_pretrained` did; ``to_dict`` is the ``--json`` summary of ``edgevision weights import``."""

    model: str
    family: str
    source: str
    file: str
    tensors_mapped: int
    source_tensors: int
    source_ignored: int = 0
    classifier_reinitialised: bool = False
    stem_adapted: bool = False
    norm_eps: float | None = None  # the source's BatchNorm eps, set on the model where it was not its spec's
    form: str = "train"  # "deploy": a re-parameterized file, loaded into our deploy form
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{self.model}: {self.tensors_mapped} tensors from {self.source} file {self.file} ({self.source_tensors} in the file)"]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def keymaps_for(family: str, model: str | None = None) -> dict[str, KeyMap]:
    """The key maps a model has, by source: its family's, overridden by maps for the model alone (VGG)."""
    from .maps import KEYMAPS

    return {**KEYMAPS.get(family, {}), **KEYMAPS.get(model or "", {})}


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """An RGB stem kernel ``(O, 3, kH, kW)`` -> ``(O, in_chans, kH, kW)``, as timm's ``adapt_input_conv``."""
    dtype, kernel = weight.dtype, weight.float()
    if kernel.shape[1] != 3:
        raise WeightImportError(f"cannot adapt a stem kernel with {kernel.shape[1]} input channels; only RGB (3) kernels are adapted")
    if in_chans == 1:
        kernel = kernel.sum(dim=1, keepdim=True)
    else:
        kernel = kernel.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3.0 / in_chans)
    return kernel.to(dtype)


class DeployFormCheckpoint(WeightImportError):
    """The file is a re-parameterized (deploy-form) checkpoint and the model is in train form."""


def _shape_sensitive_keys(spec, shapes: dict[str, torch.Size], deployed: bool = False, **change) -> set[str]:
    """Our keys whose shape changes with the class count (``num_classes=``) or input channels (``in_chans=``).

    ``deployed``: ``shapes`` are of the deploy form, whose merged branches have other names: the keys
    are those of the same blocks (first two path parts, e.g. ``stem.0``, ``head.classifier``) whose
    class (dim 0) or input-channel (dim 1) size is the spec's."""
    if "num_classes" in change:
        other, size, dim = spec.with_classes(_num_classes(spec) + 1), _num_classes(spec), 0
    else:
        other, size, dim = spec.with_input_channels(spec.in_channels + 1), spec.in_channels, 1
    train = _state_shapes(spec) if deployed else shapes
    sensitive = {key for key, shape in _state_shapes(other).items() if key in train and train[key] != shape}
    if not deployed:
        return sensitive
    blocks = {".".join(key.split(".")[:2]) + "." for key in sensitive}
    return {key for key, shape in shapes.items() if key.startswith(tuple(blocks)) and len(shape) > dim and shape[dim] == size}


def _num_classes(spec) -> int:
    """A classifier's ``head.num_classes``; a task model's (``TaskModelSpec``) own ``num_classes``."""
    return spec.num_classes if isinstance(spec, TaskModelSpec) else spec.head.num_classes


@functools.lru_cache(maxsize=16)  # specs are frozen (hashable); the dict is read only
def _state_shapes(spec) -> dict[str, torch.Size]:
    """Our train-form state-dict shapes for ``spec``."""
    from ..builder import build  # a task model's spec builds itself there too

    try:  # meta tensors: the layout without allocating (or initialising) the weights
        with torch.device("meta"):
            model = build(spec)
    except Exception:  # a block that computes with real tensors at construction time
        model = build(spec)
    return {key: tensor.shape for key, tensor in model.state_dict().items()}


def _family(model: nn.Module) -> tuple[str, object, bool]:
    """``(family, spec, deployed)``; ``deployed``: the model is re-parameterized (BN folded, branches merged)."""
    from ..registry import UnknownModelError, model_family

    spec = getattr(model, "spec", None)
    if spec is None:
        raise WeightImportError(f"a {type(model).__name__} has no edgevision spec; build the model with ev.create_model(name)")
    deployed = set(model.state_dict()) != set(_state_shapes(spec))
    try:
        return model_family(spec.name), spec, deployed
    except UnknownModelError:
        raise WeightImportError(f"model {spec.name!r} is not a registered zoo model, so no key map knows its layout") from None


def _choose(family: str, name: str, keymaps: dict[str, KeyMap], source: str | None, ours: list[str], theirs: dict, index: BlockIndex) -> str:
    if source is not None:
        if source not in SOURCES:
            raise WeightImportError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
        if source not in keymaps:
            have = ", ".join(sorted(keymaps)) or "none yet"
            raise WeightImportError(
                f"{name} ({family} family) has no {source} key map; sources it loads from: {have}{_variant_hint(name, source)} (docs/pretrained.md)"
            )
        return source
    if not keymaps:
        raise WeightImportError(f"{name} ({family} family) has no key map for any source yet; see docs/pretrained.md for the covered models")
    scores = _scores(keymaps, ours, theirs, index)
    best = max(scores, key=scores.get)
    if scores[best] < 0.5:
        raise WeightImportError(
            f"the file's tensor names match none of {name}'s key maps ({', '.join(f'{s} {100 * v:.0f}%' for s, v in scores.items())}); "
            "give the source explicitly, or check that the file is a checkpoint of this architecture"
        )
    return best


def _scores(keymaps: dict[str, KeyMap], ours: list[str], theirs: dict, index: BlockIndex) -> dict[str, float]:
    """Per source: the fraction of our tensors whose source name the file holds."""
    return {candidate: sum(1 for key in ours if _found(keymap, key, index, theirs)) / max(len(ours), 1) for candidate, keymap in keymaps.items()}


def _coverage(keymaps: dict[str, KeyMap], source: str | None, ours: list[str], theirs: dict, index: BlockIndex) -> float:
    """The best fraction of our tensors a (the given) source's map finds in the file."""
    candidates = {name: keymap for name, keymap in keymaps.items() if source is None or name == source}
    return max(_scores(candidates, ours, theirs, index).values(), default=0.0)


def _variant_hint(name: str, source: str) -> str:
    """Where a library's layout differs from our release-layout model: the variant that loads it."""
    from ..models.compat import COMPAT_VARIANTS

    variant = COMPAT_VARIANTS.get(name)
    if variant is None or source not in keymaps_for("", variant):
        return ""
    return f"; {source}'s layout of this network is the zoo model {variant!r}: ev.create_model({variant!r}, pretrained=FILE)"


def _found(keymap: KeyMap, key: str, index: BlockIndex, theirs: dict) -> bool:
    try:
        their_key = keymap.source_key(key, index)
    except KeyError:  # no rule: this map is not for this model
        return False
    return their_key is None or their_key in theirs


def _deploy_keymaps(family: str, spec, source: str | None) -> dict[str, KeyMap]:
    """The key maps of re-parameterized files for a deploy-form model; an error naming the way where none fits."""
    keymaps = {name: keymap.for_deploy_form() for name, keymap in keymaps_for(family, spec.name).items() if keymap.deploy_rules}
    if source is not None and source in SOURCES and source not in keymaps or not keymaps:
        where = f" (re-parameterized files load only from: {', '.join(sorted(keymaps))})" if keymaps else ""
        raise WeightImportError(
            f"{spec.name} is in deploy form; {source or 'its'} checkpoints hold the train form{where}: "
            f"import into ev.create_model({spec.name!r}), then call ev.reparameterize"
        )
    return keymaps


def map_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str | None = None, file: str = "<state dict>"):
    """Rename and check a foreign state dict for ``model``: ``(our tensors, report)``; nothing is loaded.

    Raises :class:`DeployFormCheckpoint` where ``model`` is in train form and ``state`` is a
    re-parameterized file (load it with :func:`load_pretrained_any_form` or into ``ev.reparameterize(model)``)."""
    family, spec, deployed = _family(model)
    ours = {key: tensor for key, tensor in model.state_dict().items()}
    index = BlockIndex(ours)
    if deployed:
        keymaps = _deploy_keymaps(family, spec, source)
    else:
        keymaps = keymaps_for(family, spec.name)
        # a source that releases re-parameterized files too: a file no train-form map fits may be one (checking
        # needs the deploy form's names, i.e. a re-parameterized model: load_pretrained_any_form builds it)
        with_deploy = [name for name, keymap in keymaps.items() if keymap.deploy_rules and source in (None, name)]
        coverage = _coverage(keymaps, source, list(ours), state, index)
        if with_deploy and coverage < 0.5:
            raise DeployFormCheckpoint(
                f"{file} fits no train-form map of {spec.name} (best {100 * coverage:.0f}% of its tensors); {' and '.join(with_deploy)} also "
                f"release(s) re-parameterized files: if it is one, load it into ev.reparameterize(model), or with "
                f"ev.create_model({spec.name!r}, pretrained=FILE) / `edgevision weights import`, which build the deploy form"
            )
    source = _choose(family, spec.name, keymaps, source, list(ours), state, index)
    keymap = keymaps[source]

    shapes = {key: tensor.shape for key, tensor in ours.items()}
    classifier = _shape_sensitive_keys(spec, shapes, deployed, num_classes=True)
    stem = _shape_sensitive_keys(spec, shapes, deployed, in_chans=True)

    mapped: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    unmapped, missing, wrong = [], [], []
    reinitialised, adapted = [], []
    for key, tensor in ours.items():
        try:
            their_key = keymap.source_key(key, index)
        except KeyError:
            unmapped.append(key)
            continue
        if their_key is None:
            continue
        if their_key not in state:
            if not key.endswith("num_batches_tracked"):
                missing.append(f"{their_key} (for {key})")
            continue
        if their_key in used:
            wrong.append(f"{their_key} used twice (again for {key})")
            continue
        used.add(their_key)
        value = state[their_key]
        if value.shape != tensor.shape and (
            _trailing_ones_only(value.shape, tensor.shape) or (keymap.reshapes(key) and value.numel() == tensor.numel())
        ):
            value = value.reshape(tensor.shape)  # a 1x1 conv (O, I, 1, 1) stored as a Linear (O, I): same numbers
        if value.shape != tensor.shape:
            if key in classifier:
                reinitialised.append(key)
                continue
            if key in stem and value.dim() == 4 and value.shape[0] == tensor.shape[0] and value.shape[2:] == tensor.shape[2:]:
                value = adapt_input_conv(value, tensor.shape[1])
                adapted.append(key)
            else:
                wrong.append(f"{their_key} {tuple(value.shape)} for {key} {tuple(tensor.shape)}")
                continue
        mapped[key] = value.to(tensor.dtype)
    unexpected = sorted(
        key for key in state if key not in used and not keymap.ignored(key) and not key.endswith("num_batches_tracked")
    )
    problems = mismatch_listing([
        (f"of our tensors have no rule in the {source} key map", unmapped), ("missing from the file", missing),
        ("mis-shaped", wrong), ("unexpected in the file", unexpected),
    ], shown=_SHOWN)
    if problems:
        upstream = keymap.upstream.get(spec.name)
        hint = f"is it {source}'s {upstream!r}?" if upstream else "is it a checkpoint of this architecture?"
        raise WeightImportError(f"{file} does not fit {spec.name} as a {source} checkpoint: {problems}; {hint} (docs/pretrained.md)")

    notes = [keymap.note] if keymap.note else []
    if reinitialised:
        notes.append(f"classifier re-initialised for {_num_classes(spec)} classes ({', '.join(reinitialised)}); fine-tune it")
    if adapted:
        notes.append(f"stem adapted from 3 to {spec.in_channels} input channels as timm's adapt_input_conv ({', '.join(adapted)})")
    norm_eps = _carried_norm_eps(spec, keymap)
    if norm_eps is not None:
        notes.append(f"BatchNorm eps set to {norm_eps:g} as {source}'s {keymap.upstream.get(spec.name, family)} (the spec's: {_spec_eps(spec)})")
    ignored = sum(1 for key in state if key not in used and (keymap.ignored(key) or key.endswith("num_batches_tracked")))
    report = ImportReport(
        model=spec.name, family=family, source=source, file=file, tensors_mapped=len(mapped), source_tensors=len(state),
        source_ignored=ignored, classifier_reinitialised=bool(reinitialised), stem_adapted=bool(adapted), norm_eps=norm_eps, notes=notes,
        form="deploy" if deployed else "train",
    )
    return mapped, report


def _spec_eps(spec) -> str:
    eps = getattr(spec, "norm_eps", None)
    return "each block's own" if eps is None else f"{eps:g}"


def _carried_norm_eps(spec, keymap: KeyMap) -> float | None:
    """The eps the import must set: the source's, where the (network) spec computes with another."""
    if keymap.norm_eps is None or getattr(spec, "norm_eps", keymap.norm_eps) == keymap.norm_eps:
        return None
    if not hasattr(spec, "with_norm_eps"):  # a task model's spec: its map never names an eps today
        raise WeightImportError(f"{spec.name}'s spec cannot carry the {keymap.source} BatchNorm eps {keymap.norm_eps:g}")
    return keymap.norm_eps


def carry_norm_eps(model: nn.Module, norm_eps: float) -> None:
    """Set ``norm_eps`` on every BatchNorm of ``model`` and in its spec (and resolved spec), in place."""
    from dataclasses import replace

    from ..builder import set_norm_eps

    set_norm_eps(model, norm_eps)
    model.spec = model.spec.with_norm_eps(norm_eps)
    model.resolved = replace(model.resolved, spec=model.spec)  # the blocks' widths and sizes do not depend on eps


def to_source_layout(model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """``model``'s state dict under ``source``'s names (the inverse of the import; e.g. to hand weights back to timm).

    Tensors the source does not store (a key map's ``None``) are left out; shapes are ours (a Linear
    the source keeps as a 1x1 conv stays 2-D).
    """
    family, spec, deployed = _family(model)
    keymaps = keymaps_for(family, spec.name)
    if deployed:  # the source's re-parameterized layout, where it has one
        keymaps = {name: keymap.for_deploy_form() for name, keymap in keymaps.items() if keymap.deploy_rules}
    if source not in keymaps:
        raise WeightImportError(f"{spec.name} ({family} family) has no {source} key map; it has: {', '.join(sorted(keymaps)) or 'none'}")
    ours = model.state_dict()
    index = BlockIndex(ours)
    out = {}
    for key, tensor in ours.items():
        their_key = keymaps[source].source_key(key, index)
        if their_key is not None:
            out[their_key] = tensor.detach().clone()
    return out


def load_pretrained(model: nn.Module, path: str | os.PathLike, source: str | None = None, *, ema: bool = False) -> ImportReport:
    """Load a timm / torchvision / official checkpoint file into ``model`` (train form) in place.

    ``source`` is ``"timm"``, ``"torchvision"`` or ``"official"``; ``None`` picks the family's key map
    whose names the file holds. ``ema``: a training checkpoint's moving-average weights (``state_dict_ema``,
    ``model_ema``...) instead of its trained ones. Raises :class:`WeightImportError` (nothing loaded) on any mismatch.
    """
    state, container, other_ema = read_checkpoint(path, ema=ema)
    mapped, report = map_state_dict(model, state, source, file=str(path))
    if ema or container in EMA_KEYS:
        report.notes.append(f"the moving-average (EMA) weights, stored under {container!r}" + ("" if ema else " (the file holds no other weights)"))
    elif other_ema:
        report.notes.append(f"the file also holds moving-average (EMA) weights under {other_ema!r}, not imported; --ema (ema=True) imports those")
    # strict=False: the keys left out keep our initialisation on purpose (a re-initialised classifier,
    # BatchNorm counters the file lacks, buffers a key map marks as ours)
    model.load_state_dict(mapped, strict=False)
    if report.norm_eps is not None:
        carry_norm_eps(model, report.norm_eps)
    return report


def load_pretrained_any_form(model: nn.Module, path: str | os.PathLike, source: str | None = None, *,
                             ema: bool = False) -> tuple[nn.Module, ImportReport]:
    """:func:`load_pretrained`, re-parameterizing ``model`` first when the file is a re-parameterized
    (deploy-form) checkpoint; returns ``(the model, report)`` (the model is a new module in that case)."""
    from ..reparam import reparameterize

    try:
        return model, load_pretrained(model, path, source, ema=ema)
    except DeployFormCheckpoint as train_form_error:
        deployed = reparameterize(model)
        try:
            report = load_pretrained(deployed, path, source, ema=ema)
        except WeightImportError as error:  # neither form: say both
            raise WeightImportError(f"{train_form_error.args[0].split(';')[0]}; as a re-parameterized file: {error}") from None
        report.notes.append("a re-parameterized (deploy-form) file: the model is in deploy form (its train-time branches are not in the file)")
        return deployed, report


def _trailing_ones_only(a: torch.Size, b: torch.Size) -> bool:
    def strip(shape):
        shape = list(shape)
        while len(shape) > 1 and shape[-1] == 1:
            shape.pop()
        return shape

    return a != b and strip(a) == strip(b)
