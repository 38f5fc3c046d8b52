"""The spec language: validation messages, plain-data guarantees, JSON, resolve, registry."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import edgevision as ev
from edgevision.blocks import ChannelScale, ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec, MaxPoolSpec
from edgevision.layers import make_divisible
from edgevision.registry import UnknownModelError, register_model
from edgevision.spec import Spec


# ---- validation: ValueError names class, field, value and what is allowed ----------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: InvertedResidualSpec(out_channels=24, stride=3), "InvertedResidualSpec.stride must be 1 or 2, got 3"),
        (lambda: InvertedResidualSpec(out_channels=-8), "InvertedResidualSpec.out_channels must be a positive number, got -8"),
        (lambda: InvertedResidualSpec(out_channels=24, activation="swish"), "InvertedResidualSpec.activation must be one of 'relu'"),
        (lambda: InvertedResidualSpec(out_channels=24, kernel_size=4), "InvertedResidualSpec.kernel_size must be 3, 5 or 7, got 4"),
        (lambda: InvertedResidualSpec(out_channels=24, expansion_ratio=0.5), "InvertedResidualSpec.expansion_ratio must be >= 1"),
        (lambda: InvertedResidualSpec(out_channels=24, se_ratio=1.5), "InvertedResidualSpec.se_ratio must be in [0, 1)"),
        (lambda: ConvNormActSpec(out_channels=30, groups=4), "ConvNormActSpec.out_channels must be divisible by groups=4, got 30"),
        (lambda: ConvNormActSpec(out_channels=32, kernel_size=2), "ConvNormActSpec.kernel_size must be odd"),
        (lambda: ConvNormActSpec(out_channels=32, width_scaling="double"), "ConvNormActSpec.width_scaling must be 'scaled', 'fixed' or 'at_least_base', got 'double'"),
        (lambda: ConvNormActSpec(out_channels="32"), "ConvNormActSpec.out_channels must be of type int, got '32'"),
        (lambda: ConvNormActSpec(out_channels=True), "ConvNormActSpec.out_channels must be of type int, got True"),
        (lambda: ClassifierHeadSpec(dropout=1.0), "ClassifierHeadSpec.dropout must be in [0, 1), got 1.0"),
        (lambda: MaxPoolSpec(stride=4), "MaxPoolSpec.stride must be 1 or 2, got 4"),
    ],
)
def test_validation_messages(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_network_spec_validation():
    stem = (ConvNormActSpec(out_channels=16, stride=2),)
    head = ClassifierHeadSpec()
    with pytest.raises(ValueError, match="NetworkSpec.stages must be a non-empty tuple"):
        ev.NetworkSpec(name="x", stem=stem, stages=(), head=head)
    with pytest.raises(ValueError, match="NetworkSpec.width_multiplier must be a positive number, got -1.0"):
        ev.NetworkSpec(name="x", stem=stem, stages=(ev.StageSpec(blocks=stem),), head=head, width_multiplier=-1.0)
    with pytest.raises(ValueError, match=r"StageSpec.blocks must be of type tuple\[BlockSpec, ...\]"):
        ev.StageSpec(blocks=(head, 3))


def test_group_divisibility_is_checked_at_resolve_time_with_the_block_location():
    spec = ev.NetworkSpec(
        name="tiny",
        stem=(ConvNormActSpec(out_channels=12, stride=2),),
        stages=(ev.StageSpec(blocks=(ConvNormActSpec(out_channels=16, groups=8),)),),
        head=ClassifierHeadSpec(num_classes=3),
        channel_divisor=1,
    )
    with pytest.raises(ValueError, match=r"tiny stages\[0\]\[0\]: ConvNormActSpec.groups=8 must divide the resolved channels \(12 -> 16\)"):
        ev.resolve(spec)


# ---- plain data: frozen, hashable, equality by value, JSON round trip ------------------------
def test_specs_are_frozen_hashable_and_compare_by_value():
    a = InvertedResidualSpec(out_channels=24, stride=2, expansion_ratio=6)
    b = InvertedResidualSpec(out_channels=24, stride=2, expansion_ratio=6.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.stride = 1  # type: ignore[misc]
    assert a.replace(stride=1) != a


def test_specs_hold_no_callables():
    for name in ev.list_models():
        for value in _walk(ev.get_spec(name)):
            assert isinstance(value, (int, float, str, bool, type(None))), f"{name}: {value!r}"


def _walk(spec):
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, Spec):
                yield from _walk(item)
            elif not isinstance(item, tuple):
                yield item


def test_json_is_plain_and_names_kinds():
    data = json.loads(ev.get_spec("mobilenetv3_small_100").to_json())
    assert data["kind"] == "network"
    assert data["stages"][0]["blocks"][0]["kind"] == "inverted_residual"


def test_from_json_rejects_unknown_kind_and_field():
    with pytest.raises(ValueError, match="unknown spec kind 'teleport'"):
        Spec.from_dict({"kind": "teleport"})
    with pytest.raises(ValueError, match="InvertedResidualSpec has no field\\(s\\) expansion"):
        Spec.from_dict({"kind": "inverted_residual", "out_channels": 16, "expansion": 6})
    with pytest.raises(ValueError, match="ConvNormActSpec.from_dict got kind 'inverted_residual'"):
        ConvNormActSpec.from_dict({"kind": "inverted_residual", "out_channels": 16})


@given(
    out_channels=st.integers(1, 2048),
    kernel_size=st.sampled_from([3, 5, 7]),
    stride=st.sampled_from([1, 2]),
    expansion_ratio=st.floats(1.0, 8.0, allow_nan=False),
    se_ratio=st.sampled_from([0.0, 0.25, 0.5]),
    activation=st.sampled_from(["relu", "relu6", "hard_swish"]),
)
def test_block_json_round_trip_property(out_channels, kernel_size, stride, expansion_ratio, se_ratio, activation):
    spec = InvertedResidualSpec(
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=stride,
        expansion_ratio=expansion_ratio,
        se_ratio=se_ratio,
        activation=activation,
    )
    assert Spec.from_json(spec.to_json()) == spec


# ---- resolve ---------------------------------------------------------------------------------
@given(value=st.floats(1, 5000, allow_nan=False), divisor=st.sampled_from([1, 2, 4, 8, 16]))
def test_make_divisible_properties(value, divisor):
    rounded = make_divisible(value, divisor)
    assert rounded % divisor == 0
    assert rounded >= 0.9 * value  # never drops more than 10%
    assert rounded >= divisor
    assert abs(rounded - value) <= divisor or rounded == divisor


def test_channel_scale_rules():
    scale = ChannelScale(multiplier=0.5, divisor=8)
    assert scale(24) == 16  # 12 -> 16: rounding down to 8 would lose > 10%
    assert scale(1280, "fixed") == 1280
    assert scale(1280, "at_least_base") == 1280
    assert ChannelScale(1.4, 8)(1280, "at_least_base") == 1792


def test_resolve_is_pure_and_follows_width_and_resolution():
    spec = ev.get_spec("mobilenetv2_100")
    resolved = ev.resolve(spec, width_multiplier=0.5, input_size=160)
    assert spec.width_multiplier == 1.0  # the input spec is untouched
    assert resolved.input_size == (160, 160)
    assert resolved.blocks[0].out_channels == 16  # stem 32 * 0.5
    assert resolved.head.input_size == (5, 5)
    assert resolved.head.in_channels == 1280  # last conv never shrinks below 1280
    assert ev.resolve(spec, width_multiplier=0.5, input_size=160) == resolved
    assert [b.path for b in resolved][:3] == ["stem.0", "stages.0.0", "stages.1.0"]


def test_resolve_matches_mobilenetv2_table_2():
    """Sandler et al. Table 2: input sizes 112^2x32 ... 7^2x320 for each bottleneck stage."""
    resolved = ev.resolve(ev.get_spec("mobilenetv2_100"))
    first_blocks = [resolved.stage(i)[0] for i in range(7)]
    assert [(b.input_size[0], b.in_channels, b.out_channels) for b in first_blocks] == [
        (112, 32, 16), (112, 16, 24), (56, 24, 32), (28, 32, 64), (14, 64, 96), (14, 96, 160), (7, 160, 320),
    ]  # fmt: skip
    assert resolved.stage(1)[0].mid_channels == 96  # 16 * t=6


def test_resolve_rejects_bad_input_size():
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        ev.resolve(ev.get_spec("mobilenetv2_100"), input_size=0)


# ---- registry ---------------------------------------------------------------------------------
def test_list_models_patterns():
    assert ev.list_models("mobilenetv3_small*") == ["mobilenetv3_small_075", "mobilenetv3_small_100"]
    assert ev.list_models(["mobilenetv2_050", "nothing*"]) == ["mobilenetv2_050"]
    assert ev.list_models("nothing*") == []


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="unknown model 'mobilenetv2_10'; did you mean mobilenetv2_100"):
        ev.get_spec("mobilenetv2_10")


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="'mobilenetv2_100' is registered twice"):
        register_model("mobilenetv2_100", family="mobilenetv2")(lambda: None)


def test_get_spec_returns_the_published_configuration():
    spec = ev.get_spec("mobilenetv3_large_075")
    assert spec.width_multiplier == 0.75 and spec.head.hidden_features == 1280
    assert ev.create_model("mobilenetv3_large_075").spec == spec


@pytest.mark.parametrize(
    "block",
    [
        ConvNormActSpec(out_channels=8, kernel_size=3, stride=2, padding="valid"),
        ConvNormActSpec(out_channels=8, kernel_size=3, stride=1, padding="valid"),
        ConvNormActSpec(out_channels=8, kernel_size=5, stride=2),
        MaxPoolSpec(kernel_size=3, stride=2, padding="valid"),
        MaxPoolSpec(kernel_size=3, stride=2, padding="valid", ceil_mode=True),
        MaxPoolSpec(kernel_size=2, stride=2, padding="valid"),
    ],
)
@pytest.mark.parametrize("size", [15, 16, 35, 112])
def test_resolved_output_size_equals_the_module_output(block, size):
    """Valid padding and ceil mode (Inception/GoogLeNet stems): resolve predicts PyTorch's sizes."""
    spec = ev.NetworkSpec(name="sizes", stem=(block,), stages=(ev.StageSpec(blocks=(MaxPoolSpec(stride=1),)),), head=ClassifierHeadSpec())
    resolved = ev.resolve(spec, input_size=size)
    stem = resolved.blocks[0]
    with torch.no_grad():
        out = stem.spec.build(stem)(torch.randn(1, 3, size, size))
    assert tuple(out.shape[2:]) == stem.output_size


