"""Search spaces: a network spec with choices, sampled into ordinary :class:`NetworkSpec` s.

A space is plain data like every spec (frozen, hashable, JSON round trip): a stem width choice,
one :class:`StageChoices` per stage and a head. Each stage picks one block kind, a width and a
depth; each block in it picks a kernel size and an expansion ratio (per block, as in the
Once-for-All space, Cai et al. 2020, Sec. 3.2). Choices are discrete so the same resolved block
recurs across sampled networks and a block latency table covers many networks with few entries.

Block kinds come from the zoo's existing block specs (``SPACE_BLOCK_KINDS``); the same space will
feed architecture search later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass
from typing import Callable, ClassVar

from ..blocks import (
    BlockSpec,
    ClassifierHeadSpec,
    ConvNormActSpec,
    GhostBottleneckSpec,
    InvertedResidualSpec,
    RepVGGBlockSpec,
    ResNetBasicSpec,
    ShuffleNetV2UnitSpec,
)
from ..layers.make_divisible import make_divisible
from ..network import NetworkSpec, StageSpec
from ..spec import Spec, check, check_choice, check_positive

__all__ = ["SPACE_BLOCK_KINDS", "SearchSpace", "StageChoices", "get_space", "network_id", "SPACES"]


def _inverted_residual(out: int, stride: int, kernel: int, expansion: float, in_channels: int) -> BlockSpec:
    return InvertedResidualSpec(out_channels=out, kernel_size=kernel, stride=stride, expansion_ratio=expansion)


def _ghost_bottleneck(out: int, stride: int, kernel: int, expansion: float, in_channels: int) -> BlockSpec:
    # GhostNet's table gives the expanded width directly; here it is the block's input width x expansion
    return GhostBottleneckSpec(out_channels=out, mid_channels=make_divisible(in_channels * expansion), kernel_size=kernel, stride=stride)


def _shufflenet_v2(out: int, stride: int, kernel: int, expansion: float, in_channels: int) -> BlockSpec:
    return ShuffleNetV2UnitSpec(out_channels=out, stride=stride, kernel_size=kernel)


def _repvgg(out: int, stride: int, kernel: int, expansion: float, in_channels: int) -> BlockSpec:
    return RepVGGBlockSpec(out_channels=out, stride=stride)


def _resnet_basic(out: int, stride: int, kernel: int, expansion: float, in_channels: int) -> BlockSpec:
    return ResNetBasicSpec(out_channels=out, stride=stride)


#: block kind -> (constructor, uses kernel choice, uses expansion choice)
SPACE_BLOCK_KINDS: dict[str, tuple[Callable[..., BlockSpec], bool, bool]] = {
    InvertedResidualSpec.kind: (_inverted_residual, True, True),
    GhostBottleneckSpec.kind: (_ghost_bottleneck, True, True),
    ShuffleNetV2UnitSpec.kind: (_shufflenet_v2, True, False),
    RepVGGBlockSpec.kind: (_repvgg, False, False),
    ResNetBasicSpec.kind: (_resnet_basic, False, False),
}


@dataclass(frozen=True, kw_only=True)
class StageChoices(Spec):
    """One stage's options: every block of the stage has the chosen kind and width."""

    kind: ClassVar[str] = "stage_choices"

    block_kinds: tuple[str, ...]
    widths: tuple[int, ...]  # output channels (exact: spaces sample at width multiplier 1.0)
    depths: tuple[int, ...]
    stride: int = 1  # of the stage's first block
    kernel_sizes: tuple[int, ...] = (3,)
    expansion_ratios: tuple[float, ...] = (6.0,)

    def validate(self) -> None:
        for field in ("block_kinds", "widths", "depths", "kernel_sizes", "expansion_ratios"):
            check(self, field, len(getattr(self, field)) > 0, "a non-empty tuple of choices")
        for name in self.block_kinds:
            if name not in SPACE_BLOCK_KINDS:
                raise ValueError(f"StageChoices.block_kinds has {name!r}; choose from {', '.join(SPACE_BLOCK_KINDS)}")
        check(self, "widths", all(w > 0 and w % 2 == 0 for w in self.widths), "positive even widths (ShuffleNet V2 halves them)")
        check(self, "depths", all(d >= 1 for d in self.depths), "depths >= 1")
        check(self, "kernel_sizes", all(k in (3, 5, 7) for k in self.kernel_sizes), "kernel sizes among 3, 5, 7")
        check(self, "expansion_ratios", all(e >= 1 for e in self.expansion_ratios), "ratios >= 1")
        check_choice(self, "stride", (1, 2))


