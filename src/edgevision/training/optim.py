"""Optimizers with the "no bias decay" trick (Bag of Tricks Sec. 3.1).

With ``no_bias_decay`` weight decay applies only to the weights of convolutions and linear
layers; biases and every normalization parameter (BatchNorm/LayerNorm/GroupNorm gamma and
beta) go to a group with ``weight_decay = 0``. Without it, everything decays (the baseline).
"""

from __future__ import annotations

import torch
from torch import nn

from .recipe import Recipe

__all__ = ["parameter_groups", "make_optimizer", "NORM_TYPES"]

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def parameter_groups(model: nn.Module, weight_decay: float, no_bias_decay: bool) -> list[dict]:
    """[{params decayed, weight_decay}, {params not decayed, weight_decay: 0}], each with the names in ``"names"``."""
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            exempt = isinstance(module, NORM_TYPES) or name == "bias" or parameter.ndim <= 1
            (no_decay if (no_bias_decay and exempt) else decay).append((full, parameter))
    groups = [{"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = parameter_groups(model, recipe.weight_decay, recipe.no_bias_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(recipe.momentum or 0.9, 0.999))
