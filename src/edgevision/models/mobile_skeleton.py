"""The MobileNet-style network skeleton the mobile families share.

    3x3 conv, stride 2 (stem) -> the family's stages -> 1x1 conv (its own stage)
      -> global pool -> [hidden linear, fixed width] -> dropout -> classifier

MobileNetV2 (Sandler et al. 2018, Table 2), MnasNet (Tan et al. 2019, Fig. 7), MobileNetV3
(Howard et al. 2019, Tables 1-2), GhostNet (Han et al. 2020, Table 1) and RepGhostNet (Chen et al.
2022) differ only in the stage table and the arguments below; each family module keeps its table.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec
from ..network import NetworkSpec, StageSpec

__all__ = ["mobile_network"]


def mobile_network(
    name: str,
    stages: tuple[StageSpec, ...],
    *,
    activation: str,
    stem_channels: int,
    last_channels: int,
    last_width_scaling: str = "scaled",
    head_hidden_features: int | None = None,
    dropout: float = 0.2,
    width_multiplier: float = 1.0,
    channel_divisor: int = 8,
    last_conv_is_feature: bool = False,
) -> NetworkSpec:
    """A network spec with the skeleton above.

    ``last_width_scaling`` is how the last 1x1 conv reacts to the multiplier ("scaled"; MobileNetV2:
    "at_least_base", MnasNet: "fixed"); ``head_hidden_features`` adds the fixed-width hidden layer of
    MobileNetV3 / GhostNet (same activation as the network). ``last_conv_is_feature``: the last 1x1
    conv is a feature level (MobileNetV3, as timm); elsewhere it only feeds the classifier.
    """
    last_conv = ConvNormActSpec(out_channels=last_channels, kernel_size=1, activation=activation, width_scaling=last_width_scaling)
    if head_hidden_features is None:
        head = ClassifierHeadSpec(dropout=dropout)
    else:
        head = ClassifierHeadSpec(
            hidden_features=head_hidden_features, hidden_activation=activation, hidden_width_scaling="fixed", dropout=dropout
        )
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=stem_channels, kernel_size=3, stride=2, activation=activation),),
        stages=tuple(stages) + (StageSpec(blocks=(last_conv,)),),
        head=head,
        pre_logits_stages=0 if last_conv_is_feature else 1,  # the last 1x1 conv stage feeds the classifier (as timm)
        width_multiplier=width_multiplier,
        channel_divisor=channel_divisor,
    )