@dataclass(frozen=True, kw_only=True)
class SearchSpace(Spec):
    """A network spec with choices. ``sample(rng)`` draws one :class:`NetworkSpec`."""

    kind: ClassVar[str] = "search_space"

    name: str
    input_size: int
    stem_widths: tuple[int, ...]
    stages: tuple[StageChoices, ...]
    num_classes: int = 1000

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check_positive(self, "input_size", "num_classes")
        check(self, "stem_widths", len(self.stem_widths) > 0 and all(w > 0 for w in self.stem_widths), "a non-empty tuple of widths")
        check(self, "stages", len(self.stages) > 0, "a non-empty tuple of StageChoices")
        # a stride-2 ShuffleNet V2 unit must widen its input: every width must exceed every earlier one
        previous = max(self.stem_widths)
        for index, stage in enumerate(self.stages):
            if min(stage.widths) <= previous:
                raise ValueError(
                    f"SearchSpace.stages[{index}].widths {stage.widths} must all exceed the widest earlier choice ({previous}); "
                    f"widths grow stage by stage"
                )
            previous = max(stage.widths)

    def sample(self, rng: random.Random | int) -> NetworkSpec:
        """One network drawn uniformly from each choice (``rng``: a ``random.Random`` or a seed)."""
        rng = random.Random(rng) if isinstance(rng, int) else rng
        return self.decide(lambda name, options: rng.choice(options))

    def decide(self, choose: Callable[[str, tuple], object]) -> NetworkSpec:
        """The network that ``choose(parameter name, options) -> option`` picks, choice by choice.

        One walk for every way of choosing: ``sample`` picks at random, an Optuna trial picks with
        ``trial.suggest_categorical`` (architecture search). Names are stable (``s2.kind``, ``s2.b1.kernel``)
        and a name always comes with the same options; per-block choices exist only up to the chosen depth.
        """
        stem_width = choose("stem.width", self.stem_widths)
        stages = []
        channels = stem_width
        for stage_index, choices in enumerate(self.stages):
            make, uses_kernel, uses_expansion = SPACE_BLOCK_KINDS[choose(f"s{stage_index}.kind", choices.block_kinds)]
            width = choose(f"s{stage_index}.width", choices.widths)
            depth = choose(f"s{stage_index}.depth", choices.depths)
            blocks = []
            for index in range(depth):
                kernel = choose(f"s{stage_index}.b{index}.kernel", choices.kernel_sizes) if uses_kernel else 3
                expansion = choose(f"s{stage_index}.b{index}.expansion", choices.expansion_ratios) if uses_expansion else 1.0
                stride = choices.stride if index == 0 else 1
                blocks.append(make(width, stride, kernel, expansion, channels))
                channels = width
            stages.append(StageSpec(blocks=tuple(blocks)))
        return self._network(stem_width, tuple(stages))

    def _network(self, stem_width: int, stages: tuple[BlockSpec | StageSpec, ...]) -> NetworkSpec:
        spec = NetworkSpec(
            name=self.name,
            stem=(ConvNormActSpec(out_channels=stem_width, kernel_size=3, stride=2),),
            stages=stages,
            head=ClassifierHeadSpec(num_classes=self.num_classes),
            input_size=self.input_size,
        )
        return dataclasses.replace(spec, name=f"{self.name}-{network_id(spec)}")

    def supernet(self, widths: tuple[int, ...] | None = None, stem_width: int | None = None) -> NetworkSpec:
        """This space as a layer-wise supernet (FBNet, Wu et al. 2019, Sec. 3.2): a network spec of choice blocks.

        Widths are fixed per stage (``widths``, default each stage's widest choice; FBNet fixes them too,
        Table 1). Every block position up to the stage's deepest choice is a ``ChoiceBlockSpec`` over
        block kind x kernel x expansion; positions beyond the shallowest depth also offer skip
        (``IdentitySpec``), so depth is searched as in FBNet. Mixing kinds inside a stage is allowed
        in the supernet (a superset of what ``sample`` draws).
        """
        from ..blocks.choice import ChoiceBlockSpec, IdentitySpec

        widths = tuple(max(stage.widths) for stage in self.stages) if widths is None else tuple(widths)
        stem_width = max(self.stem_widths) if stem_width is None else stem_width
        if len(widths) != len(self.stages):
            raise ValueError(f"SearchSpace.supernet needs one width per stage ({len(self.stages)}), got {widths}")
        stages = []
        channels = stem_width
        for stage_index, (choices, width) in enumerate(zip(self.stages, widths)):
            if width not in choices.widths:
                raise ValueError(f"SearchSpace.supernet width {width} for stage {stage_index} is not among its choices {choices.widths}")
            blocks = []
            for index in range(max(choices.depths)):
                stride = choices.stride if index == 0 else 1
                candidates: list[BlockSpec] = []
                for kind in choices.block_kinds:
                    make, uses_kernel, uses_expansion = SPACE_BLOCK_KINDS[kind]
                    for kernel in choices.kernel_sizes if uses_kernel else (3,):
                        for expansion in choices.expansion_ratios if uses_expansion else (1.0,):
                            candidates.append(make(width, stride, kernel, expansion, channels))
                if index >= min(choices.depths):
                    candidates.append(IdentitySpec())
                blocks.append(ChoiceBlockSpec(candidates=tuple(dict.fromkeys(candidates)), name=f"s{stage_index}.b{index}"))
                channels = width
            stages.append(StageSpec(blocks=tuple(blocks)))
        spec = self._network(stem_width, tuple(stages))
        return dataclasses.replace(spec, name=f"{self.name}-supernet")

    def sample_many(self, count: int, seed: int = 0) -> list[NetworkSpec]:
        """``count`` distinct networks, reproducible from ``seed``."""
        rng = random.Random(seed)
        seen: dict[str, NetworkSpec] = {}
        for _ in range(count * 100):
            if len(seen) == count:
                break
            spec = self.sample(rng)
            seen.setdefault(spec.name, spec)
        if len(seen) < count:
            raise ValueError(f"search space {self.name!r} yielded only {len(seen)} distinct networks, {count} asked")
        return list(seen.values())


