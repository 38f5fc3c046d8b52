"""The module builder: resolved network -> ``nn.Module`` (train form)."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from .network import NetworkSpec
from .resolve import ResolvedNetwork, resolve

__all__ = ["Network", "build", "set_norm_eps"]


def set_norm_eps(module: nn.Module, eps: float) -> None:
    """Every BatchNorm under ``module`` divides by sqrt(var + ``eps``) (``NetworkSpec.norm_eps``)."""
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.eps = eps


class Network(nn.Module):
    """stem -> stages -> head, with module paths matching ``ResolvedBlock.path``.

    ``forward`` returns logits with a classifier head, the list of pyramid levels with a features
    head (``create_model(..., features_only=True)``) and the last feature map without a head.
    """

    def __init__(self, resolved: ResolvedNetwork) -> None:
        super().__init__()
        self.spec = resolved.spec
        self.resolved = resolved
        self.stem = nn.Sequential(*(b.build() for b in resolved.section("stem")))
        self.stages = nn.Sequential(*(nn.Sequential(*(b.build() for b in resolved.stage(i))) for i in range(resolved.num_stages)))
        self.head = resolved.head.build() if resolved.head is not None else nn.Identity()
        if self.spec.norm_eps is not None:
            set_norm_eps(self, self.spec.norm_eps)

    @property
    def num_features(self) -> int:
        return self.resolved.num_features

    @property
    def feature_info(self):
        """The pyramid levels (``FeatureInfo``): channels, reduction and module path per level, from the resolved spec."""
        from .features import FeatureInfo

        return FeatureInfo(self.resolved.feature_info(), getattr(self.spec.head, "out_indices", None))

    def _body(self) -> Iterator[nn.Module]:
        """Stem and stage blocks in the order of ``resolved.body``."""
        yield from self.stem
        for stage in self.stages:
            yield from stage

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, 3, H, W) -> (B, C, H/32, W/32)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        *,
        stop_early: bool = False,
        intermediates_only: bool = False,
        output_fmt: str = "NCHW",
    ):
        """timm's contract: ``(final feature map, [level maps])``, or only the levels with ``intermediates_only``.

        ``indices``: None for every level, an int n for the last n, or level indices (negatives count
        from the end). ``stop_early`` stops after the last requested level (the final map is then that level).
        """
        from .features import select_levels

        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' (every edgevision block exchanges NCHW maps), got {output_fmt!r}")
        levels = self.resolved.feature_info()
        wanted = {levels[i].block: i for i in select_levels(levels, indices)}
        last = max(wanted)
        intermediates = []
        for index, module in enumerate(self._body()):
            x = module(x)
            if index in wanted:
                intermediates.append(x)
            if (stop_early or intermediates_only) and index == last:
                break
        return intermediates if intermediates_only else (x, intermediates)

    def forward(self, x: torch.Tensor):
        if getattr(self.spec.head, "is_features_head", False):
            return self.forward_intermediates(x, self.spec.head.out_indices, intermediates_only=True)  # [(B, C_i, H/r_i, W/r_i)]
        return self.head(self.forward_features(x))  # -> (B, num_classes); the last map without a head

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh ``num_classes``-way classifier; everything else, hidden head layers included, keeps its weights.

        Only the head is rebuilt; its tensors whose shape does not depend on the class count are copied
        over. ``self.spec`` and ``self.resolved`` say the new count, so ``ev.save`` / ``ev.load`` round-trip.
        """
        if not self.spec.has_classifier:
            raise ValueError(f"{self.spec.name} has no classifier head to reset ({type(self.spec.head).__name__ if self.spec.head else 'backbone only'})")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"reset_classifier needs num_classes >= 1, got {num_classes!r}; for a backbone use create_model(..., features_only=True)")
        old = self.head
        resolved = resolve(self.spec.with_classes(num_classes), input_size=self.resolved.input_size)
        head = resolved.head.build()
        with torch.device("meta"):  # which head tensors follow the class count: compare with one class more
            probe = resolve(self.spec.with_classes(num_classes + 1), input_size=self.resolved.input_size).head.build().state_dict()
        fresh, kept = head.state_dict(), old.state_dict()
        for name, tensor in fresh.items():
            if name in kept and kept[name].shape == tensor.shape == probe[name].shape:
                tensor.copy_(kept[name])
        head.load_state_dict(fresh)
        reference = next(old.parameters(), None)
        if reference is not None:
            head.to(device=reference.device, dtype=reference.dtype)
        self.head = head.train(old.training)
        self.spec, self.resolved = resolved.spec, resolved


def build(spec: NetworkSpec | ResolvedNetwork) -> Network:
    """Build the train-form module of a network spec (or an already resolved one).

    A task model's spec (``TaskModelSpec``: segmentation, detection, ...) builds itself.
    """
    from .task_spec import TaskModelSpec

    if isinstance(spec, TaskModelSpec):
        return spec.build()
    resolved = spec if isinstance(spec, ResolvedNetwork) else resolve(spec)
    return Network(resolved)
