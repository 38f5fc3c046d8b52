"""Learning rate per step: linear warm-up, then cosine, step or constant (Bag of Tricks Secs. 3.1, 5.1).

Warm-up rises linearly from ``lr / warmup_steps`` to ``lr`` over ``warmup_steps`` steps (the
paper: "from 0 to the initial learning rate"); cosine then follows
``lr_t = 0.5 (1 + cos(pi t / T)) lr`` over the remaining T steps; "step" multiplies by 0.1 at
50% and 75% of training. The rate is set per optimizer step, not per epoch.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, schedule: str = "cosine") -> float:
    """The learning rate of optimizer step ``step`` (0-based) out of ``total_steps``."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1 after warm-up
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress)) * base_lr
    if schedule == "step":
        return base_lr * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
    raise ValueError(f"unknown schedule {schedule!r}; use cosine, step or constant")
