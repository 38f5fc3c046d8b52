"""Zero-init of the last normalization in each residual branch (Bag of Tricks Sec. 3.1; Goyal et al. 2017).

Rule: a block whose output is ``branch(x) + x`` gets gamma = 0 (or LayerScale = 0) at the end of
``branch``, so at initialization the block is the identity and the network behaves as a shallower
one. The rule lives with each block (``init_weights(zero_init_last=...)``, applied by
:func:`edgevision.initialization.initialize`); this module is the training recipe's entry point.
Which blocks have an identity shortcut is ``ResolvedBlock.identity_shortcut``.
"""

from __future__ import annotations

from torch import nn

from ..initialization import initialize

__all__ = ["zero_init_residual_norms"]


def zero_init_residual_norms(model: nn.Module) -> list[str]:
    """Set the last scale of every residual branch to 0; returns the zeroed parameters' names."""
    return initialize(model, zero_init_last=True)
