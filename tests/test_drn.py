"""DRN's multi-output primal network (issue 18): the release's counts, its image pyramid, the pyramid and per-step dual
losses, training, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgevision as ev
from edgevision.counting import count_params
from edgevision.super_resolution import DRNSpec, DualDownsampler, SRObjectiveConfig, SRObjectives
from edgevision.super_resolution.data import make_pair
from edgevision.super_resolution.engine import SRTrainConfig, train_sr
from edgevision.super_resolution.objectives import pixel_loss, pyramid_targets
from edgevision.super_resolution.resize import imresize

TINY = DRNSpec(name="tiny_drn", scale=4, scales=(4,), features=4, blocks=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def _drn_params(f: int, blocks: int, phases: int, reduction: int = 16) -> int:
    """The release's layers counted by hand (guoyongcs/DRN model/drn.py + common.py), without its two mean-shift convs."""
    conv = lambda cin, cout, k, bias=True: cin * cout * k * k + (cout if bias else 0)  # noqa: E731

    def rcab(c):
        hidden = max(1, c // reduction)
        return 2 * conv(c, c, 3) + conv(c, hidden, 1) + conv(hidden, c, 1)

    total = conv(3, f, 3)                                                                        # head
    total += sum(conv(f * 2 ** p, f * 2 ** p, 3, False) + conv(f * 2 ** p, f * 2 ** (p + 1), 3, False) for p in range(phases))  # down
    widths = [f * 2 ** phases] + [f * 2 ** (phases - k + 1) for k in range(1, phases)]
    for k, c in enumerate(widths):                                                              # up: RCABs, x2 pixel shuffle, 1x1
        total += blocks * rcab(c) + conv(c, 4 * c, 3) + conv(c, f * 2 ** (phases - 1 - k), 1)
    total += conv(f * 2 ** phases, 3, 3) + sum(conv(f * 2 ** p, 3, 3) for p in range(phases, 0, -1))  # tails (the release's order)
    return total


@pytest.mark.parametrize("name, scale, blocks, features, release_millions", [
    ("drn_s", 4, 30, 16, 4.8), ("drn_l", 4, 40, 20, 9.8), ("drn_s_x8", 8, 30, 8, 5.4), ("drn_l_x8", 8, 36, 10, 10.0),
])
def test_drn_parameter_counts_match_the_release(name, scale, blocks, features, release_millions):
    spec = ev.registry.get_spec(name)
    assert (spec.scale, spec.blocks, spec.features) == (scale, blocks, features)  # the release's utility.init_model templates
    with torch.device("meta"):
        model = spec.build()
    params = count_params(model)
    assert params == _drn_params(features, blocks, spec.phases)
    assert round(params / 1e6, 1) == release_millions  # the release README's #Params (M)


def test_pyramid_has_every_x2_step_and_forward_is_its_last_image():
    torch.manual_seed(0)
    model = TINY.build().eval()
    lr = torch.rand(2, 3, 7, 5)
    images = model.forward_pyramid(lr)
    assert [tuple(i.shape) for i in images] == [(2, 3, 7, 5), (2, 3, 14, 10), (2, 3, 28, 20)]
    torch.testing.assert_close(model(lr), images[-1], rtol=0, atol=0)
    assert model.pyramid_steps == 2 and TINY.with_scale(8).build().pyramid_steps == 3
    with pytest.raises(ValueError, match="power of two"):
        TINY.with_scale(3)
    with pytest.raises(ValueError, match="scales"):
        DRNSpec(name="bad", scale=3, scales=(3,)).build()


def test_pyramid_targets_are_the_lr_input_matlab_resized_hr_and_hr():
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 24, generator=generator)
    lr = imresize(hr, 1 / 8)
    targets = pyramid_targets(lr, hr, 4)  # x8: LR, HR/4, HR/2, HR
    assert targets[0] is lr and targets[-1] is hr
    torch.testing.assert_close(targets[1], imresize(hr, 1 / 4))
    torch.testing.assert_close(targets[2], imresize(hr, 1 / 2))
    assert [tuple(t.shape[-2:]) for t in targets] == [(4, 3), (8, 6), (16, 12), (32, 24)]
    assert pyramid_targets(lr, hr, 1) == [hr]
    with pytest.raises(ValueError, match="HR = LR x 4"):
        pyramid_targets(lr, hr, 3)


def test_primal_loss_is_the_sum_over_the_pyramid_and_trains_every_tail():
    torch.manual_seed(0)
    model = TINY.build()
    hr = torch.rand(2, 3, 32, 32)
    lr = imresize(hr, 1 / 4)
    images = model.forward_pyramid(lr)
    loss, terms = pixel_loss(images, pyramid_targets(lr, hr, len(images)))
    expected = F.l1_loss(images[0], lr) + F.l1_loss(images[1], imresize(hr, 1 / 2)) + F.l1_loss(images[2], hr)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["pixel"].item() == pytest.approx(F.l1_loss(images[2], hr).item(), rel=1e-6)
    loss.backward()
    assert all(tail.weight.grad is not None and tail.weight.grad.abs().sum() > 0 for tail in model.tails)  # the LR-size tail too


def test_dual_has_one_x2_module_per_step_at_the_primals_features():
    torch.manual_seed(0)
    model = TINY.build()
    objectives = SRObjectives(model, 4, SRObjectiveConfig(dual_weight=0.1))
    assert len(objectives.dual) == 2 and all(isinstance(d, DualDownsampler) and d.scale == 2 for d in objectives.dual)
    assert all(count_params(d) == 9 * (3 * 4 + 4 * 3) for d in objectives.dual)  # DownBlock(opt, 2): n_feats = the primal's 4
    hr = torch.rand(2, 3, 32, 32)
    lr = imresize(hr, 1 / 4)
    loss, terms, sr = objectives.generator_loss(model, lr, hr)
    images = model.forward_pyramid(lr)
    dual = F.l1_loss(objectives.dual[0](images[1]), lr) + F.l1_loss(objectives.dual[1](images[2]), imresize(hr, 1 / 2))
    assert terms["dual"] == pytest.approx(dual.item(), rel=1e-5)
    assert loss.item() == pytest.approx(terms["pixel"] + terms["pyramid"] + 0.1 * terms["dual"], rel=1e-5)
    torch.testing.assert_close(sr, images[-1])
    loss.backward()
    assert all(p.grad is not None for d in objectives.dual for p in d.parameters())


def test_drn_trains_without_objectives_on_its_pyramid_and_exports_one_output(tmp_path):
    import onnx

    from edgevision.export import export_onnx

    torch.manual_seed(0)
    pairs = [make_pair(f"p{i}", torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)), 4) for i in range(2)]
    model = TINY.build()
    result = train_sr(model, pairs, 4, SRTrainConfig(steps=3, batch_size=2, patch_size=4))
    assert set(result["terms"]) == {"pixel", "pyramid"} and np.isfinite(result["final_loss"])
    report = export_onnx(model.eval(), tmp_path / "drn.onnx", (3, 8, 8), dynamic_hw=True)  # bicubic Resize, checked at a second size
    assert max(report.max_relative_error.values()) < 1e-4
    graph = onnx.load(str(tmp_path / "drn.onnx")).graph
    assert [o.name for o in graph.output] == ["sr"] and any(n.op_type == "Resize" for n in graph.node)
