"""Blocks: one file per family, each holding its frozen spec beside its module."""

from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from .conv import *  # noqa: F401,F403
from .depthwise_separable import *  # noqa: F401,F403
from .ghost import *  # noqa: F401,F403
from .head import *  # noqa: F401,F403
from .inverted_residual import *  # noqa: F401,F403
from .mobileone import *  # noqa: F401,F403
from .repghost import *  # noqa: F401,F403
from .repvgg import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .selective_kernel import *  # noqa: F401,F403
from .shufflenet_v1 import *  # noqa: F401,F403
from .shufflenet_v2 import *  # noqa: F401,F403
