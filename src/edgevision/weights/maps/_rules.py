"""Rule fragments the per-family key maps are written with: each returns plain ``(regex, template)`` pairs."""

from __future__ import annotations

import re

__all__ = ["conv_bn", "bn", "linear", "same", "downsample_layers"]

_BN_TENSORS = "(weight|bias|running_mean|running_var|num_batches_tracked)"


def _next_group(pattern: str) -> int:
    return re.compile(pattern).groups + 1


def bn(ours: str, theirs: str) -> tuple[tuple[str, str], ...]:
    """A BatchNorm at regex ``ours`` (our module path) stored at template ``theirs``."""
    return ((rf"{ours}\.{_BN_TENSORS}", f"{theirs}.{{{_next_group(ours)}}}"),)


def conv_bn(ours: str, conv: str, norm: str) -> tuple[tuple[str, str], ...]:
    """Our ``ConvNormAct`` (``<ours>.conv`` + ``<ours>.norm``) stored as a separate conv and BatchNorm."""
    return ((rf"{ours}\.conv\.(weight|bias)", f"{conv}.{{{_next_group(ours)}}}"),) + bn(rf"{ours}\.norm", norm)


def linear(ours: str, theirs: str) -> tuple[tuple[str, str], ...]:
    """A module with ``weight``/``bias`` (Linear, conv, LayerNorm) at ``ours`` stored at ``theirs``."""
    return ((rf"{ours}\.(weight|bias)", f"{theirs}.{{{_next_group(ours)}}}"),)


def same() -> tuple[tuple[str, str], ...]:
    """Every key unchanged (a layout identical to ours)."""
    return ((r"(.*)", "{1}"),)


def downsample_layers() -> tuple[tuple[str, str], ...]:
    """ConvNeXt-style releases (EdgeNeXt's, HorNet's): ``downsample_layers.0`` is the stem (conv ``0``, LayerNorm
    ``1``; our ``stem.0``) and ``downsample_layers.{s}`` the downsample opening stage ``s`` >= 1 (LayerNorm ``0``,
    conv ``1``), which we count as that stage's block 0."""
    return (
        *linear(r"stem\.0\.conv", "downsample_layers.0.0"),
        *linear(r"stem\.0\.norm", "downsample_layers.0.1"),
        *linear(r"stages\.([1-9])\.0\.norm", "downsample_layers.{1}.0"),
        *linear(r"stages\.([1-9])\.0\.conv", "downsample_layers.{1}.1"),
    )
