"""nn-Meter's fusion detection (T1 + T2 - T12 > alpha * min(T1, T2)) with a fake timer: no timing (issue 13)."""

from __future__ import annotations

import pytest
from torch import nn

from edgevision.analysis.fusion import FusionTest, detect_fusion, is_fused, standard_pairs


def test_rule_is_nn_meters_with_alpha_one_half():
    assert is_fused(1.0, 0.4, 1.1)  # saves 0.3 > 0.5 * 0.4
    assert not is_fused(1.0, 0.4, 1.25)  # saves 0.15 < 0.2: two kernels
    assert not is_fused(1.0, 0.4, 1.2)  # exactly alpha * min is not enough
    assert is_fused(1.0, 0.4, 1.25, alpha=0.3)


def fake_timer(costs: dict[str, float], pair_discount: float):
    """ms per module type; a Sequential costs the sum of its parts minus ``pair_discount`` x the cheaper one."""
    seen = []

    def timer(module: nn.Module, shape: tuple[int, ...]) -> float:
        seen.append((type(module).__name__, shape))
        if isinstance(module, nn.Sequential):
            parts = [costs[type(m).__name__] for m in module]
            return sum(parts) - pair_discount * min(parts)
        return costs[type(module).__name__]

    return timer, seen


def test_detect_fusion_times_each_operator_at_its_own_input_shape_and_the_pair():
    timer, seen = fake_timer({"Conv2d": 2.0, "MaxPool2d": 0.5}, pair_discount=0.9)
    result = detect_fusion(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.MaxPool2d(2), (1, 4, 16, 16), timer)
    assert seen == [("Conv2d", (1, 4, 16, 16)), ("MaxPool2d", (1, 8, 8, 8)), ("Sequential", (1, 4, 16, 16))]
    assert isinstance(result, FusionTest) and result.fused and result.saved_ms == pytest.approx(0.45)
    assert result.to_dict()["name"] == "Conv2d+MaxPool2d"
    timer, _ = fake_timer({"Conv2d": 2.0, "MaxPool2d": 0.5}, pair_discount=0.1)
    assert not detect_fusion(nn.Conv2d(4, 8, 3), nn.MaxPool2d(2), (1, 4, 16, 16), timer).fused


def test_standard_pairs_chain_and_bad_alpha_is_a_clear_error():
    pairs = standard_pairs(channels=8, size=8)
    assert {"conv+relu", "conv+batchnorm", "dwconv+relu", "conv+maxpool"} <= set(pairs)
    timer, _ = fake_timer({"Conv2d": 1.0, "ReLU": 0.2, "Hardswish": 0.2, "BatchNorm2d": 0.2, "MaxPool2d": 0.2}, 1.0)
    assert all(detect_fusion(a, b, shape, timer, name=n).fused for n, (a, b, shape) in pairs.items())
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\], got 0"):
        is_fused(1.0, 1.0, 1.0, alpha=0)
    with pytest.raises(ValueError, match="latencies must be positive"):
        is_fused(1.0, 0.0, 1.0)
