"""The YOLO-style detector with the GSConv slim-neck: structure and counts, the GFL detector contract."""

import torch

import edgevision as ev
from edgevision.blocks.gsconv import GSConv, VoVGSCSP
from edgevision.checkpoint import load, save


def test_yolov5n_gsconv_structure_and_count():
    assert {"yolov5n_gsconv", "yolov5s_gsconv"} <= set(ev.list_models(task="detection"))
    with torch.device("meta"):
        model = ev.create_model("yolov5n_gsconv")
    # YOLOv5n widths (256, 512, 1024) x 0.25 at P3-P5; C3 repeats (3, 6, 9, 3) x 0.33 -> 1, 2, 3, 1
    assert model.backbone.out_channels == [64, 128, 256] and model.backbone.repeats == [1, 2, 3, 1]
    # every neck conv is a GSConv and every merge a VoV-GSCSP (the slim-neck); 4 lateral/down GSConvs, 4 merges
    assert sum(isinstance(m, VoVGSCSP) for m in model.neck.modules()) == 4
    assert sum(isinstance(m, GSConv) for m in model.neck.children()) == 4
    # counted from this layout (no published figure for an anchor-free GFL head on this neck): 1,537,816
    assert sum(p.numel() for p in model.parameters()) == 1_537_816


def test_yolo_gsconv_contract(tmp_path):
    torch.manual_seed(0)
    model = ev.create_model("yolov5n_gsconv", num_classes=3)
    model.set_input_size(64)
    images = torch.randn(2, 3, 64, 64)
    distributions, logits = model(images)
    assert distributions.shape == (2, 84, 32) and logits.shape == (2, 84, 3)  # 8x8 + 4x4 + 2x2 points
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    losses = model.loss((distributions, logits), targets)
    assert losses["positives"] > 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.neck.parameters())
    model.eval()
    (result, _) = model.postprocess(model(images), 64)
    assert result["boxes"].shape[1] == 4 and len(result["boxes"]) == len(result["scores"]) == len(result["labels"])
    restored = load(save(model, tmp_path / "yolo.safetensors", metadata={"task": "detection"})).eval()
    torch.testing.assert_close(restored(images)[0], model(images)[0])
