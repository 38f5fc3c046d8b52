"""Imported weights give the library's FEATURE MAPS, not only its logits, in float64.

Global pooling hides small per-map differences (a BatchNorm eps of 1e-5 where torchvision's
MobileNetV3 uses 1e-3 moves the maps by ~1e-3 of their scale but the logits by only 7e-5), and a
dense head reads the maps, so each pyramid level of ``create_model(name, features_only=True,
pretrained=FILE)`` is compared with the reference's map at the same reduction: the output of the
last torchvision ``features.N`` module at that size (the last block at a reduction, our level), or
timm's ``forward_intermediates``. Random weights and random BatchNorm statistics, as the logit suite.

``PYTHONPATH=src EDGEVISION_REFERENCE_TESTS=1 /work/refvenv/bin/python -m pytest tests/reference/test_feature_maps_reference.py``
"""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import edgevision as ev

sys.path.insert(0, str(Path(__file__).parent))
from test_reference_logits import randomise  # noqa: E402

TOLERANCE = 1e-9  # float64: a mapping or eps error shows at 1e-4 .. 1e-2, rounding at 1e-15
SIZE = 64

CASES = [
    ("mobilenetv3_large_100", "torchvision", "mobilenet_v3_large"),
    ("mobilenetv3_small_100", "torchvision", "mobilenet_v3_small"),
    ("mobilenetv3_large_100", "timm", "mobilenetv3_large_100"),
    ("mobilenetv3_small_075", "timm", "mobilenetv3_small_075"),
    ("resnet50", "torchvision", "resnet50"),
]


def _reference(library: str, name: str) -> torch.nn.Module:
    if library == "torchvision":
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    import timm

    return timm.create_model(name, pretrained=False)


def _torchvision_maps(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every intermediate map of torchvision's body in order (``features.N`` or ResNet's stem and layers)."""
    if hasattr(model, "features"):
        modules = list(model.features)
    else:
        modules = [torch.nn.Sequential(model.conv1, model.bn1, model.relu), model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4]
    maps = []
    for module in modules:
        x = module(x)
        maps.append(x)
    return maps


def _at_reduction(maps: list[torch.Tensor], channels: int, reduction: int) -> torch.Tensor:
    """The last map with ``channels`` channels at 1/``reduction`` of the input."""
    found = [m for m in maps if m.shape[1] == channels and m.shape[-1] == SIZE // reduction]
    assert found, f"the reference has no {channels}-channel map at 1/{reduction}"
    return found[-1]


@pytest.mark.parametrize("ours, library, theirs", CASES, ids=[f"{o}<-{l}:{t}" for o, l, t in CASES])
def test_feature_maps_match_reference_in_float64(ours, library, theirs, tmp_path):
    torch.manual_seed(0)
    reference = randomise(_reference(library, theirs))
    state = {key: value.detach().clone().contiguous() for key, value in reference.state_dict().items()}
    save_file(state, str(tmp_path / "weights.safetensors"))
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    reference.double()
    model = ev.create_model(ours, features_only=True, pretrained=tmp_path / "weights.safetensors", pretrained_source=library)
    levels = model.feature_info
    with torch.no_grad():
        if library == "torchvision":
            maps = _torchvision_maps(reference, x)
        else:
            maps = reference.forward_intermediates(x, intermediates_only=True)
        mine = model.double().eval()(x)
    assert len(mine) == len(levels) >= 4
    for level, our_map in zip(levels, mine):
        expected = _at_reduction(maps, level.channels, level.reduction)
        difference = float((our_map - expected).abs().max() / expected.abs().max())
        assert difference <= TOLERANCE, f"level 1/{level.reduction} ({level.channels} ch) differs by {difference:.2e} of its scale"
