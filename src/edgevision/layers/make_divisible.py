"""Channel rounding shared by every width multiplier (the rule of the MobileNet reference code)."""

from __future__ import annotations

__all__ = ["make_divisible"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping more than 10%.

    This is the rule of the TensorFlow MobileNet reference (``_make_divisible``), which
    MobileNetV2/V3, GhostNet and RepGhost all use; ``divisor=1`` rounds to the nearest integer.
    """
    if divisor < 1:
        raise ValueError(f"make_divisible divisor must be >= 1, got {divisor}")
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:  # rounding down by more than 10% would starve the layer
        rounded += divisor
    return rounded
