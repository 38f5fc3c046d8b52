"""edgevision: hardware-aware efficient vision networks.

Build networks from one declarative spec, count them, convert them to their deploy form.
"""

from .analysis import CostReport, DevicePeaks, analyze, device_peaks
from .blocks import BlockSpec, ResolvedBlock
from .builder import Network, build
from .checkpoint import load, save
from .counting import count_macs, count_params
from .deploy import deploy, quantize
from .export import export_onnx
from .initialization import initialize
from .latency import measure
from .network import NetworkSpec, StageSpec
from .registry import create_model, get_spec, list_models, register_model
from .reparam import is_deploy_form, reparameterize
from .resolve import ResolvedNetwork, resolve, resolve_block
from .spec import Spec
from .weights import WeightImportError, load_pretrained
from . import prune  # noqa: E402  (ev.prune.shrink: after the modules it builds on)

__version__ = "0.1.0"

__all__ = [
    "BlockSpec",
    "CostReport",
    "DevicePeaks",
    "Network",
    "NetworkSpec",
    "ResolvedBlock",
    "ResolvedNetwork",
    "Spec",
    "StageSpec",
    "WeightImportError",
    "analyze",
    "build",
    "count_macs",
    "count_params",
    "deploy",
    "create_model",
    "device_peaks",
    "export_onnx",
    "initialize",
    "get_spec",
    "is_deploy_form",
    "list_models",
    "load",
    "load_pretrained",
    "measure",
    "quantize",
    "register_model",
    "reparameterize",
    "resolve",
    "resolve_block",
    "save",
]
