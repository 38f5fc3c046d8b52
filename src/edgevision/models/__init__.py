"""Model families: spec tables and registered builders only. Importing this package registers them all."""

from . import (  # noqa: F401
    ghostnet,
    mobilenetv2,
    mobilenetv3,
    mobileone,
    repghostnet,
    repvgg,
    resnet,
    shufflenet_v1,
    shufflenet_v2,
)
