"""Semantic-segmentation data: real formats, paired augmentation, the embedded scenes default.

Formats (``--data`` forms; each has a ``train`` and a ``val`` split):

* ``voc:DIR`` — Pascal VOC 2012: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette
  PNGs whose indices are the labels; 255 marks object boundaries), ``ImageSets/Segmentation/<split>.txt``.
* ``cityscapes:DIR`` — ``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` with
  ``gtFine/<split>/<city>/<x>_gtFine_labelTrainIds.png`` or, failing that, ``..._labelIds.png``
  mapped by the official labelId -> trainId table (19 classes, everything else 255).
* ``coco:FILE.json`` — semantic masks rasterised from COCO instance annotations with pycocotools:
  category ids -> 1..K in the file's order (0 background), ``iscrowd`` regions -> 255, later
  annotations painted over earlier ones. The val split is ``instances_val*.json`` beside it.
* ``masks:DIR`` — ``images/<split>/<stem>.*`` paired with ``masks/<split>/<stem>.png`` (0 background,
  1..K, 255 ignore); class names from ``annotations/instances_<split>.json`` when present. This is
  the layout :func:`edgevision.datasets.scenes.generate_scenes` writes, which is the embedded
  ``default`` (seeded procedural scenes from the photos bundled with scikit-image / scikit-learn).

Bad input (a missing image or mask, an image/mask size mismatch, a mask value that is no class and
not 255, an annotation naming an unknown image or category) is one line per problem; the loader's
``on_error`` policy is ``"skip"`` (drop the sample, keep the lines in ``report``) or ``"fatal"``
(raise :class:`~edgevision.datasets.base.DataError` at the first problem).

Paired augmentation (:class:`PairedTransform`): random scale, random crop padded with 0 (image)
and 255 (mask), horizontal flip — the same geometry for both; images bilinear, masks nearest.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..datasets.base import DataError
from .metrics import VOID_LABEL

__all__ = [
    "IGNORE_INDEX", "VOC_CLASSES", "CITYSCAPES_CLASSES", "CITYSCAPES_LABEL_TO_TRAIN", "SEG_DATA_FORMS",
    "SegmentationDataset", "PairedTransform", "LoadReport", "load_voc", "load_cityscapes", "load_coco_semantic",
    "load_mask_folder", "load_segmentation_data",
]

IGNORE_INDEX = VOID_LABEL  # the loaders write 255 for "no label"; one value with the metrics
SEG_DATA_FORMS = "default, voc:DIR, cityscapes:DIR, coco:FILE.json or masks:DIR"
ON_ERROR = ("skip", "fatal")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
#: cityscapesScripts ``labels.py``: labelId -> trainId for the 19 evaluated classes (others -> 255)
CITYSCAPES_LABEL_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def _label_lut(mapping: dict[int, int]) -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for source, target in mapping.items():
        lut[source] = target
    return lut


@dataclass
class LoadReport:
    """What a loader skipped (one line per problem) and noticed."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, line: str, on_error: str) -> None:
        if on_error == "fatal":
            raise DataError(line + " (on_error='skip' drops such samples and reports them)")
        self.problems.append(line)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("P", "L", "I", "I;16"):
            raise DataError(f"{path}: a label PNG must be single-channel (palette or grey), got mode {image.mode}")
        return np.array(image, dtype=np.int64)


class SegmentationDataset(Dataset):
    """``(image uint8 (3, H, W), mask int64 (H, W))`` samples, decoded lazily; ``transform`` applies to both.

    ``samples``: ``(image path, mask source)``; a mask source is a PNG path or a callable returning
    the mask array (COCO rasterisation). ``lut``: a 256-entry label remap (Cityscapes labelIds).
    """

    def __init__(self, samples, class_names, *, lut: np.ndarray | None = None, transform=None, report: LoadReport | None = None):
        if not samples:
            raise DataError("no segmentation samples to load (check the path and the split)")
        self.samples = list(samples)
        self.class_names = tuple(class_names)
        self.lut = lut
        self.transform = transform
        self.report = report or LoadReport()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def mask(self, index: int) -> np.ndarray:
        source = self.samples[index][1]
        mask = source() if callable(source) else _read_mask(source)
        return self.lut[np.clip(mask, 0, 255)].astype(np.int64) if self.lut is not None else mask

    def __getitem__(self, index: int):
        image = torch.from_numpy(np.ascontiguousarray(_read_image(self.samples[index][0]))).permute(2, 0, 1).contiguous()
        mask = torch.from_numpy(self.mask(index))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask


