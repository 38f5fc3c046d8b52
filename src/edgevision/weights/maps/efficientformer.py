"""EfficientFormer (Li et al. NeurIPS 2022) as timm builds it (``models/efficientformer.py``).

timm keeps each later stage's embedding apart (``stages.{s}.downsample.conv/norm``, our block 0)
and puts a parameter-free ``Flat`` (4-D -> tokens) module among the last stage's blocks, before the
first Meta3D block. So our ``stages.{s}.{b}`` is timm's ``stages.{s}.blocks.{b}`` in stage 0,
``blocks.{b-1}`` for the Meta4D (pooling) blocks of later stages and ``blocks.{b}`` for the Meta3D
(attention) blocks after the ``Flat``. Meta4D: layer scales ``ls1``/``ls2`` (``.gamma``), the conv MLP
``mlp.fc1/norm1/fc2/norm2``; Meta3D: ``norm1``, ``token_mixer.qkv/proj/attention_biases``, ``norm2``,
``mlp.fc1/fc2``. Stem ``stem.conv{i+1}/norm{i+1}``; final ``norm``, heads ``head`` and ``head_dist``.
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_META4D = (  # (our path inside the block, timm's) for tensors with weight/bias
    ("expand.conv", "mlp.fc1"), ("project.conv", "mlp.fc2"),
)
_META4D_NORMS = (("expand.norm", "mlp.norm1"), ("project.norm", "mlp.norm2"))
_META3D = (("norm_attention", "norm1"), ("attention.qkv", "token_mixer.qkv"), ("attention.proj", "token_mixer.proj"),
           ("mlp.norm", "norm2"), ("mlp.expand", "mlp.fc1"), ("mlp.project", "mlp.fc2"))


def _meta4d(ours: str, theirs: str) -> tuple:
    return (
        (rf"{ours}\.layer_scale_mixer", f"{theirs}.ls1.gamma"),
        (rf"{ours}\.layer_scale_mlp", f"{theirs}.ls2.gamma"),
        *(rule for inner, their_inner in _META4D for rule in linear(rf"{ours}\.{inner}", f"{theirs}.{their_inner}")),
        *(rule for inner, their_inner in _META4D_NORMS for rule in bn(rf"{ours}\.{inner}", f"{theirs}.{their_inner}")),
    )


_B = r"stages\.(\d+)\.(\d+)"
RULES = (
    *linear(r"stem\.(\d+)\.conv", "stem.conv{1+1}"),
    *bn(r"stem\.(\d+)\.norm", "stem.norm{1+1}"),
    *linear(r"stages\.([1-9])\.0\.conv", "stages.{1}.downsample.conv"),
    *bn(r"stages\.([1-9])\.0\.norm", "stages.{1}.downsample.norm"),
    # Meta3D blocks sit after timm's Flat: same index as ours
    (rf"{_B}\.layer_scale_attention", "stages.{1}.blocks.{2}.ls1.gamma"),
    (rf"{_B}\.mlp\.layer_scale", "stages.{1}.blocks.{2}.ls2.gamma"),
    (rf"{_B}\.attention\.bias\.attention_biases", "stages.{1}.blocks.{2}.token_mixer.attention_biases"),
    *(rule for inner, theirs in _META3D for rule in linear(rf"{_B}\.{inner}", f"stages.{{1}}.blocks.{{2}}.{theirs}")),
    *_meta4d(r"stages\.(0)\.(\d+)", "stages.{1}.blocks.{2}"),
    *_meta4d(r"stages\.([1-9])\.(\d+)", "stages.{1}.blocks.{2-1}"),
    *linear(r"head\.norm", "norm"),
    *linear(r"head\.classifier", "head"),
    *linear(r"head\.distillation_classifier", "head_dist"),
)


def _official_blocks() -> tuple:
    """snap-research/EfficientFormer ``models/efficientformer.py``: one ``network`` ModuleList alternating stages and
    ``Embedding`` downsamples, so our stage ``s`` is ``network.{2s}`` and its downsample (our block 0) ``network.{2s-1}``
    (``proj`` conv + ``norm`` BN); inside a stage the numbering is timm's (the last stage's ``Flat`` takes one slot)."""
    rules = []
    for stage in range(4):
        net = f"network.{2 * stage}"
        if stage:
            rules += [*linear(rf"stages\.{stage}\.0\.conv", f"network.{2 * stage - 1}.proj"),
                      *bn(rf"stages\.{stage}\.0\.norm", f"network.{2 * stage - 1}.norm")]
        block = rf"stages\.({stage})\.(\d+)"
        rules += [
            (rf"{block}\.layer_scale_attention", f"{net}.{{2}}.layer_scale_1"),
            (rf"{block}\.mlp\.layer_scale", f"{net}.{{2}}.layer_scale_2"),
            (rf"{block}\.attention\.bias\.attention_biases", f"{net}.{{2}}.token_mixer.attention_biases"),
            *(rule for inner, theirs in _META3D for rule in linear(rf"{block}\.{inner}", f"{net}.{{2}}.{theirs}")),
        ]
        meta4d = f"{net}.{{2}}" if stage == 0 else f"{net}.{{2-1}}"
        rules += [
            (rf"{block}\.layer_scale_mixer", f"{meta4d}.layer_scale_1"),
            (rf"{block}\.layer_scale_mlp", f"{meta4d}.layer_scale_2"),
            *(rule for inner, theirs in _META4D for rule in linear(rf"{block}\.{inner}", f"{meta4d}.{theirs}")),
            *(rule for inner, theirs in _META4D_NORMS for rule in bn(rf"{block}\.{inner}", f"{meta4d}.{theirs}")),
        ]
    return tuple(rules)


# the stem: conv 0, BN 1, ReLU, conv 3, BN 4, ReLU; the classifier norm + head + dist_head (timm's names)
OFFICIAL_RULES = (
    *linear(r"stem\.0\.conv", "patch_embed.0"), *bn(r"stem\.0\.norm", "patch_embed.1"),
    *linear(r"stem\.1\.conv", "patch_embed.3"), *bn(r"stem\.1\.norm", "patch_embed.4"),
    *_official_blocks(),
    *linear(r"head\.norm", "norm"),
    *linear(r"head\.classifier", "head"),
    *linear(r"head\.distillation_classifier", "dist_head"),
)
KEYMAPS = {"efficientformer": {
    "timm": KeyMap("timm", RULES, ignore=(r".*attention_bias_idxs",), upstream={f"efficientformer_l{i}": f"efficientformer_l{i}" for i in (1, 3, 7)}),
    # the release keeps the Meta4D layer scales 1-D (dim,) and unsqueezes them in forward; ours are (dim, 1, 1)
    "official": KeyMap("official", OFFICIAL_RULES, ignore=(r".*attention_bias_idxs",), reshape=(r"stages\.\d+\.\d+\.layer_scale_(mixer|mlp)",),
                       upstream={f"efficientformer_l{i}": f"models/efficientformer.py efficientformer_l{i}()" for i in (1, 3, 7)}),
}}
