"""Primitives: the building material of every block (no specs here)."""

from .activations import ACTIVATIONS, get_activation
from .affine import ChannelAffine
from .channel_shuffle import ChannelShuffle, channel_shuffle
from .conv_norm_act import ConvNormAct, same_padding
from .fusion import conv_from_kernel, fold_batchnorm, identity_kernel, pad_kernel
from .make_divisible import make_divisible
from .squeeze_excite import SqueezeExcite

__all__ = [
    "ACTIVATIONS",
    "ChannelAffine",
    "ChannelShuffle",
    "ConvNormAct",
    "SqueezeExcite",
    "channel_shuffle",
    "conv_from_kernel",
    "fold_batchnorm",
    "get_activation",
    "identity_kernel",
    "make_divisible",
    "pad_kernel",
    "same_padding",
]
