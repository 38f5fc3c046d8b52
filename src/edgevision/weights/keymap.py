"""Declarative key maps: our state-dict key -> the key a foreign checkpoint stores the same tensor under.

A :class:`KeyMap` is plain data: ordered ``(our regex, their template)`` rules, the first rule whose
regex matches the whole of our key wins. Templates substitute match groups with a tiny, closed
language (no ``eval``):

* ``{1}`` group 1 as matched; ``{1+1}`` / ``{2-1}`` group 1 plus/minus an integer (torchvision's
  ``layer1`` is our ``stages.0``);
* ``{flat(1,2)+1}``: the running index of block ``(stage=group 1, block=group 2)`` over all our
  stages, plus an offset (torchvision's MobileNets number blocks ``features.N`` across stages);
  ``{2*flat(1,2)+1}`` multiplies it first (LeViT's release puts each block's attention and MLP in two
  consecutive ``blocks.N``);
* ``{abc:2-1}``: the same number as a letter, 0 -> ``a`` (GoogLeNet's ``inception4a``);
* a template of ``None`` keeps our own initialisation (a buffer the source does not store).

A rule may carry a third item, conditions on our own layout: templates of our module paths that
must exist (``"stages.{1}.{2}.se"``) or, prefixed ``!``, must not; torchvision's MobileNetV3 numbers
the layers inside a block, so where the projection sits depends on whether the block has an
expansion and a squeeze-excite.

``reshape`` lists regexes of our keys whose source tensor holds the same numbers in another shape
(timm's VGG keeps the first classifier layer as a 7x7 conv, ``(O, C, 7, 7)``, over the 7x7 map that
our Linear ``(O, C * 49)`` reads flattened in the same C, H, W order); it is reshaped when the element
counts agree.

``norm_eps`` is the BatchNorm eps the source's models of this family compute with, where it is not
the zoo spec's (timm's PyTorch-trained MobileNetV3: 1e-5, the TF release and torchvision: 1e-3): the
same tensors give other feature maps under another eps, so the import carries it into the model's
spec (``NetworkSpec.norm_eps``) instead of a structure-identical variant per width.

``deploy_rules`` name the source's tensors for our *deploy* form (after ``ev.reparameterize``), where
the source also releases re-parameterized files whose branches are already merged (apple's
MobileOne ``mobileone_s*.pth.tar``: one ``reparam_conv`` per block): such a file cannot be split back
into branches, so it loads into the deploy-form model (``for_deploy_form``).

``ignore`` lists regexes of source keys that carry no information of ours (derived buffers such as
LeViT's ``attention_bias_idxs``). Every other source tensor must be used exactly once; the
importer (:mod:`edgevision.weights.importer`) checks that and every shape.
"""

from __future__ import annotations

import re
import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["KeyMap", "BlockIndex"]

_FIELD = re.compile(r"\{(abc:)?(?:(\d+)\*)?(?:flat\((\d+),(\d+)\)|(\d+))([+-]\d+)?\}")
_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.")


class BlockIndex:
    """Running block index over our stages and our module paths, from the keys of our state dict."""

    def __init__(self, keys) -> None:
        keys = list(keys)
        self.modules = {key.rsplit(".", i)[0] for key in keys for i in range(1, key.count(".") + 1)}
        depth: dict[int, int] = {}
        for key in keys:
            match = _BLOCK.match(key)
            if match:
                stage, block = int(match[1]), int(match[2])
                depth[stage] = max(depth.get(stage, 0), block + 1)
        self._start, total = {}, 0
        for stage in range(max(depth, default=-1) + 1):
            self._start[stage] = total
            total += depth.get(stage, 0)

    def flat(self, stage: int, block: int) -> int:
        return self._start[stage] + block


@dataclass(frozen=True)
class KeyMap:
    """How one family's tensors are named by one source (``timm``, ``torchvision``, ``official``)."""

    source: str
    rules: tuple[tuple, ...]  # (our regex, their template or None[, conditions])
    ignore: tuple[str, ...] = ()
    note: str = ""
    reshape: tuple[str, ...] = ()
    #: the upstream model names this map was verified against (documentation, docs/pretrained.md)
    upstream: dict[str, str] = field(default_factory=dict)
    #: the source's BatchNorm eps when it is not our spec's; None: the spec's own
    norm_eps: float | None = None
    #: rules for our deploy form, where the source releases re-parameterized files too; () none
    deploy_rules: tuple[tuple, ...] = ()

    def for_deploy_form(self) -> "KeyMap | None":
        """The map of the source's re-parameterized files (our deploy form's keys); None where it has none.

        No ``norm_eps``: a deploy-form file has its BatchNorms folded already, with the source's eps."""
        if not self.deploy_rules:
            return None
        return dataclasses.replace(self, rules=self.deploy_rules, deploy_rules=(), norm_eps=None, reshape=())

    @cached_property
    def _compiled(self):
        return tuple((re.compile(rule[0]), rule[1], tuple(rule[2]) if len(rule) > 2 else ()) for rule in self.rules)

    @cached_property
    def _ignored(self):
        return tuple(re.compile(pattern) for pattern in self.ignore)

    def reshapes(self, our_key: str) -> bool:
        return any(re.fullmatch(pattern, our_key) for pattern in self.reshape)

    def ignored(self, their_key: str) -> bool:
        return any(pattern.fullmatch(their_key) for pattern in self._ignored)

    def source_key(self, our_key: str, index: BlockIndex) -> str | None:
        """Their key for ``our_key``; ``None`` when the source does not store it. KeyError when no rule matches."""
        for pattern, template, conditions in self._compiled:
            match = pattern.fullmatch(our_key)
            if match is None or not all(_holds(condition, match, index) for condition in conditions):
                continue
            if template is None:
                return None
            return _FIELD.sub(lambda field_: _substitute(field_, match, index), template)
        raise KeyError(our_key)


def _substitute(field_: re.Match, match: re.Match, index: BlockIndex) -> str:
    # groups: 1 letter form, 2 multiplier, 3/4 flat(stage, block) groups, 5 a plain group, 6 offset
    offset, times = int(field_[6] or 0), int(field_[2] or 1)
    if field_[5] is not None:
        value = match[int(field_[5])]
        if not field_[1] and not field_[6] and not field_[2]:
            return value
        number = times * int(value) + offset
    else:
        number = times * index.flat(int(match[int(field_[3])]), int(match[int(field_[4])])) + offset
    return "abcdefghijklmnopqrstuvwxyz"[number] if field_[1] else str(number)


def _holds(condition: str, match: re.Match, index: BlockIndex) -> bool:
    wanted = not condition.startswith("!")
    path = _FIELD.sub(lambda field_: _substitute(field_, match, index), condition.lstrip("!"))
    return (path in index.modules) == wanted
