"""HorNet (Rao et al. 2022) in the authors' release layout (raoyongming/HorNet ``hornet.py``; timm 1.0.31 and
torchvision have no HorNet).

Our zoo model is that release's ``hornet_tiny_7x7`` / ``hornet_small_7x7``; the names differ as in ConvNeXt-style
code: ``downsample_layers.0`` is the stem (4x4 conv ``0``, LayerNorm ``1``) and ``downsample_layers.{1..3}`` the
downsamples (LayerNorm ``0``, 2x2 conv ``1``), which we count as block 0 of stages 1-3, so their block ``b`` is our
``b + 1`` there. A block: ``norm1``, ``gnconv.proj_in`` / ``dwconv`` / ``proj_out`` / ``pws.{k}``, ``norm2``,
``pwconv1`` / ``pwconv2`` (Linear), ``gamma1`` / ``gamma2``; the classifier ``norm`` + ``head``.
"""

from ..keymap import KeyMap
from ._rules import downsample_layers, linear

_INNER = (("norm1", "norm1"), ("gnconv.proj_in", "gnconv.proj_in"), ("gnconv.depthwise", "gnconv.dwconv"),
          ("gnconv.proj_out", "gnconv.proj_out"), ("norm2", "norm2"), ("fc1", "pwconv1"), ("fc2", "pwconv2"))


def _blocks(pattern: str, block: str) -> tuple:
    return (
        *(rule for ours, theirs in _INNER for rule in linear(rf"{pattern}\.{ours}", f"stages.{{1}}.{block}.{theirs}")),
        (rf"{pattern}\.gnconv\.pointwise\.(\d+)\.(weight|bias)", f"stages.{{1}}.{block}.gnconv.pws.{{3}}.{{4}}"),
        (rf"{pattern}\.(gamma1|gamma2)", f"stages.{{1}}.{block}.{{3}}"),
    )


RULES = (
    *downsample_layers(),
    *_blocks(r"stages\.(0)\.(\d+)", "{2}"),
    *_blocks(r"stages\.(\d+)\.(\d+)", "{2-1}"),  # stages 1-3: their blocks start after the downsample
    *linear(r"head\.norm", "norm"),
    *linear(r"head\.classifier", "head"),
)
KEYMAPS = {"hornet": {"official": KeyMap("official", RULES, upstream={n: f"{n}()" for n in ("hornet_tiny_7x7", "hornet_small_7x7")})}}