def validate_samples(dataset: SegmentationDataset, on_error: str) -> SegmentationDataset:
    """Decode every mask once: drop (or refuse) missing files, size mismatches and unknown class ids."""
    from PIL import Image

    kept = []
    for index, (image_path, source) in enumerate(dataset.samples):
        where = Path(image_path).name
        if not Path(image_path).is_file():
            dataset.report.problem(f"image {image_path} is missing", on_error)
            continue
        if not callable(source) and not Path(source).is_file():
            dataset.report.problem(f"{where}: its mask {source} is missing", on_error)
            continue
        try:
            mask = dataset.mask(index)
            with Image.open(image_path) as image:
                width, height = image.size
        except (OSError, DataError) as error:
            dataset.report.problem(f"{where}: unreadable ({error})", on_error)
            continue
        if mask.shape != (height, width):
            dataset.report.problem(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}", on_error)
            continue
        values = np.unique(mask)
        unknown = values[(values >= dataset.num_classes) & (values != IGNORE_INDEX) | (values < 0)]
        if unknown.size:
            dataset.report.problem(
                f"{where}: mask has class ids {unknown.tolist()[:5]} outside 0..{dataset.num_classes - 1} (and not {IGNORE_INDEX}, the ignore label)", on_error
            )
            continue
        kept.append((image_path, source))
    if not kept:
        raise DataError(f"every sample was rejected ({len(dataset.report.problems)} problems; first: {dataset.report.problems[0]})")
    dataset.samples = kept
    return dataset


