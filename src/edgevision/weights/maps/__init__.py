"""Per-family key maps, by family and source: ``KEYMAPS["resnet"]["torchvision"]``.

One module per family; each exports ``KEYMAPS`` (family -> source -> :class:`KeyMap`); a model name
in place of a family holds maps for that model alone (VGG's layer numbering depends on its depth).
"""

from __future__ import annotations

from ..keymap import KeyMap
from . import byobnet, densenet, edgenext, ghostnet, inception, mnasnet, mobilenetv2, mobilenetv3, resnet, vgg
from . import segmentation  # the segmentation models' maps (their own block, kept apart from the classifier families)
from . import ssdlite  # detection (det branch)

__all__ = ["KEYMAPS"]

KEYMAPS: dict[str, dict[str, KeyMap]] = {}
for _module in (resnet, mobilenetv2, mobilenetv3, mnasnet, densenet, inception, vgg, byobnet, ghostnet, edgenext, ssdlite):
    for _family, _by_source in _module.KEYMAPS.items():
        KEYMAPS.setdefault(_family, {}).update(_by_source)

# weights2: timm layouts of the hybrid, attention and classic-CNN families (issue 12, part 2)
from . import compat, efficientformer, levit, nextvit, repghostnet, vgg_timm, xception  # noqa: E402

for _module in (nextvit, compat, vgg_timm, xception, levit, efficientformer, repghostnet):
    for _family, _by_source in _module.KEYMAPS.items():
        KEYMAPS.setdefault(_family, {}).update(_by_source)
from . import inception_timm  # noqa: E402  (weights3: the Inception v4 / Inception-ResNet v2 _timm variants)

for _family, _by_source in inception_timm.KEYMAPS.items():
    KEYMAPS.setdefault(_family, {}).update(_by_source)
for _family, _by_source in segmentation.KEYMAPS.items():
    KEYMAPS.setdefault(_family, {}).update(_by_source)
from . import hornet, repvgg_official, shufflenet_v2  # noqa: E402  (the authors' release layouts: megvii ShuffleNet V2, RepVGG, HorNet)

for _module in (shufflenet_v2, repvgg_official, hornet):
    for _family, _by_source in _module.KEYMAPS.items():
        KEYMAPS.setdefault(_family, {}).update(_by_source)
