"""Transfer learning: a trained backbone, a new classifier for the new classes, then either
only the classifier trains (frozen backbone, "linear probe") or everything does (full fine-tune).

The new network is built from the source's spec with the new class count (so it stays a spec
described, checkpointable ``Network``); every tensor except ``head.classifier.*`` is copied. In
frozen mode the backbone's parameters stop requiring gradients and its BatchNorm layers stay in
eval mode (their running statistics are part of what was learned), as in Kornblith et al.
(CVPR 2019), "Do Better ImageNet Models Transfer Better?", Sec. 3 (fixed feature extractor).
"""

from __future__ import annotations

import torch
from torch import nn

from ..builder import Network, build
from ..reparam import is_deploy_form

__all__ = ["new_head_from", "copy_backbone", "freeze_backbone", "CLASSIFIER_PREFIX", "TRANSFER_MODES"]

CLASSIFIER_PREFIX = "head.classifier."
TRANSFER_MODES = ("full", "frozen")


class _FrozenBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that stays in eval mode whatever ``.train()`` says (same state dict)."""

    def train(self, mode: bool = True) -> "_FrozenBatchNorm2d":
        return super().train(False)


def copy_backbone(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state`` except the classifier's into ``model``; returns the copied names.

    Raises ``ValueError`` naming the tensors when the backbone does not fit (another architecture or width).
    """
    target = model.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
    missing = sorted(k for k in target if not k.startswith(CLASSIFIER_PREFIX) and k not in backbone)
    wrong = sorted(k for k in backbone if k in target and backbone[k].shape != target[k].shape)
    extra = sorted(k for k in backbone if k not in target)
    if missing or wrong or extra:
        detail = "; ".join(
            f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("wrong shape", wrong), ("unexpected", extra))
            if names
        )
        raise ValueError(f"the source weights do not fit this backbone ({detail}); use weights of the same model and width")
    model.load_state_dict({**target, **backbone})
    return sorted(backbone)


def freeze_backbone(model: nn.Module) -> int:
    """Only ``head.classifier`` trains; backbone BatchNorm stays in eval mode. Returns the trainable parameter count."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(CLASSIFIER_PREFIX))
    for name, module in model.named_modules():
        if type(module) is nn.BatchNorm2d and not name.startswith("head."):
            module.__class__ = _FrozenBatchNorm2d
            module.eval()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def new_head_from(source: Network, num_classes: int, mode: str = "full") -> Network:
    """A copy of ``source`` with a fresh ``num_classes``-way classifier, ready to fine-tune in ``mode``."""
    if mode not in TRANSFER_MODES:
        raise ValueError(f"transfer mode must be 'full' or 'frozen', got {mode!r}")
    if not isinstance(source, Network):
        raise TypeError(f"transfer needs an edgevision Network (built from a spec), got {type(source).__name__}")
    if is_deploy_form(source):
        raise ValueError("the source is in deploy form (BatchNorm folded); fine-tune from the train-form checkpoint")
    model = build(source.spec.with_classes(num_classes))
    copy_backbone(model, source.state_dict())
    if mode == "frozen":
        freeze_backbone(model)
    return model
