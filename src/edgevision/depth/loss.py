"""The reverse Huber (berHu) loss of Laina et al. 2016, Sec. 3.2, Eq. 1 (after Owen 2007).

    B(x) = |x|                 if |x| <= c
           (x^2 + c^2) / (2c)  otherwise,     c = 0.2 * max_i |x_i| over the batch's valid pixels.

L1 for small residuals (their gradients stay large), L2 beyond c (large residuals weigh more);
continuous at |x| = c. c is computed per batch and not differentiated through, as in the paper
("c = 1/5 max_i(|y~_i - y_i|) where i indexes all pixels over each image in the current batch").
"""

from __future__ import annotations

import torch

__all__ = ["berhu_loss", "BERHU_THRESHOLD_FRACTION"]

#: Laina et al. 2016, Sec. 3.2: c is 20% of the largest absolute residual in the batch
BERHU_THRESHOLD_FRACTION = 0.2


def berhu_loss(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
               fraction: float = BERHU_THRESHOLD_FRACTION) -> torch.Tensor:
    """Mean berHu over the valid pixels (``valid``: a bool mask of the same shape; None = every pixel).

    ``prediction`` and ``target`` have one shape (e.g. [N, 1, H, W]). No valid pixel -> a zero that
    still carries a gradient (a batch of empty depth maps must not make the step NaN).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"berhu_loss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    residual = prediction - target
    if valid is not None:
        residual = residual[valid]
    if residual.numel() == 0:
        return prediction.sum() * 0.0
    absolute = residual.abs()
    c = fraction * absolute.max().detach()
    if c <= 0:  # a perfect prediction: every residual is 0
        return absolute.mean()
    quadratic = (residual**2 + c**2) / (2 * c)
    return torch.where(absolute <= c, absolute, quadratic).mean()
