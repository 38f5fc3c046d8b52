"""Detection annotations from real formats: COCO instances JSON and Pascal VOC XML, with a bad-input policy.

Both readers return :class:`DetectionSample` rows (image path, xyxy pixel boxes, labels 0..K-1 in
category order) and the category names. Problems — an image file that does not exist, a box outside
the image or with zero area, an unknown category id, an image without annotations, a category list
that differs from the one expected — are each reported as one line naming the file, the item and the
fix. ``policy="skip"`` drops the offending item and returns the lines in ``problems``;
``policy="fatal"`` raises :class:`DetectionDataError` with all of them. Images without annotations
are kept (they are valid negatives) and only reported. ``load_coco_detection(..., masks=True)`` keeps
each box's COCO ``segmentation`` (RLE or polygons) so :meth:`DetectionSample.instance_masks` can
decode the instance masks.

Training augmentation (:class:`DetectionAugmentation`, :func:`augment_detection`) transforms an
image, its boxes and optionally its instance masks and semantic mask with one geometry: random
scale (zoom out with padding, zoom in with cropping, a mild aspect change), random placement,
horizontal flip, then photometric jitter of the pixels only. It follows SSD's recipe (Liu et al.
2016, Sec. 2.2 "Data augmentation": random crops, "zoom out" expansion, flip, photometric
distortions), which the MobileNetV2/V3 SSDLite results were trained with.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["AugmentedSample", "DetectionAugmentation", "DetectionDataError", "DetectionSample", "DetectionSet", "FLIP_ONLY",
           "SSD_AUGMENTATION", "augment_detection", "load_coco_detection", "load_voc_detection"]

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
    #: per box, its COCO ``segmentation`` (RLE dict or polygon list), when loaded with ``masks=True``
    segmentations: list | None = None

    def instance_masks(self) -> torch.Tensor:
        """(M, H, W) bool instance masks decoded from ``segmentations`` (pycocotools), one per box."""
        if self.segmentations is None:
            raise ValueError(f"image {self.image_id} was loaded without masks; call load_coco_detection(..., masks=True)")
        from pycocotools import mask as mask_utils

        masks = torch.zeros((len(self.segmentations), self.height, self.width), dtype=torch.bool)
        for index, segmentation in enumerate(self.segmentations):
            if isinstance(segmentation, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, self.height, self.width))
            elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(segmentation, self.height, self.width)
            else:
                rle = segmentation
            masks[index] = torch.from_numpy(mask_utils.decode(rle).astype(bool))
        return masks


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


def load_coco_detection(annotation_file, image_dir=None, *, policy: str = "skip", class_names=None, masks: bool = False) -> DetectionSet:
    """COCO instances JSON -> boxes per image. ``image_dir`` defaults to ``<root>/images/<split>``
    for ``<root>/annotations/instances_<split>.json`` (the layout :func:`generate_scenes` writes).
    ``masks``: keep each box's ``segmentation`` (a box without one is a problem, as a bad box is)."""
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
        boxes, labels, segmentations = [], [], []
        for annotation in by_image.get(image["id"], []):
            where = f"{path}: annotation {annotation.get('id')} of image {image['id']}"
            if annotation.get("iscrowd", 0):
                continue
            if annotation["category_id"] not in label_of:
                problems.append(f"{where}: unknown category id {annotation['category_id']} (known: {sorted(label_of)}); fix the id or add the category")
                continue
            if masks and not annotation.get("segmentation"):
                problems.append(f"{where}: no segmentation (masks were asked for); add it or load without masks")
                continue
            x, y, w, h = annotation["bbox"]
            if _check_box(x, y, x + w, y + h, image["width"], image["height"], where, problems):
                boxes.append([x, y, x + w, y + h])
                labels.append(label_of[annotation["category_id"]])
                segmentations.append(annotation.get("segmentation"))
        if not by_image.get(image["id"]):
            problems.append(f"{path}: image {image['id']} ({image['file_name']}) has no annotations (kept: a negative image)")
        samples.append(DetectionSample(file, int(image["id"]), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                       torch.tensor(labels, dtype=torch.long), int(image["width"]), int(image["height"]),
                                       segmentations if masks else None))
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


# ---------------------------------------------------------------------------------------------------------
# Training augmentation: one geometry for image, boxes and masks


def _pair(value, name: str) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise ValueError(f"DetectionAugmentation.{name} must be (low, high) with 0 < low <= high, got {tuple(value)}")
    return low, high


