"""Every zoo model with a timm / torchvision counterpart loads its state dict and gives the same logits.

For each case (``cases.py``) the reference model is built with random weights AND random
normalisation statistics and affines (constructor inits leave BatchNorm at identity and zero some
residual branches, which would hide mapping errors), saved as ``.safetensors`` and as ``.pth`` (both
imports must give identical tensors), imported with ``ev.load_pretrained`` and compared in eval mode: max |ours - theirs| must be at most
1e-4 of the reference output scale (max |logit|), in train form and again after
``ev.reparameterize``. Each case writes its measured differences to ``$EDGEVISION_REFERENCE_RESULTS``
(default ``build/reference``), which ``benchmarks/pretrained_table.py`` turns into docs/pretrained.md.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import edgevision as ev
import sys

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES  # noqa: E402

TOLERANCE = 1e-4
RESULTS = Path(os.environ.get("EDGEVISION_REFERENCE_RESULTS", "build/reference"))


def _reference(case):
    if case.library == "torchvision":
        import torchvision

        kwargs = {"aux_logits": False, "init_weights": True} if case.theirs in ("googlenet", "inception_v3") else {}
        return getattr(torchvision.models, case.theirs)(weights=None, **kwargs)
    import timm

    return timm.create_model(case.theirs, pretrained=False)


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere a constructor leaves a constant, random running statistics."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    for name, parameter in model.named_parameters():
        if parameter.numel() > 1 and parameter.std() > 0 and parameter.dim() > 1:
            continue  # conv / linear kernels: the constructor's random init
        if parameter.dim() <= 1 and name.rsplit(".", 1)[-1] in ("weight", "gamma", "scale", "layer_scale") or "gamma" in name or "scale" in name:
            parameter.copy_(torch.rand(parameter.shape, generator=generator) * 0.5 + 0.5)
        else:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()


def _difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_logits_match_reference(case, tmp_path):
    torch.manual_seed(0)
    reference = randomise(_reference(case))
    state = {key: value.detach().clone().contiguous() for key, value in reference.state_dict().items()}  # float32 files
    # float64 for the comparison: a deep network with random weights and statistics amplifies fp32
    # rounding chaotically (MobileOne-S4 deploy vs train: 1e-11 in float64, up to 1 in float32), which
    # would hide or fake mapping errors; the mapping is what is under test
    x = torch.randn(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        expected = reference.double()(x)
    if isinstance(expected, tuple):  # torchvision's inception returns named tuples in some modes
        expected = expected[0]
    files = {"safetensors": tmp_path / "weights.safetensors", "pth": tmp_path / "weights.pth"}
    save_file(state, str(files["safetensors"]))
    torch.save(state, files["pth"])
    source = case.source or case.library
    result = {"model": case.ours, "library": case.library, "upstream": case.theirs, "source": source, "input_size": case.size,
              "params": sum(p.numel() for p in reference.parameters())}
    model = ev.create_model(case.ours)
    report = ev.load_pretrained(model, files["safetensors"], source=source)
    assert report.source == source and not report.classifier_reinitialised
    result["tensors_mapped"] = report.tensors_mapped
    result["our_params"] = sum(p.numel() for p in model.parameters())
    from_pth = ev.create_model(case.ours)
    ev.load_pretrained(from_pth, files["pth"], source=source)  # the same tensors from the other format
    for key, value in model.state_dict().items():
        assert torch.equal(value, from_pth.state_dict()[key]), f"{key}: .pth and .safetensors imports differ"
    result["inferred_source"] = ev.weights.map_state_dict(from_pth, state)[1].source  # the source guessed from the names
    model.double().eval()
    with torch.no_grad():
        result["train"] = _difference(model(x), expected)
        result["deploy"] = _difference(ev.reparameterize(model)(x), expected)
    assert result["train"] <= TOLERANCE, f"train form differs by {result['train']:.2e} of the output scale"
    assert result["deploy"] <= TOLERANCE, f"deploy form differs by {result['deploy']:.2e} of the output scale"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{case.ours}--{case.library}--{case.theirs}.json").write_text(json.dumps(result, indent=1))
