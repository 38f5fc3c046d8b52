"""Compression that ships speed: structured pruning on the spec, importance, NetAdapt, distillation.

``shrink(model, widths)`` turns a network into a smaller ordinary network (spec + weights);
``groups_of(model)`` lists the channel groups it can shrink; ``importance`` scores channels;
``netadapt`` chooses widths step by step against measured or predicted latency.
"""

from .groups import ChannelGroup, channel_groups, has_identity_shortcut
from .importance import CRITERIA, importance
from .spec import FixedWidthSpec
from .surgery import PruneError, groups_of, select_keep, shrink, widths_for_ratio

__all__ = [
    "CRITERIA",
    "ChannelGroup",
    "FixedWidthSpec",
    "PruneError",
    "channel_groups",
    "groups_of",
    "has_identity_shortcut",
    "importance",
    "select_keep",
    "shrink",
    "widths_for_ratio",
]
