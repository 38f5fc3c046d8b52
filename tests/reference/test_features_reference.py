"""Feature pyramids against timm 1.0.31: channels per reduction equal timm's ``feature_info`` for every zoo
model timm has, except the documented places where timm taps another block (docs/features.md).

Runs in the reference venv (``PYTHONPATH=src /work/refvenv/bin/python -m pytest tests/reference/test_features_reference.py``);
skipped where timm is not installed. timm models are created on the meta device: only their
``feature_info`` is read, so the whole zoo costs seconds.
"""

from __future__ import annotations

import warnings

import pytest

timm = pytest.importorskip("timm")
torch = pytest.importorskip("torch")

import edgevision as ev  # noqa: E402

# Where timm taps a different block at a reduction than ours (the last block output at that reduction),
# as {reduction: (our channels, timm's channels)}; each entry is asserted to still hold, so the list cannot go stale.
KNOWN_DIFFERENCES = {
    # timm's ghostnet.py records the stage that carries the stride (blocks.5: 80 ch), not the last
    # stage at 1/16 (blocks.6: the 112-ch SE stage); same for RepGhost, which copies that code
    **{name: {16: (ours, theirs)} for name, ours, theirs in (
        ("ghostnet_050", 56, 40), ("ghostnet_100", 112, 80), ("ghostnet_130", 144, 104),
        ("repghostnet_050", 56, 40), ("repghostnet_100", 112, 80), ("repghostnet_150", 168, 120), ("repghostnet_200", 224, 160),
    )},
    # timm's Inception v4 taps Mixed_3a (160 ch); the last block at 1/4 is Mixed_4a (192 ch)
    "inception_v4": {4: (192, 160)},
    # timm's VGG taps each stage before its max pool (64 ch at 1/1, ...); our VGG stage block ends with the
    # pool, so a level is the pooled map: timm's level at 1/r is ours at 1/2r
    **{name: {1: (None, 64), 2: (64, 128), 4: (128, 256), 8: (256, 512)} for name in ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn")},
}


def _timm_levels(name: str) -> dict[int, int] | None:
    if not timm.is_model(name):
        return None
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # deprecated-name notices (mnasnet_a1 -> semnasnet_100, xception -> legacy_xception)
        model = timm.create_model(name, pretrained=False)
    return {info["reduction"]: info["num_chs"] for info in model.feature_info}


def _our_levels(name: str) -> dict[int, int]:
    return {level.reduction: level.channels for level in ev.resolve(ev.get_spec(name)).feature_info()}


COMPARED = [name for name in ev.list_models() if timm.is_model(name)]


def test_most_of_the_zoo_has_a_timm_counterpart():
    assert len(COMPARED) >= 54, COMPARED  # 54 of 81 with timm 1.0.31


@pytest.mark.parametrize("name", COMPARED)
def test_channels_per_reduction_equal_timm(name):
    theirs, ours = _timm_levels(name), _our_levels(name)
    differences = {r: (ours.get(r), c) for r, c in theirs.items() if ours.get(r) != c}
    assert differences == KNOWN_DIFFERENCES.get(name, {})


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", "resnet50", "ghostnet_100"])
def test_feature_maps_match_timm_features_only_shapes(name):
    """Beyond feature_info: both backbones, run on one input, return maps of the same shapes (where channels agree)."""
    x = torch.randn(1, 3, 64, 64)
    reference = timm.create_model(name, pretrained=False, features_only=True).eval()
    ours = ev.create_model(name, features_only=True).eval()
    with torch.no_grad():
        theirs = {m.shape[-1]: tuple(m.shape) for m in reference(x)}
        mine = {m.shape[-1]: tuple(m.shape) for m in ours(x)}
    known = KNOWN_DIFFERENCES.get(name, {})
    for width, shape in theirs.items():
        if 64 // width not in known:
            assert mine[width] == shape, (name, width)