def network_id(spec: NetworkSpec) -> str:
    """12 hex digits identifying a network's architecture (its spec without the name)."""
    text = dataclasses.replace(spec, name="-").to_json()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_ALL_KINDS = tuple(SPACE_BLOCK_KINDS)

#: "mobile": five stages over every space block kind, a MobileNetV2-like width/stride schedule
#: (Sandler et al. 2018, Table 2, at roughly 0.5-0.75 width) at 128 x 128 input, where one network
#: runs in a few ms on a 2-core CPU so hundreds can be measured in minutes.
MOBILE_SPACE = SearchSpace(
    name="mobile",
    input_size=128,
    stem_widths=(16,),
    stages=(
        StageChoices(block_kinds=_ALL_KINDS, widths=(20, 24), depths=(1, 2), stride=1, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
        StageChoices(block_kinds=_ALL_KINDS, widths=(32, 40), depths=(1, 2, 3), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
        StageChoices(block_kinds=_ALL_KINDS, widths=(48, 64), depths=(2, 3), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
        StageChoices(block_kinds=_ALL_KINDS, widths=(96, 128), depths=(2, 3), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
        StageChoices(block_kinds=_ALL_KINDS, widths=(160, 192), depths=(1, 2), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
    ),
)

SPACES: dict[str, SearchSpace] = {MOBILE_SPACE.name: MOBILE_SPACE}


def get_space(name: str) -> SearchSpace:
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; choose one of {', '.join(SPACES)}") from None
