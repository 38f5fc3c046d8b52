"""Which 8-bit instructions this CPU has, and the INT8 scheme ONNX Runtime should use on it.

ONNX Runtime's x86 integer GEMM kernels multiply unsigned 8-bit activations by signed 8-bit
weights (U8S8). Without VNNI they use ``VPMADDUBSW``, whose 16-bit intermediate sums can saturate;
quantizing weights to 7 bits (``reduce_range``) avoids that. With AVX-512 VNNI / AVX-VNNI
(``VPDPBUSD``) or AMX the products accumulate in 32 bits, so the full 8-bit range is safe. The
rules follow the "Choosing parameters for CPU inference" section of ``quantize_static``'s
documentation in onnxruntime 1.31 (onnxruntime/quantization/quantize.py; also
https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html, "Data type
selection" and "When to use reduce-range"):

=======================  ==================  ===========  ============
CPU                      activations         weights      reduce_range
=======================  ==================  ===========  ============
x86 without VNNI         uint8               int8         yes
x86 with VNNI or AMX     uint8               int8         no
ARM (NEON / dotprod)     int8 (symmetric)    int8         no
=======================  ==================  ===========  ============

Issue 14 measured S8S8 at 1.0-1.3x and U8S8 + reduce_range at 1.3-1.9x over fp32 on an AVX2 Zen 3
without VNNI, which agrees with the table. ``deploy`` still measures the alternatives when asked.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

__all__ = ["CpuFeatures", "QuantScheme", "cpu_features", "machine_scheme", "SCHEMES"]


@dataclass(frozen=True)
class CpuFeatures:
    architecture: str  # "x86_64", "aarch64", ...
    avx2: bool = False
    avx512: bool = False  # AVX-512 foundation + byte/word (avx512f and avx512bw)
    vnni: bool = False  # AVX-512 VNNI or AVX-VNNI: 8-bit dot products into 32-bit sums
    amx_int8: bool = False  # Sapphire Rapids tile matrix multiply on int8
    arm_dotprod: bool = False  # ARMv8.2 SDOT/UDOT ("asimddp")

    @property
    def summary(self) -> str:
        names = [name for name in ("avx2", "avx512", "vnni", "amx_int8", "arm_dotprod") if getattr(self, name)]
        return f"{self.architecture}: {', '.join(names) or 'no 8-bit SIMD extensions detected'}"

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary}


def _flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):  # x86 says "flags", ARM says "Features"
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_features(cpuinfo: str | None = None, architecture: str | None = None) -> CpuFeatures:
    """Features from ``/proc/cpuinfo`` text (read from the machine when None)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    flags = _flags(cpuinfo)
    architecture = architecture or platform.machine().lower() or "unknown"
    if architecture in ("x86_64", "amd64") and not flags and "asimd" in cpuinfo:
        architecture = "aarch64"
    return CpuFeatures(
        architecture=architecture,
        avx2="avx2" in flags,
        avx512={"avx512f", "avx512bw"} <= flags,
        vnni=bool({"avx512_vnni", "avx_vnni", "avx512vnni"} & flags),
        amx_int8="amx_int8" in flags,
        arm_dotprod="asimddp" in flags,
    )


@dataclass(frozen=True)
class QuantScheme:
    """ONNX Runtime's data types for one INT8 form: activation and weight types, and 7-bit weights."""

    name: str  # "u8s8", "u8s8_rr" (reduce_range), "s8s8", "u8u8"
    activation_type: str  # "uint8" | "int8"
    weight_type: str  # "int8" | "uint8"
    reduce_range: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


SCHEMES = {
    "u8s8_rr": QuantScheme("u8s8_rr", "uint8", "int8", True, "x86 without VNNI: 7-bit weights avoid VPMADDUBSW saturation"),
    "u8s8": QuantScheme("u8s8", "uint8", "int8", False, "VNNI/AMX accumulate 8-bit products in 32 bits: full range is safe"),
    "s8s8": QuantScheme("s8s8", "int8", "int8", False, "symmetric int8 activations: ARM kernels and ORT's QDQ default"),
    "u8u8": QuantScheme("u8u8", "uint8", "uint8", False, "unsigned weights: no saturation on any x86, slower kernels"),
}


def machine_scheme(features: CpuFeatures | None = None) -> QuantScheme:
    """The scheme ONNX Runtime's documentation recommends for this CPU (see the module docstring)."""
    features = features or cpu_features()
    if features.architecture in ("aarch64", "arm64") or features.architecture.startswith("arm"):
        return SCHEMES["s8s8"]
    if features.vnni or features.amx_int8:
        return SCHEMES["u8s8"]
    return SCHEMES["u8s8_rr"]
