"""Detection annotations from real formats: COCO instances JSON and Pascal VOC XML, with a bad-input policy.

Both readers return :class:`DetectionSample` rows (image path, xyxy pixel boxes, labels 0..K-1 in
category order) and the category names. Problems — an image file that does not exist, a box outside
the image or with zero area, an unknown category id, an image without annotations, a category list
that differs from the one expected — are each reported as one line naming the file, the item and the
fix. ``policy="skip"`` drops the offending item and returns the lines in ``problems``;
``policy="fatal"`` raises :class:`DetectionDataError` with all of them. Images without annotations
are kept (they are valid negatives) and only reported.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["DetectionDataError", "DetectionSample", "DetectionSet", "load_coco_detection", "load_voc_detection"]

POLICIES = ("skip", "fatal")


class DetectionDataError(ValueError):
    """Bad detection annotations under ``policy='fatal'`` (one line per problem)."""


@dataclass
class DetectionSample:
    image: Path
    image_id: int
    boxes: torch.Tensor  # (M, 4) float xyxy pixels
    labels: torch.Tensor  # (M,) int64 in 0..K-1
    width: int
    height: int


@dataclass
class DetectionSet:
    samples: list[DetectionSample]
    class_names: list[str]
    problems: list[str] = field(default_factory=list)


def _finish(samples, names, problems, policy: str, source: str) -> DetectionSet:
    fatal = [line for line in problems if not line.endswith("(kept: a negative image)")]
    if policy == "fatal" and fatal:
        raise DetectionDataError(f"{source}: {len(fatal)} problem(s):\n" + "\n".join(fatal))
    return DetectionSet(samples, names, problems)


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")


def _check_box(x1, y1, x2, y2, width, height, where: str, problems: list[str]) -> bool:
    if not x2 > x1 or not y2 > y1:
        problems.append(f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has zero area; drop or fix it")
        return False
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        problems.append(f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {width}x{height} image; clip or fix it")
        return False
    return True


def _check_classes(names: list[str], expected, source: str, problems: list[str]) -> None:
    if expected is not None and list(expected) != names:
        problems.append(f"{source}: categories {names} do not match the model's {list(expected)}; "
                        "train a model for these categories or remap the annotation file")


def load_coco_detection(annotation_file, image_dir=None, *, policy: str = "skip", class_names=None) -> DetectionSet:
    """COCO instances JSON -> boxes per image. ``image_dir`` defaults to ``<root>/images/<split>``
    for ``<root>/annotations/instances_<split>.json`` (the layout :func:`generate_scenes` writes)."""
    _check_policy(policy)
    path = Path(annotation_file)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DetectionDataError(f"{path}: cannot read COCO annotations ({error})") from None
    if not all(key in document for key in ("images", "annotations", "categories")):
        raise DetectionDataError(f"{path}: not a COCO instances file (needs images, annotations and categories)")
    if image_dir is None:
        split = path.stem.removeprefix("instances_")
        image_dir = path.parent.parent / "images" / split
    image_dir = Path(image_dir)
    categories = sorted(document["categories"], key=lambda c: c["id"])
    label_of = {category["id"]: index for index, category in enumerate(categories)}
    names = [category["name"] for category in categories]
    problems: list[str] = []
    _check_classes(names, class_names, str(path), problems)
    by_image: dict[int, list] = {}
    for annotation in document["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    samples = []
    for image in document["images"]:
        file = image_dir / image["file_name"]
        if not file.is_file():
            problems.append(f"{path}: image {image['id']} points at missing file {file}; add the file or remove the entry")
            continue
        boxes, labels = [], []
        for annotation in by_image.get(image["id"], []):
            where = f"{path}: annotation {annotation.get('id')} of image {image['id']}"
            if annotation.get("iscrowd", 0):
                continue
            if annotation["category_id"] not in label_of:
                problems.append(f"{where}: unknown category id {annotation['category_id']} (known: {sorted(label_of)}); fix the id or add the category")
                continue
            x, y, w, h = annotation["bbox"]
            if _check_box(x, y, x + w, y + h, image["width"], image["height"], where, problems):
                boxes.append([x, y, x + w, y + h])
                labels.append(label_of[annotation["category_id"]])
        if not by_image.get(image["id"]):
            problems.append(f"{path}: image {image['id']} ({image['file_name']}) has no annotations (kept: a negative image)")
        samples.append(DetectionSample(file, int(image["id"]), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                       torch.tensor(labels, dtype=torch.long), int(image["width"]), int(image["height"])))
    return _finish(samples, names, problems, policy, str(path))


def load_voc_detection(annotation_dir, image_dir, class_names, *, policy: str = "skip") -> DetectionSet:
    """Pascal VOC XML files (one per image) -> boxes; VOC's 1-based pixel corners become xyxy with x1 - 1."""
    _check_policy(policy)
    label_of = {name: index for index, name in enumerate(class_names)}
    problems: list[str] = []
    samples = []
    for image_id, file in enumerate(sorted(Path(annotation_dir).glob("*.xml")), start=1):
        try:
            root = ElementTree.parse(file).getroot()
        except ElementTree.ParseError as error:
            problems.append(f"{file}: not valid XML ({error}); fix or remove it")
            continue
        image = Path(image_dir) / root.findtext("filename", "")
        if not image.is_file():
            problems.append(f"{file}: image {image} is missing; add the file or remove the annotation")
            continue
        width, height = int(root.findtext("size/width", "0")), int(root.findtext("size/height", "0"))
        boxes, labels = [], []
        for index, item in enumerate(root.iter("object")):
            where = f"{file}: object {index}"
            name = item.findtext("name", "")
            if name not in label_of:
                problems.append(f"{where}: unknown class {name!r} (known: {', '.join(class_names)}); fix the name or add the class")
                continue
            x1, y1, x2, y2 = (float(item.findtext(f"bndbox/{k}", "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
            if _check_box(x1 - 1, y1 - 1, x2, y2, width, height, where, problems):
                boxes.append([x1 - 1, y1 - 1, x2, y2])
                labels.append(label_of[name])
        if not boxes and not any(True for _ in root.iter("object")):
            problems.append(f"{file}: no objects (kept: a negative image)")
        samples.append(DetectionSample(image, image_id, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                       torch.tensor(labels, dtype=torch.long), width, height))
    return _finish(samples, list(class_names), problems, policy, str(annotation_dir))
