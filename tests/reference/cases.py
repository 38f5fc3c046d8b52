"""The reference counterparts of zoo models: (our name, library, their name, input size, source).

``source`` is the key map the import is asked to use (``None``: inferred from the file).
Input sizes are the smallest that every stage of both networks accepts, to keep the suite fast.
"""

from typing import NamedTuple


class Case(NamedTuple):
    ours: str
    library: str  # "torchvision" or "timm"
    theirs: str
    size: int = 64
    source: str | None = None  # default: the library's name

    @property
    def id(self) -> str:
        return f"{self.ours}<-{self.library}:{self.theirs}"


TV, TIMM = "torchvision", "timm"

CASES = [
    # ResNet family: torchvision and timm share names
    Case("resnet18", TV, "resnet18"),
    Case("resnet34", TV, "resnet34"),
    Case("resnet50", TV, "resnet50"),
    Case("resnet101", TV, "resnet101"),
    Case("resnext50_32x4d", TV, "resnext50_32x4d"),
    Case("wide_resnet50_2", TV, "wide_resnet50_2"),
    Case("resnet18", TIMM, "resnet18"),
    Case("resnet50", TIMM, "resnet50"),
    # MobileNetV2
    Case("mobilenetv2_100", TV, "mobilenet_v2"),
    Case("mobilenetv2_050", TIMM, "mobilenetv2_050"),
    Case("mobilenetv2_100", TIMM, "mobilenetv2_100"),
    Case("mobilenetv2_140", TIMM, "mobilenetv2_140"),
]
CASES += [
    Case("mobilenetv3_large_100", TV, "mobilenet_v3_large"),
    Case("mobilenetv3_small_100", TV, "mobilenet_v3_small"),
    Case("mobilenetv3_large_075", TIMM, "mobilenetv3_large_075"),
    Case("mobilenetv3_large_100", TIMM, "mobilenetv3_large_100"),
    Case("mobilenetv3_small_075", TIMM, "mobilenetv3_small_075"),
    Case("mobilenetv3_small_100", TIMM, "mobilenetv3_small_100"),
]
CASES += [
    Case("mnasnet_100", TV, "mnasnet1_0"),
    Case("mnasnet_100", TIMM, "mnasnet_100"),
    Case("mnasnet_a1", TIMM, "semnasnet_100"),
]
CASES += [
    Case("densenet121", TV, "densenet121"),
    Case("densenet121", TIMM, "densenet121"),
]
CASES += [
    Case("googlenet", TV, "googlenet"),
    Case("inception_v3", TV, "inception_v3", size=96),
    Case("inception_v3", TIMM, "inception_v3", size=96),
]
CASES += [Case(name, TV, name, size=32) for name in ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn")]
CASES += [Case(f"mobileone_s{i}", TIMM, f"mobileone_s{i}") for i in range(5)]
CASES += [Case(name, TIMM, name) for name in ("repvgg_a0", "repvgg_a1", "repvgg_b0")]
CASES += [Case(name, TIMM, name) for name in ("ghostnet_050", "ghostnet_100", "ghostnet_130")]
CASES += [Case(name, TIMM, name) for name in ("edgenext_xx_small", "edgenext_x_small", "edgenext_small")]
# weights2: timm-only families (one case per family at the smallest input both accept)
CASES += [
    Case("nextvit_small", TIMM, "nextvit_small", size=32),
]
CASES += [  # compatible variants (models/compat.py): the library's layout beside the release's
    Case("skresnext50_32x4d_timm", TIMM, "skresnext50_32x4d", size=32),
    Case("seresnet50_timm", TIMM, "seresnet50", size=32),
]
CASES += [Case(name, TIMM, name, size=32) for name in ("vgg11", "vgg16_bn")]  # timm's conv-form classifier
CASES += [Case("xception_timm", TIMM, "legacy_xception", size=96)]
CASES += [Case("levit_128s", TIMM, "levit_128s", size=224)]  # attention biases are tied to the 14x14 grid of 224 px
CASES += [Case("efficientformer_l1", TIMM, "efficientformer_l1", size=224)]  # attention biases tied to the 7x7 grid
CASES += [Case("repghostnet_100", TIMM, "repghostnet_100")]
# weights3: the TF-slim Inceptions as timm ports them (BatchNorm with a scale; models/compat.py)
CASES += [Case("inception_v4_timm", TIMM, "inception_v4", size=96), Case("inception_resnet_v2_timm", TIMM, "inception_resnet_v2", size=96)]
# the other widths of families whose map is verified above (they were "not run" in docs/pretrained.md)
CASES += [Case("nextvit_base", TIMM, "nextvit_base", size=32)]
CASES += [Case(name, TIMM, name, size=224) for name in ("levit_128", "levit_192", "levit_256")]  # 14x14-grid biases
CASES += [Case(name, TIMM, name, size=224) for name in ("efficientformer_l3", "efficientformer_l7")]  # 7x7-grid biases
CASES += [Case(name, TIMM, name) for name in ("repghostnet_050", "repghostnet_150", "repghostnet_200")]
CASES += [Case(f"shufflenet_v2_x{size}_tv", TV, f"shufflenet_v2_x{size}") for size in ("0_5", "1_0", "1_5", "2_0")]  # torchvision's units
# weights4: timm's FBNet-C (no conv bias, expand conv kept in its e1 blocks; models/compat.py)
CASES += [Case("fbnetc_100_timm", TIMM, "fbnetc_100")]
