"""torchvision's LR-ASPP / DeepLabv3 on MobileNetV3-Large load into ours and give the same logits.

The reference models are built offline (``weights=None, weights_backbone=None``), randomised (weights,
BatchNorm statistics and affines) like the classifier cases, saved as safetensors and imported with
``ev.load_pretrained``; outputs (the ``out`` logits at input size, and the aux logits) must agree to
1e-4 of the output scale, in train form and after ``ev.reparameterize``.
"""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import edgevision as ev

sys.path.insert(0, str(Path(__file__).parent))
from test_reference_logits import _difference, randomise  # noqa: E402

TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_torchvision_segmentation_weights_give_equal_outputs(name, tmp_path):
    import torchvision

    kwargs = {"aux_loss": True} if name.startswith("deeplabv3") else {}
    theirs = randomise(getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None, num_classes=21, **kwargs))
    path = tmp_path / f"{name}.safetensors"
    save_file({key: value.contiguous() for key, value in theirs.state_dict().items()}, str(path))
    ours = ev.create_model(name, pretrained=str(path)).double().eval()
    # float64, as the classifier cases: random statistics amplify fp32 rounding; the mapping is under test
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        reference = theirs.double()(x)
        logits, aux = ours.forward_with_aux(x)
        assert logits.shape == reference["out"].shape == (2, 21, 96, 128)
        assert _difference(logits, reference["out"]) < TOLERANCE
        assert torch.equal(ours(x), logits)
        if "aux" in reference:
            assert _difference(aux, reference["aux"]) < TOLERANCE
        ev.reparameterize(ours)
        assert _difference(ours(x), reference["out"]) < TOLERANCE


def test_wrong_file_is_refused_with_the_problem_named(tmp_path):
    import torchvision

    theirs = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
    path = tmp_path / "lraspp.safetensors"
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))
    with pytest.raises(ev.WeightImportError, match="deeplabv3_mobilenet_v3_large"):
        ev.create_model("deeplabv3_mobilenet_v3_large", pretrained=str(path))