class PairedTransform:
    """Random scale -> pad (0 / 255) + random crop to ``crop_size`` -> horizontal flip; or a plain resize for eval.

    The same geometry is applied to image and mask: bilinear for the image, nearest for the mask (labels
    are never interpolated). Eval (``train=False``) resizes both to ``crop_size`` x ``crop_size``, as
    torchvision's reference evaluation resizes image and target together.
    """

    def __init__(self, crop_size: int, *, train: bool, scale_range: tuple[float, float] = (0.5, 2.0), flip: bool = True, seed: int | None = None) -> None:
        self.crop_size, self.train, self.scale_range, self.flip = crop_size, train, scale_range, flip
        self.rng = random.Random(seed)

    @staticmethod
    def _resize(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]):
        image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
        return image.round().clamp(0, 255).to(torch.uint8), mask.long()

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        size = self.crop_size
        if not self.train:
            return self._resize(image, mask, (size, size))
        height, width = image.shape[-2:]
        scale = self.rng.uniform(*self.scale_range) * size / min(height, width)
        image, mask = self._resize(image, mask, (max(1, round(height * scale)), max(1, round(width * scale))))
        pad_h, pad_w = max(0, size - image.shape[-2]), max(0, size - image.shape[-1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = self.rng.randint(0, image.shape[-2] - size)
        left = self.rng.randint(0, image.shape[-1] - size)
        image, mask = image[:, top : top + size, left : left + size], mask[top : top + size, left : left + size]
        if self.flip and self.rng.random() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()


def _check_policy(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")


def load_voc(root, split: str = "train", *, on_error: str = "skip") -> SegmentationDataset:
    """Pascal VOC 2012 segmentation split (``ImageSets/Segmentation/<split>.txt``)."""
    _check_policy(on_error)
    root = Path(root)
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"{listing} not found; voc:DIR must be a VOC2012 folder (JPEGImages, SegmentationClass, ImageSets/Segmentation)")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    samples = [(root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids]
    return validate_samples(SegmentationDataset(samples, VOC_CLASSES), on_error)


def load_cityscapes(root, split: str = "train", *, on_error: str = "skip") -> SegmentationDataset:
    """Cityscapes fine annotations: trainId PNGs, or labelId PNGs remapped to the 19 trainIds."""
    _check_policy(on_error)
    root = Path(root)
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not images:
        raise DataError(f"no {root}/leftImg8bit/{split}/<city>/*_leftImg8bit.png files; cityscapes:DIR is the folder holding leftImg8bit and gtFine")
    samples, lut = [], None
    for image in images:
        stem = image.name[: -len("_leftImg8bit.png")]
        folder = root / "gtFine" / split / image.parent.name
        train_ids = folder / f"{stem}_gtFine_labelTrainIds.png"
        if train_ids.is_file():
            samples.append((image, train_ids))
        else:
            samples.append((image, folder / f"{stem}_gtFine_labelIds.png"))
            lut = _label_lut(CITYSCAPES_LABEL_TO_TRAIN)
    if lut is not None and any(str(source).endswith("labelTrainIds.png") for _, source in samples):
        raise DataError(f"{root}/gtFine/{split} mixes labelTrainIds and labelIds PNGs; keep one kind")
    return validate_samples(SegmentationDataset(samples, CITYSCAPES_CLASSES, lut=lut), on_error)


def _coco_images_dir(annotation: Path, split: str) -> Path:
    root = annotation.parent.parent
    for candidate in (root / "images" / split, root / split, root / f"{split}2017", root / "images"):
        if candidate.is_dir():
            return candidate
    raise DataError(f"no image folder for {annotation} (looked for images/{split}, {split}, {split}2017 under {root})")


def load_coco_semantic(annotation, images_dir=None, *, on_error: str = "skip") -> SegmentationDataset:
    """Semantic masks from COCO instance annotations (pycocotools): class 0 background, 1..K the categories."""
    from pycocotools import mask as mask_utils

    _check_policy(on_error)
    annotation = Path(annotation)
    try:
        document = json.loads(annotation.read_text())
        categories = sorted(document["categories"], key=lambda c: c["id"])
        images = document["images"]
        annotations = document.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{annotation}: not a readable COCO instances file ({error})") from None
    split = annotation.stem.split("_", 1)[-1]
    images_dir = Path(images_dir) if images_dir is not None else _coco_images_dir(annotation, split)
    report = LoadReport()
    class_of = {c["id"]: index + 1 for index, c in enumerate(categories)}
    by_image: dict[int, list[dict]] = {image["id"]: [] for image in images}
    for ann in annotations:
        if ann.get("image_id") not in by_image:
            report.problem(f"annotation {ann.get('id')} points at image id {ann.get('image_id')}, which the file does not list", on_error)
        elif ann.get("category_id") not in class_of:
            report.problem(f"annotation {ann.get('id')} has category id {ann.get('category_id')}, not in the file's categories", on_error)
        elif "segmentation" not in ann:
            report.problem(f"annotation {ann.get('id')} has no segmentation (a box-only file cannot give semantic masks)", on_error)
        else:
            by_image[ann["image_id"]].append(ann)
    unannotated = sum(1 for anns in by_image.values() if not anns)
    if unannotated:
        report.notes.append(f"{unannotated} images have no annotations (kept as all-background)")

    def rasterise(image: dict, anns: list[dict]):
        def mask() -> np.ndarray:
            height, width = image["height"], image["width"]
            out = np.zeros((height, width), dtype=np.int64)
            for ann in anns:  # file order: later annotations paint over earlier ones
                segmentation = ann["segmentation"]
                if isinstance(segmentation, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
                elif isinstance(segmentation.get("counts"), list):
                    rle = mask_utils.frPyObjects(segmentation, height, width)
                else:
                    rle = segmentation
                pixels = mask_utils.decode(rle).astype(bool)
                out[pixels] = IGNORE_INDEX if ann.get("iscrowd") else class_of[ann["category_id"]]
            return out

        return mask

    samples = [(images_dir / image["file_name"], rasterise(image, by_image[image["id"]])) for image in images]
    names = ("background",) + tuple(c["name"] for c in categories)
    return validate_samples(SegmentationDataset(samples, names, report=report), on_error)


def load_mask_folder(root, split: str = "train", *, on_error: str = "skip", class_names=None) -> SegmentationDataset:
    """``images/<split>/<stem>.*`` + ``masks/<split>/<stem>.png`` (the scene generator's layout)."""
    _check_policy(on_error)
    root = Path(root)
    image_dir, mask_dir = root / "images" / split, root / "masks" / split
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir} not found; masks:DIR needs images/<split>/ and masks/<split>/ (PNG labels, 0 background)")
    if class_names is None:
        coco = root / "annotations" / f"instances_{split}.json"
        if coco.is_file():
            categories = sorted(json.loads(coco.read_text())["categories"], key=lambda c: c["id"])
            class_names = ("background",) + tuple(c["name"] for c in categories)
        else:
            raise DataError(f"{root}: no annotations/instances_{split}.json to name the classes; pass class_names")
    images = {p.stem: p for p in sorted(image_dir.glob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    report = LoadReport()
    for stem in sorted({p.stem for p in mask_dir.glob("*.png")} - set(images)):
        report.problem(f"mask {mask_dir / (stem + '.png')} has no image in {image_dir}", on_error)
    samples = [(path, mask_dir / f"{stem}.png") for stem, path in images.items()]
    return validate_samples(SegmentationDataset(samples, class_names, report=report), on_error)


def _split_file(path: Path, split: str) -> Path:
    candidates = sorted(path.parent.glob(f"instances_{split}*.json"))
    if not candidates:
        raise DataError(f"no instances_{split}*.json beside {path}; coco:FILE needs a {split} split file in the same folder")
    return candidates[0]


def load_segmentation_data(text: str, *, on_error: str = "skip", cache_dir=None, scene_images: tuple[int, int] = (96, 32),
                           scene_size: int = 160, seed: int = 0) -> tuple[SegmentationDataset, SegmentationDataset]:
    """``--data`` text -> (train, val) datasets. ``default``: the embedded procedural scenes, generated into ``cache_dir``."""
    kind, _, path = text.partition(":")
    kind = kind.strip().lower()
    if kind == "default":
        if path:
            raise DataError(f"'default' takes no path, got {text!r}")
        import tempfile

        from ..datasets.scenes import generate_scenes

        root = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="edgevision-scenes-"))
        root = root / f"scenes-{scene_size}-{scene_images[0]}-{scene_images[1]}-seed{seed}"
        for split, count in zip(("train", "val"), scene_images):
            if not (root / "annotations" / f"instances_{split}.json").is_file():
                generate_scenes(root, split=split, num_images=count, image_size=scene_size, seed=seed)
        return load_mask_folder(root, "train", on_error=on_error), load_mask_folder(root, "val", on_error=on_error)
    if not path:
        raise DataError(f"unknown segmentation dataset {text!r}; use {SEG_DATA_FORMS}")
    if kind == "voc":
        return load_voc(path, "train", on_error=on_error), load_voc(path, "val", on_error=on_error)
    if kind == "cityscapes":
        return load_cityscapes(path, "train", on_error=on_error), load_cityscapes(path, "val", on_error=on_error)
    if kind == "masks":
        return load_mask_folder(path, "train", on_error=on_error), load_mask_folder(path, "val", on_error=on_error)
    if kind == "coco":
        file = Path(path)
        if not file.is_file():
            raise DataError(f"{file} not found; coco: takes an instances_<split>.json file")
        return load_coco_semantic(_split_file(file, "train"), on_error=on_error), load_coco_semantic(_split_file(file, "val"), on_error=on_error)
    raise DataError(f"unknown segmentation dataset {text!r}; use {SEG_DATA_FORMS}")
