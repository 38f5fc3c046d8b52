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


def _rules(stem: tuple[str, str], downsample: tuple[str, str], stage: str, scales: tuple[str, str], distillation_head: str) -> tuple:
    """One layout's rules from its names: ``stem`` / ``downsample`` = the conv and BN templates of our stem block ``{1}``
    and of our block 0 of stages ``{1}`` 1-3, ``stage`` the template of our stage ``{1}``,
    ``scales`` the names of the two layer scales inside a block, ``distillation_head`` the distillation classifier."""
    block, meta4d = f"{stage}.{{2}}", f"{stage}.{{2-1}}"  # Meta4D blocks after the downsample sit one slot earlier

    def meta4d_rules(ours: str, theirs: str) -> tuple:
        return (
            (rf"{ours}\.layer_scale_mixer", f"{theirs}.{scales[0]}"),
            (rf"{ours}\.layer_scale_mlp", f"{theirs}.{scales[1]}"),
            *(rule for inner, their_inner in _META4D for rule in linear(rf"{ours}\.{inner}", f"{theirs}.{their_inner}")),
            *(rule for inner, their_inner in _META4D_NORMS for rule in bn(rf"{ours}\.{inner}", f"{theirs}.{their_inner}")),
        )

    return (
        *linear(r"stem\.(\d+)\.conv", stem[0]),
        *bn(r"stem\.(\d+)\.norm", stem[1]),
        *linear(r"stages\.([1-9])\.0\.conv", downsample[0]),
        *bn(r"stages\.([1-9])\.0\.norm", downsample[1]),
        # Meta3D blocks sit after the last stage's Flat: same index as ours
        (rf"{_B}\.layer_scale_attention", f"{block}.{scales[0]}"),
        (rf"{_B}\.mlp\.layer_scale", f"{block}.{scales[1]}"),
        (rf"{_B}\.attention\.bias\.attention_biases", f"{block}.token_mixer.attention_biases"),
        *(rule for inner, theirs in _META3D for rule in linear(rf"{_B}\.{inner}", f"{block}.{theirs}")),
        *meta4d_rules(r"stages\.(0)\.(\d+)", block),
        *meta4d_rules(r"stages\.([1-9])\.(\d+)", meta4d),
        *linear(r"head\.norm", "norm"),
        *linear(r"head\.classifier", "head"),
        *linear(r"head\.distillation_classifier", distillation_head),
    )


_B = r"stages\.(\d+)\.(\d+)"
# timm: ``stem.conv{i+1}/norm{i+1}``, ``stages.{s}.downsample``, blocks in ``stages.{s}.blocks``, ``ls1/ls2.gamma``
RULES = _rules(("stem.conv{1+1}", "stem.norm{1+1}"), ("stages.{1}.downsample.conv", "stages.{1}.downsample.norm"), "stages.{1}.blocks", ("ls1.gamma", "ls2.gamma"), "head_dist")
# snap-research/EfficientFormer ``models/efficientformer.py``: the stem is one Sequential (conv 0, BN 1, ReLU, conv 3,
# BN 4, ReLU); one ``network`` ModuleList alternates stages and ``Embedding`` downsamples, so our stage ``s`` is
# ``network.{2s}`` and its downsample (our block 0) ``network.{2s-1}`` (``proj`` conv + ``norm`` BN); inside a stage the
# numbering is timm's; the layer scales are plain parameters ``layer_scale_1/2``; the distillation head ``dist_head``.
OFFICIAL_RULES = _rules(("patch_embed.{3*1}", "patch_embed.{3*1+1}"), ("network.{2*1-1}.proj", "network.{2*1-1}.norm"), "network.{2*1}",
                        ("layer_scale_1", "layer_scale_2"), "dist_head")
KEYMAPS = {"efficientformer": {
    "timm": KeyMap("timm", RULES, ignore=(r".*attention_bias_idxs",), upstream={f"efficientformer_l{i}": f"efficientformer_l{i}" for i in (1, 3, 7)}),
    # the release keeps the Meta4D layer scales 1-D (dim,) and unsqueezes them in forward; ours are (dim, 1, 1)
    "official": KeyMap("official", OFFICIAL_RULES, ignore=(r".*attention_bias_idxs",), reshape=(r"stages\.\d+\.\d+\.layer_scale_(mixer|mlp)",),
                       upstream={f"efficientformer_l{i}": f"models/efficientformer.py efficientformer_l{i}()" for i in (1, 3, 7)}),
}}
