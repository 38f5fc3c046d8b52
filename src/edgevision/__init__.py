"""edgevision: hardware-aware efficient vision networks.

Build networks from one declarative spec, count them, convert them to their deploy form.
"""

from .blocks import BlockSpec, ResolvedBlock
from .builder import Network, build
from .counting import count_macs, count_params
from .network import NetworkSpec, StageSpec
from .registry import create_model, get_spec, list_models, register_model
from .reparam import is_deploy_form, reparameterize
from .resolve import ResolvedNetwork, resolve
from .spec import Spec

__version__ = "0.1.0"

__all__ = [
    "BlockSpec",
    "Network",
    "NetworkSpec",
    "ResolvedBlock",
    "ResolvedNetwork",
    "Spec",
    "StageSpec",
    "build",
    "count_macs",
    "count_params",
    "create_model",
    "get_spec",
    "is_deploy_form",
    "list_models",
    "register_model",
    "reparameterize",
    "resolve",
]
