"""Deployment: INT8 quantization (static PTQ, per-block mixed precision, NNCF for OpenVINO), verification, and
``deploy()``, which ships the fastest verified form on this machine.

``quantize(model_or_onnx, calibration)`` -> QDQ ONNX for ONNX Runtime with this CPU's INT8 scheme
(:mod:`.isa`); ``mixed_precision`` keeps the blocks in fp32 that cost accuracy or do not pay in
time; ``deploy`` builds every runtime x precision candidate, verifies and measures them.
"""

from .calibration import CalibrationError, DeploySplits, ImageSet, check_images, deploy_splits
from .isa import SCHEMES, CpuFeatures, QuantScheme, cpu_features, machine_scheme
from .mixed import MixedPlan, UnitReport, mixed_precision
from .pipeline import Candidate, DeployError, DeployResult, deploy
from .quantize import CALIBRATION_METHODS, QuantizeError, QuantizeReport, quantize

__all__ = [
    "CALIBRATION_METHODS",
    "SCHEMES",
    "CalibrationError",
    "Candidate",
    "CpuFeatures",
    "DeployError",
    "DeployResult",
    "DeploySplits",
    "ImageSet",
    "MixedPlan",
    "QuantScheme",
    "QuantizeError",
    "QuantizeReport",
    "UnitReport",
    "check_images",
    "cpu_features",
    "deploy",
    "deploy_splits",
    "machine_scheme",
    "mixed_precision",
    "quantize",
]
