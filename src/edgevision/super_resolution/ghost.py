"""GhostSR's shifted ghost features (Nie et al., "GhostSR: Learning Ghost Features for Efficient Image
Super-Resolution", 2021, Sec. 3).

A ghost convolution produces ``out/ratio`` *intrinsic* channels with an ordinary convolution and the
other channels as *shifted copies* of them: each ghost channel is its intrinsic channel moved by one of
the 9 offsets of a 3x3 window (zero-filled at the border). The shift direction is learned: every ghost
channel holds 9 logits, and training samples a one-hot choice with straight-through Gumbel-softmax
(Sec. 3.2, Eq. 5-6), applied as a depthwise 3x3 convolution with that one-hot kernel. In eval and in the
deploy form the choice is the argmax, so a shift costs no multiplications on hardware that shifts
memory (we count it as the depthwise conv it is written as, an upper bound).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GhostShiftConv"]


class GhostShiftConv(nn.Module):
    """conv3x3 ``in -> out/ratio`` + learnable shifts making the remaining ``out - out/ratio`` channels.

    [N, in, H, W] -> [N, out, H, W]. ``reparameterize()`` freezes the argmax shifts into a fixed kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int = 2, groups: int = 1, tau: float = 1.0) -> None:
        super().__init__()
        if out_channels % ratio:
            raise ValueError(f"GhostShiftConv: out_channels {out_channels} must be divisible by ratio {ratio}")
        self.intrinsic_channels = out_channels // ratio
        self.ghost_channels = out_channels - self.intrinsic_channels
        self.tau = tau
        self.primary = nn.Conv2d(in_channels, self.intrinsic_channels, 3, padding=1, groups=groups)
        # logits over the 9 offsets; the centre (no shift) starts slightly preferred, as an identity ghost
        logits = torch.zeros(self.ghost_channels, 9)
        logits[:, 4] = 1.0
        self.shift_logits = nn.Parameter(logits)
        self.register_buffer("fixed_kernel", torch.empty(0), persistent=False)

    def _one_hot(self) -> torch.Tensor:
        if self.training:
            return F.gumbel_softmax(self.shift_logits, tau=self.tau, hard=True)  # straight-through, [G, 9]
        return F.one_hot(self.shift_logits.argmax(1), 9).to(self.shift_logits.dtype)

    def shift_kernel(self) -> torch.Tensor:
        """[G, 1, 3, 3] one-hot depthwise kernels (the current argmax in eval)."""
        return self._one_hot().view(self.ghost_channels, 1, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary(x)  # [N, C/r, H, W]
        # ghost channel j copies intrinsic channel j mod (C/r)
        source = intrinsic if self.ghost_channels == self.intrinsic_channels else intrinsic.repeat_interleave(
            -(-self.ghost_channels // self.intrinsic_channels), dim=1)[:, : self.ghost_channels]
        kernel = self.fixed_kernel if self.fixed_kernel.numel() else self.shift_kernel()
        ghost = F.conv2d(source, kernel, padding=1, groups=self.ghost_channels)
        return torch.cat([intrinsic, ghost], dim=1)

    def reparameterize(self) -> None:
        """Deploy form: the argmax shifts as a fixed buffer (no sampling, no logits in the graph)."""
        with torch.no_grad():
            self.fixed_kernel = F.one_hot(self.shift_logits.argmax(1), 9).to(self.shift_logits.dtype).view(self.ghost_channels, 1, 3, 3)
