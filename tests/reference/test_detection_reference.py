"""torchvision's ssdlite320_mobilenet_v3_large imported through the key-map importer gives equal outputs."""

import torch
import torchvision

import edgevision as ev
from edgevision.weights import load_pretrained


def test_ssdlite320_mobilenetv3_large_imports_torchvision_weights_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    with torch.no_grad():  # random but non-trivial statistics, so a swapped BN buffer would show
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "ssdlite.pth"
    torch.save(reference.state_dict(), path)
    model = ev.create_model("ssdlite320_mobilenetv3_large")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters()) == 3_440_060
    report = load_pretrained(model, path, source="torchvision")
    assert report.tensors_mapped == len(model.state_dict())
    model.eval()
    images = torch.rand(2, 3, 320, 320) * 2 - 1  # already normalized (mean = std = 0.5)
    with torch.no_grad():
        features = reference.backbone(images)
        head = reference.head(list(features.values()))
        deltas, logits = model(images)
    torch.testing.assert_close(deltas, head["bbox_regression"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, head["cls_logits"], atol=1e-4, rtol=1e-4)
    # same priors in the same order
    from torchvision.models.detection.image_list import ImageList

    priors = reference.anchor_generator(ImageList(images, [(320, 320)] * 2), list(features.values()))[0]
    torch.testing.assert_close(model.priors(320), priors, atol=1e-4, rtol=0)
    # (torchvision's postprocess_detections needs its C++ NMS, absent from the reference venv;
    # our NMS is checked against brute force and ONNX Runtime in tests/test_detection_ops.py)