@dataclass(frozen=True)
class DetectionAugmentation:
    """What :func:`augment_detection` does to one training image (frozen; recorded in the checkpoint's recipe).

    Geometry, relative to the evaluation frame (the image resized to ``size`` x ``size``): the image is
    scaled by ``s`` (log-uniform in ``scale_range``; < 1 zooms out and pads with ``fill``, > 1 zooms in
    and crops) with an aspect change ``a`` (log-uniform in ``aspect_range``: width x sqrt(a), height / sqrt(a)),
    placed at a uniformly random offset, then mirrored with probability 1/2 when ``flip``. Boxes follow
    exactly and are clipped to the output; a box is dropped when its clipped width or height is under
    ``min_size`` pixels or less than ``min_visible`` of its area remains (SSD keeps boxes whose centre
    stays inside; an area fraction also drops slivers). Photometric jitter changes pixels only:
    brightness x U(1 +- b), contrast and saturation blended by U(1 +- c) / U(1 +- s) around the image's
    mean grey / each pixel's grey, hue rotated by U(+- h) of a turn in YIQ space (SSD's distortions).
    """

    scale_range: tuple[float, float] = (0.6, 1.6)
    aspect_range: tuple[float, float] = (0.8, 1.25)
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.03
    min_visible: float = 0.3
    min_size: float = 2.0
    fill: float = 0.5  # padding in [0, 1] pixels: 0.5 is 0 after the (x - 0.5) / 0.5 normalization

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_range", _pair(self.scale_range, "scale_range"))
        object.__setattr__(self, "aspect_range", _pair(self.aspect_range, "aspect_range"))
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"DetectionAugmentation.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"DetectionAugmentation.hue must be in [0, 0.5] of a turn, got {self.hue}")
        if not 0 <= self.min_visible <= 1 or self.min_size < 0:
            raise ValueError(f"DetectionAugmentation.min_visible must be in [0, 1] and min_size >= 0, got {self.min_visible}, {self.min_size}")

    @property
    def photometric(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.hue))

    def to_dict(self) -> dict:
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(self).items()}


#: the old training transform: the evaluation resize and a horizontal flip, nothing else
FLIP_ONLY = DetectionAugmentation(scale_range=(1.0, 1.0), aspect_range=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
#: SSD-style scale/crop/expand + flip + photometric jitter (the defaults)
SSD_AUGMENTATION = DetectionAugmentation()


@dataclass
class AugmentedSample:
    image: torch.Tensor  # (3, S, S) float in [0, 1]
    boxes: torch.Tensor  # (K, 4) xyxy pixels of the output frame
    labels: torch.Tensor  # (K,)
    kept: torch.Tensor  # (K,) indices of the input boxes that survived
    masks: torch.Tensor | None = None  # (K, S, S) bool instance masks of the kept boxes
    semantic: torch.Tensor | None = None  # (S, S) int64, 255 where padded


def _luma(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB -> (H, W) grey (ITU-R BT.601 weights, YIQ's Y)."""
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


def _jitter(image: torch.Tensor, augmentation: DetectionAugmentation, draws: torch.Tensor) -> torch.Tensor:
    """Photometric distortions of a (3, H, W) [0, 1] image; ``draws`` are 4 uniforms in [0, 1)."""
    b, c, s, h = (2 * draws - 1) * torch.tensor([augmentation.brightness, augmentation.contrast, augmentation.saturation, augmentation.hue])
    image = image * (1 + b)
    mean_grey = _luma(image).mean()
    image = (image - mean_grey) * (1 + c) + mean_grey
    grey = _luma(image)  # (H, W)
    image = (image - grey) * (1 + s) + grey
    if h:
        # a hue turn is a rotation of the chroma plane (I, Q) of YIQ around the luma axis Y
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        angle = 2 * math.pi * float(h)
        rotate = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(angle), -math.sin(angle)], [0.0, math.sin(angle), math.cos(angle)]])
        transform = torch.linalg.inv(to_yiq) @ rotate @ to_yiq
        image = torch.einsum("ij,jhw->ihw", transform, image)
    return image.clamp(0, 1)


def _place(planes: torch.Tensor, size: tuple[int, int], offset: tuple[int, int], out: int, fill, mode: str) -> torch.Tensor:
    """``planes`` (C, H, W) resized to ``size`` (h, w) and pasted at ``offset`` (top, left) on an ``out`` x ``out``
    canvas of ``fill`` (offsets may be negative: the part outside is cut)."""
    (height, width), (top, left) = size, offset
    kwargs = {"mode": mode} if mode == "nearest-exact" else {"mode": mode, "align_corners": False, "antialias": True}
    resized = F.interpolate(planes[None].float(), size=(height, width), **kwargs)[0]
    canvas = torch.full((planes.shape[0], out, out), float(fill))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, out), min(left + width, out)
    if y1 > y0 and x1 > x0:
        canvas[:, y0:y1, x0:x1] = resized[:, y0 - top: y1 - top, x0 - left: x1 - left]
    return canvas


