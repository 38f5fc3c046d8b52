"""LeViT (Graham et al. 2021) as timm builds it (``models/levit.py``).

timm keeps each stage's first block of stages 2 and 3 apart as ``stages.{s}.downsample`` (the
shrinking attention ``attn_downsample`` + its MLP), so our ``stages.{s}.{b}`` is timm's
``stages.{s}.blocks.{b}`` in stage 0 and ``stages.{s}.blocks.{b-1}`` after the downsample elsewhere.
Every linear layer is a ``LinearNorm`` (``linear`` + ``bn``); residual projections and the
subsampled query wrap it once more (``proj.ln``, ``q.ln``); the MLP's two layers are ``ln1``/``ln2``;
the stem's convs ``stem.conv{i+1}.linear/bn``; the heads ``head`` and ``head_dist`` (``bn`` +
``linear``). The learned attention biases map one to one; timm's index buffers are derived.
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_NORM_LINEAR = {  # our path inside a block -> timm's, for a LinearNorm (linear + norm)
    "attention.qkv": "attn.qkv", "attention.proj": "attn.proj.ln", "attention.kv": "attn.kv", "attention.q": "attn.q.ln",
    "mlp.expand": "mlp.ln1", "mlp.project": "mlp.ln2",
}


def _block(ours: str, theirs: str, attention: str = "attn") -> tuple:
    rules = []
    for inner, their_inner in _NORM_LINEAR.items():
        their_inner = their_inner.replace("attn", attention, 1)
        rules += linear(rf"{ours}\.{inner}\.linear", f"{theirs}.{their_inner}.linear")
        rules += bn(rf"{ours}\.{inner}\.norm", f"{theirs}.{their_inner}.bn")
    rules.append((rf"{ours}\.attention\.bias\.attention_biases", f"{theirs}.{attention}.attention_biases"))
    return tuple(rules)


RULES = (
    *linear(r"stem\.(\d+)\.conv", "stem.conv{1+1}.linear"),
    *bn(r"stem\.(\d+)\.norm", "stem.conv{1+1}.bn"),
    *_block(r"stages\.0\.(\d+)", "stages.0.blocks.{1}"),
    *_block(r"stages\.(\d+)\.0", "stages.{1}.downsample", attention="attn_downsample"),
    *_block(r"stages\.(\d+)\.(\d+)", "stages.{1}.blocks.{2-1}"),
    *bn(r"head\.classifier\.norm", "head.bn"),
    *linear(r"head\.classifier\.linear", "head.linear"),
    *bn(r"head\.distillation_classifier\.norm", "head_dist.bn"),
    *linear(r"head\.distillation_classifier\.linear", "head_dist.linear"),
)


def _linear_bn(ours: str, theirs: str) -> tuple:
    return (*linear(rf"{ours}\.linear", f"{theirs}.c"), *bn(rf"{ours}\.norm", f"{theirs}.bn"))


# facebookresearch/LeViT ``levit.py`` (the authors' release): the stem ``patch_embed`` is a Sequential of four
# ``Conv2d_BN`` (``c`` + ``bn``) with activations between them (0, 2, 4, 6); ``blocks`` is ONE flat Sequential in
# which each of our blocks takes two slots, a ``Residual`` attention (``m.qkv``, ``m.proj.1``, ``m.attention_biases``;
# the stage-opening ``AttentionSubsample`` is not wrapped: ``kv``, ``q.1``, ``proj.1``, ``attention_biases``) and
# then a ``Residual`` MLP (``m.0``, ``m.2``). Every ``Linear_BN`` is ``c`` + ``bn``; heads ``head`` / ``head_dist``
# are ``BN_Linear`` (``bn`` + ``l``). Checkpoints are ``{"model": state_dict}``.
_A, _M = "blocks.{2*flat(1,2)}", "blocks.{2*flat(1,2)+1}"
OFFICIAL_RULES = (
    *linear(r"stem\.(\d+)\.conv", "patch_embed.{2*1}.c"),
    *bn(r"stem\.(\d+)\.norm", "patch_embed.{2*1}.bn"),
    # the subsampling attention opens stages 1 and 2 (our block 0 there)
    *_linear_bn(r"stages\.([1-9])\.(0)\.attention\.kv", f"{_A}.kv"),
    *_linear_bn(r"stages\.([1-9])\.(0)\.attention\.q", f"{_A}.q.1"),
    *_linear_bn(r"stages\.([1-9])\.(0)\.attention\.proj", f"{_A}.proj.1"),
    (r"stages\.([1-9])\.(0)\.attention\.bias\.attention_biases", f"{_A}.attention_biases"),
    *_linear_bn(r"stages\.(\d+)\.(\d+)\.attention\.qkv", f"{_A}.m.qkv"),
    *_linear_bn(r"stages\.(\d+)\.(\d+)\.attention\.proj", f"{_A}.m.proj.1"),
    (r"stages\.(\d+)\.(\d+)\.attention\.bias\.attention_biases", f"{_A}.m.attention_biases"),
    *_linear_bn(r"stages\.(\d+)\.(\d+)\.mlp\.expand", f"{_M}.m.0"),
    *_linear_bn(r"stages\.(\d+)\.(\d+)\.mlp\.project", f"{_M}.m.2"),
    *bn(r"head\.classifier\.norm", "head.bn"),
    *linear(r"head\.classifier\.linear", "head.l"),
    *bn(r"head\.distillation_classifier\.norm", "head_dist.bn"),
    *linear(r"head\.distillation_classifier\.linear", "head_dist.l"),
)
_NAMES = ("levit_128s", "levit_128", "levit_192", "levit_256")
KEYMAPS = {"levit": {
    "timm": KeyMap("timm", RULES, ignore=(r".*attention_bias_idxs",), upstream={n: n for n in _NAMES}),
    "official": KeyMap("official", OFFICIAL_RULES, ignore=(r".*attention_bias_idxs",),
                       upstream={n: f"LeViT_{n.split('_')[1].upper()}()" for n in _NAMES}),
}}
