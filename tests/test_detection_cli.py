"""`edgevision train --task detection` and `edgevision eval` end to end on tiny generated scenes."""

import json

from edgevision.cli import main
from edgevision.datasets.scenes import generate_scenes


def test_train_then_eval_writes_the_coco_metrics(tmp_path, capsys):
    train_file = generate_scenes(tmp_path / "data", split="train", num_images=2, image_size=64, num_classes=2, seed=0)
    generate_scenes(tmp_path / "data", split="val", num_images=2, image_size=64, num_classes=2, seed=0)
    out = tmp_path / "run"
    assert main(["train", "ssdlite320_mobilenetv3_large", "--task", "detection", "--data", str(train_file), "--epochs", "1",
                 "--resolution", "64", "--batch-size", "2", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mAP", "AP50", "AP75", "APs", "APm", "APl", "losses"} <= set(metrics)
    report = tmp_path / "eval.json"
    assert main(["eval", str(out / "model.safetensors"), "--json", str(report), "--calibration", "--corruptions",
                 "--calibration-min-score", "0.0", "--bins", "4"]) == 0
    evaluated = json.loads(report.read_text())
    assert evaluated["task"] == "detection" and evaluated["mAP"] == metrics["mAP"]
    calibration = evaluated["calibration"]
    assert len(calibration["bin_counts"]) == 4 and sum(calibration["bin_counts"]) == calibration["detections"] > 0
    assert 0.0 <= calibration["ece"] <= 1.0 and calibration["iou_threshold"] == 0.5 and calibration["min_score"] == 0.0
    assert (out / "model.reliability.png").is_file()
    corruptions = evaluated["corruptions"]
    assert set(corruptions["mAP"]) == {"gaussian_noise", "gaussian_blur", "contrast", "brightness", "jpeg"}
    assert all(len(v) == 5 for v in corruptions["mAP"].values()) and corruptions["clean_mAP"] == metrics["mAP"]
    assert main(["eval", str(out / "model.safetensors"), "--data", str(tmp_path / "missing.json")]) == 2
    assert "give the COCO annotation file" in capsys.readouterr().err
