"""Train form -> deploy form (structural re-parameterization).

Protocol: a module with a fused form has a ``reparameterize()`` method that rewrites *itself*
into that form in place (RepVGG Sec. 3.3; MobileOne Sec. 3.1; RepGhost Sec. 3.2). One walker,
:func:`reparameterize`, converts a whole model by calling it children-first, so a block can
rely on its sub-modules being fused already. ``ConvNormAct`` implements it to fold BatchNorm,
so "BatchNorm folded everywhere" falls out of the same walk.
"""

from __future__ import annotations

import copy
from typing import Protocol, runtime_checkable

from torch import nn

__all__ = ["Reparameterizable", "reparameterize", "is_deploy_form"]


@runtime_checkable
class Reparameterizable(Protocol):
    def reparameterize(self) -> None: ...


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return the deploy form of ``model`` (in eval mode). Outputs match the train form in eval mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"reparameterize() needs an nn.Module, got {type(model).__name__}")
    deployed = model if inplace else copy.deepcopy(model)
    deployed.eval()
    # modules() is pre-order, so its reverse visits every child before its parent
    for module in reversed(list(deployed.modules())):
        if isinstance(module, Reparameterizable):
            module.reparameterize()
    return deployed.eval()


def is_deploy_form(model: nn.Module) -> bool:
    """True when no BatchNorm is left (every one folded into a conv or linear) and no module reports
    unfused train-time branches (``has_train_branches``, for BatchNorm-free blocks such as EFDN's EDBB)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) or getattr(m, "has_train_branches", False) for m in model.modules())