def augment_detection(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, size: int, augmentation: DetectionAugmentation,
                      generator: torch.Generator, *, masks: torch.Tensor | None = None, semantic: torch.Tensor | None = None) -> AugmentedSample:
    """One random draw of ``augmentation`` applied to an image (3, H, W) in [0, 1], its xyxy pixel ``boxes``
    (M, 4) and ``labels`` (M,), and optionally its instance ``masks`` (M, H, W) and ``semantic`` mask (H, W).

    The same geometry moves every input (image bilinear with antialiasing, masks nearest with pixel
    centres); the output is ``size`` x ``size``. With instance masks each kept box becomes the tight box
    of its transformed mask (exact where a cut object's clipped box would be too loose; Detectron2's
    ``recompute_boxes``), and a box whose mask left the crop is dropped. Deterministic in ``generator``'s
    state: the same state gives the same sample, and the number of draws does not depend on the options.
    """
    height, width = image.shape[-2:]
    draws = torch.rand(9, generator=generator)  # fixed count: scale, aspect, top, left, flip, 4 photometric
    (s_low, s_high), (a_low, a_high) = augmentation.scale_range, augmentation.aspect_range
    scale = math.exp(math.log(s_low) + (math.log(s_high) - math.log(s_low)) * float(draws[0]))
    aspect = math.exp(math.log(a_low) + (math.log(a_high) - math.log(a_low)) * float(draws[1]))
    new_w, new_h = max(1, round(size * scale * math.sqrt(aspect))), max(1, round(size * scale / math.sqrt(aspect)))
    # offset of the resized image's top-left corner in the output: a crop when it is larger, a pad when smaller
    top = min(0, size - new_h) + math.floor(float(draws[2]) * (abs(size - new_h) + 1))
    left = min(0, size - new_w) + math.floor(float(draws[3]) * (abs(size - new_w) + 1))
    flip = augmentation.flip and float(draws[4]) < 0.5
    if augmentation.photometric:
        image = _jitter(image.float(), augmentation, draws[5:9])
    out_image = _place(image, (new_h, new_w), (top, left), size, augmentation.fill, "bilinear").clamp(0, 1)
    factors = torch.tensor([new_w / width, new_h / height] * 2)
    moved = boxes.float().reshape(-1, 4) * factors + torch.tensor([left, top] * 2, dtype=torch.float32)
    clipped = moved.clamp(0, size)
    area = lambda b: (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)  # noqa: E731
    width_out, height_out = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = ((width_out >= augmentation.min_size) & (height_out >= augmentation.min_size) & (width_out > 0) & (height_out > 0)
            & (area(clipped) >= augmentation.min_visible * area(moved)))  # a zero-area box is never kept
    kept = torch.nonzero(keep).flatten()
    out_boxes, out_masks = clipped[kept], None
    if masks is not None:
        out_masks = _place(masks[kept], (new_h, new_w), (top, left), size, 0.0, "nearest-exact") > 0.5
    out_semantic = None if semantic is None else _place(semantic[None], (new_h, new_w), (top, left), size, 255, "nearest-exact")[0].long()
    if flip:
        out_image = out_image.flip(-1)
        out_boxes = torch.stack((size - out_boxes[:, 2], out_boxes[:, 1], size - out_boxes[:, 0], out_boxes[:, 3]), dim=1)
        out_masks = None if out_masks is None else out_masks.flip(-1)
        out_semantic = None if out_semantic is None else out_semantic.flip(-1)
    if out_masks is not None:
        present = out_masks.flatten(1).any(1)
        kept, out_masks = kept[present], out_masks[present]
        rows, cols = out_masks.any(2), out_masks.any(1)  # (K, S) which rows / columns each mask touches
        index = torch.arange(size)
        out_boxes = torch.stack([torch.where(cols, index, size).min(1).values, torch.where(rows, index, size).min(1).values,
                                 torch.where(cols, index, -1).max(1).values + 1, torch.where(rows, index, -1).max(1).values + 1], 1).float()
    return AugmentedSample(out_image.contiguous(), out_boxes.reshape(-1, 4), labels[kept], kept, out_masks, out_semantic)