def test_same_padding_needs_an_odd_kernel():
    with pytest.raises(ValueError, match="kernel_size .*odd with padding='same'"):
        MaxPoolSpec(kernel_size=2, stride=2)
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid', got 'full'"):
        ConvNormActSpec(out_channels=8, padding="full")


def test_network_head_must_have_num_classes():
    with pytest.raises(ValueError, match="head"):
        ev.NetworkSpec(name="x", stem=(ConvNormActSpec(out_channels=8),), stages=(ev.StageSpec(blocks=(MaxPoolSpec(),)),), head=MaxPoolSpec())


def test_mobile_skeleton_specs_are_byte_identical_to_before():
    """The five MobileNet-style families build on one skeleton (models/mobile_skeleton.py); their JSON,
    captured from main before the change (tests/data/mobile_skeleton_specs.json), is unchanged apart from
    ``pre_logits_stages`` (added later by the feature pyramids: the last 1x1 conv is not a feature level,
    except in MobileNetV3, as in timm) and MobileNetV3's ``norm_eps`` (1e-3, its TF release's, added later)."""
    import json
    from pathlib import Path

    saved = json.loads((Path(__file__).parent / "data" / "mobile_skeleton_specs.json").read_text(encoding="utf-8"))
    families = {"mobilenetv2", "mnasnet", "ghostnet", "repghostnet", "mobilenetv3"}
    assert set(saved) == {name for name in ev.list_models() if ev.registry.model_family(name) in families}
    for name, data in saved.items():
        before = ev.NetworkSpec.from_dict(data)
        now = ev.get_spec(name)
        assert now.pre_logits_stages == (0 if name.startswith("mobilenetv3") else 1), name
        assert now.norm_eps == (1e-3 if name.startswith("mobilenetv3") else None), name
        now = now.replace(pre_logits_stages=0, norm_eps=None)
        assert now == before, name
        assert now.to_json() == before.to_json(), name
