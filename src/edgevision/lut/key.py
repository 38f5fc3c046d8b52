"""The block key: canonical JSON of everything that decides one block's latency, and nothing else.

Two blocks with the same key cost the same on the same machine, whichever network they sit in:
the key holds the block spec (kind and fields), the resolved widths, stride and input H x W, the
batch, runtime, threads, dtype and model form, but not the block's path or stage index. It is
plain JSON with sorted keys (no ``hash()``, so it is stable across processes and Python
versions) and carries :data:`KEY_VERSION`, bumped whenever its content changes meaning.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ..blocks.base import ResolvedBlock

__all__ = ["KEY_VERSION", "MeasurementSetting", "block_description", "block_from_description", "block_from_key", "block_key"]

KEY_VERSION = 1

MODEL_FORMS = ("deploy", "train")


@dataclass(frozen=True, kw_only=True)
class MeasurementSetting:
    """How a block (or network) is run: what the key records beside the block itself."""

    runtime: str = "ort"
    threads: int = 2
    batch: int = 1
    dtype: str = "float32"
    model_form: str = "deploy"  # "deploy" measures what ships (BatchNorm folded, branches merged)

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"MeasurementSetting.threads must be >= 1, got {self.threads}")
        if self.batch < 1:
            raise ValueError(f"MeasurementSetting.batch must be >= 1, got {self.batch}")
        if self.model_form not in MODEL_FORMS:
            raise ValueError(f"MeasurementSetting.model_form must be 'deploy' or 'train', got {self.model_form!r}")
        if self.dtype != "float32":
            raise ValueError(f"MeasurementSetting.dtype must be 'float32' (the only dtype measured so far), got {self.dtype!r}")

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "threads": self.threads, "batch": self.batch, "dtype": self.dtype, "model_form": self.model_form}


def block_description(block: ResolvedBlock) -> dict:
    """What of a resolved block decides its latency: spec fields, widths, stride, input H x W (and dilation).

    ``dilation`` appears only where ``output_stride`` set it (!= 1), so every undilated block keeps the
    key it had before dilation existed and committed tables stay valid.
    """
    description = {
        "spec": block.spec.to_dict(),
        "in_channels": block.in_channels,
        "out_channels": block.out_channels,
        "mid_channels": block.mid_channels,
        "se_channels": block.se_channels,
        "stride": block.stride,
        "input_size": list(block.input_size),
    }
    if block.dilation != 1:
        description["dilation"] = block.dilation
    return description


def block_from_description(description: dict) -> ResolvedBlock:
    """The resolved block a :func:`block_description` describes (path-free: it sits at ``stages.0.0``)."""
    from ..spec import Spec

    spec = Spec.from_dict(description["spec"])
    size = tuple(description["input_size"])
    stride = description["stride"]
    # a stride that output_stride turned into dilation keeps H x W
    output_size = size if stride != getattr(spec, "stride", 1) else spec.output_size(size)
    return ResolvedBlock(
        section="stages",
        stage_index=0,
        block_index=0,
        spec=spec,
        in_channels=description["in_channels"],
        out_channels=description["out_channels"],
        mid_channels=description["mid_channels"],
        se_channels=description["se_channels"],
        stride=stride,
        input_size=size,
        output_size=output_size,
        dilation=description.get("dilation", 1),
    )


def block_from_key(key: str) -> tuple[ResolvedBlock, MeasurementSetting]:
    """Rebuild the resolved block and the setting a key describes (tables store keys, not modules)."""
    data = json.loads(key)
    setting = MeasurementSetting(
        runtime=data["runtime"], threads=data["threads"], batch=data["batch"], dtype=data["dtype"], model_form=data["model_form"]
    )
    return block_from_description(data["block"]), setting


def block_key(block: ResolvedBlock, setting: MeasurementSetting) -> str:
    """Canonical JSON key of ``block`` measured under ``setting`` (same block anywhere -> same key).

    Deploy-form keys describe the block by its spec's ``deploy_equivalent()``: specs that differ only in
    what re-parameterization removes (a DBB's branch subset) deploy to one module and share one entry.
    """
    if setting.model_form == "deploy":
        canonical = getattr(block.spec, "deploy_equivalent", None)
        if canonical is not None and (spec := canonical()) != block.spec:
            block = dataclasses.replace(block, spec=spec)
    payload = {"version": KEY_VERSION, "block": block_description(block), **setting.to_dict()}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
