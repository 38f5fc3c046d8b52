"""A seeded procedural scene generator for detection and segmentation, written to disk in COCO format.

The toolkit ships no dataset downloads, so the dense tasks need an offline default whose labels are
exact. Scenes are built from the *real* photographs and textures bundled with installed packages
(scikit-image's ``skimage.data`` images, scikit-learn's ``china.jpg``/``flower.jpg``): a photo crop
is the background, and K object classes — each a fixed silhouette (polygon or skimage's horse) with
its own tinted texture — are pasted with random affine warps (rotation, anisotropic scale, shear)
in random depth order, so later objects occlude earlier ones. Every label is computed from the
exact per-pixel instance map *after* occlusion: the visible mask, its tight box and its area.
Object sizes are drawn evenly over COCO's area bins (small < 32², medium, large > 96², scaled with
``image_size``/320), so APs/APm/APl all have support.

Layout under ``root`` (what the real COCO/semantic-mask loaders read)::

    images/<split>/<stem>.jpg
    annotations/instances_<split>.json   # images, categories (ids 1..K), annotations
    masks/<split>/<stem>.png             # uint8: 0 background, 1..K categories in order

COCO conventions: ``bbox`` is ``[x, y, w, h]`` in pixels where pixel ``(r, c)`` covers
``[c, c+1) x [r, r+1)``, ``area`` is the visible mask's pixel count, ``segmentation`` is compressed
RLE (pycocotools), ``iscrowd`` is 0. Objects occluded below ``MIN_VISIBLE_FRACTION`` of their own
area (or a few pixels) are removed from the scene before compositing, so nothing unlabeled shows.
The semantic masks need no ignore label (255 is reserved by convention but unused).
"""

from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write_text

__all__ = ["SCENE_CLASS_NAMES", "generate_scenes", "COCO_SMALL_AREA", "COCO_LARGE_AREA"]

#: COCO's area-bin boundaries (pixels), used by APs/APm/APl
COCO_SMALL_AREA = 32**2
COCO_LARGE_AREA = 96**2

#: object classes in category order (category id = index + 1); ``num_classes`` takes a prefix
SCENE_CLASS_NAMES = ("disc", "square", "triangle", "star", "horse", "ring", "cross", "crescent")

#: per-class texture source (grayscale skimage image) and RGB tint, so shape and appearance both
#: identify the class
_CLASS_TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "text", "page")
_CLASS_TINTS = (
    (1.0, 0.35, 0.3), (0.35, 1.0, 0.4), (0.35, 0.45, 1.0), (1.0, 0.95, 0.3),
    (1.0, 0.4, 1.0), (0.3, 1.0, 1.0), (1.0, 0.65, 0.2), (0.85, 0.85, 0.85),
)
_BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                "immunohistochemistry", "china.jpg", "flower.jpg")

#: objects hidden below this fraction of their own area are taken out of the scene
MIN_VISIBLE_FRACTION = 0.3
MIN_VISIBLE_PIXELS = 12
_TEMPLATE = 128  # canonical silhouette/texture side (pixels)


def _polygon_mask(points: np.ndarray) -> np.ndarray:
    from skimage.draw import polygon

    mask = np.zeros((_TEMPLATE, _TEMPLATE), dtype=bool)
    rows, cols = polygon(points[:, 1] * (_TEMPLATE - 1), points[:, 0] * (_TEMPLATE - 1), mask.shape)
    mask[rows, cols] = True
    return mask


@lru_cache(maxsize=None)
def _silhouette(name: str) -> np.ndarray:
    """(128, 128) bool template filling the square, for class ``name``."""
    yy, xx = np.mgrid[0:_TEMPLATE, 0:_TEMPLATE] / (_TEMPLATE - 1) - 0.5
    radius = np.hypot(xx, yy)
    if name == "disc":
        return radius <= 0.5
    if name == "ring":
        return (radius <= 0.5) & (radius >= 0.3)
    if name == "crescent":
        return (radius <= 0.5) & (np.hypot(xx - 0.22, yy + 0.1) > 0.38)
    if name == "square":
        return np.ones((_TEMPLATE, _TEMPLATE), dtype=bool)
    if name == "cross":
        return (np.abs(xx) <= 0.17) | (np.abs(yy) <= 0.17)
    if name == "triangle":
        return _polygon_mask(np.array([[0.5, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    if name == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        return _polygon_mask(np.stack([0.5 + radii * np.cos(angles), 0.5 - radii * np.sin(angles)], 1))
    if name == "horse":
        from skimage import data
        from skimage.transform import resize

        horse = ~data.horse()  # True on the animal
        rows, cols = np.nonzero(horse)
        horse = horse[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
        return resize(horse.astype(float), (_TEMPLATE, _TEMPLATE), order=0, anti_aliasing=False) > 0.5
    raise ValueError(f"unknown scene class {name!r}; known: {', '.join(SCENE_CLASS_NAMES)}")


def _sklearn_sample_image(name: str) -> np.ndarray:
    """scikit-learn's bundled sample photo, read from its package data without importing sklearn
    (the import costs seconds; the file is what ``sklearn.datasets.load_sample_image`` reads)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("generate_scenes needs scikit-learn installed (its china.jpg/flower.jpg photos)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images" / name
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A bundled photo as float32 (H, W, 3) in [0, 1]."""
    if name.endswith(".jpg"):
        image = _sklearn_sample_image(name)
    else:
        from skimage import data

        image = getattr(data, name)()
    image = np.asarray(image, dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def _random_crop(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of at least half the short side, resized to ``size``x``size``."""
    from skimage.transform import resize

    height, width = image.shape[:2]
    side = int(rng.integers(min(height, width) // 2, min(height, width) + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = image[top: top + side, left: left + side]
    return resize(crop, (size, size), order=1, anti_aliasing=side > size).astype(np.float32)


def _sample_side(rng: np.random.Generator, image_size: int) -> float:
    """The object's target visible side (sqrt of area) drawn evenly over COCO's three area bins."""
    scale = image_size / 320.0
    low, high = [(8.0, 28.0), (36.0, 88.0), (104.0, 190.0)][int(rng.integers(0, 3))]
    return float(np.exp(rng.uniform(np.log(low * scale), np.log(high * scale))))


def _affine_to_canvas(rng: np.random.Generator, side: float, image_size: int) -> np.ndarray:
    """3x3 matrix mapping template pixel (x, y) to canvas (x, y): scale, shear, rotate, translate."""
    aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
    scale_x, scale_y = side * aspect / _TEMPLATE, side / aspect / _TEMPLATE
    shear = float(rng.uniform(-0.3, 0.3))
    angle = float(rng.uniform(-np.pi, np.pi))
    centre = np.array([_TEMPLATE / 2, _TEMPLATE / 2])
    linear = (np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
              @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale_x, scale_y]))
    # the centre lands anywhere on the canvas (objects may be cut by the border)
    target = rng.uniform(0.05 * image_size, 0.95 * image_size, size=2)
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = target - linear @ centre
    return matrix


def _warp(template: np.ndarray, to_canvas: np.ndarray, image_size: int, order: int) -> np.ndarray:
    """``template`` (T, T[, C]) warped onto the (S, S[, C]) canvas; zeros outside."""
    from scipy.ndimage import affine_transform

    inverse = np.linalg.inv(to_canvas)
    # scipy indexes (row, col): swap x/y in the matrix
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    inverse_rc = swap @ inverse @ swap
    if template.ndim == 2:
        return affine_transform(template, inverse_rc, output_shape=(image_size, image_size),
                                order=order, mode="constant", cval=0.0)
    channels = [affine_transform(template[..., c], inverse_rc, output_shape=(image_size, image_size),
                                 order=order, mode="constant", cval=0.0) for c in range(template.shape[2])]
    return np.stack(channels, axis=2)


def _class_texture(class_index: int, rng: np.random.Generator) -> np.ndarray:
    """(T, T, 3) float texture patch: a random crop of the class's bundled texture, tinted."""
    from skimage.transform import resize

    source = _photo(_CLASS_TEXTURES[class_index])[..., 0]
    height, width = source.shape
    side = int(rng.integers(min(height, width) // 3, min(height, width) // 2 + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    patch = resize(source[top: top + side, left: left + side], (_TEMPLATE, _TEMPLATE), order=1)
    patch = 0.25 + 0.75 * patch  # keep the tint visible on dark textures
    brightness = float(rng.uniform(0.75, 1.15))
    return np.clip(patch[..., None] * np.asarray(_CLASS_TINTS[class_index]) * brightness, 0, 1)


def _render_scene(rng: np.random.Generator, image_size: int, num_classes: int):
    """One scene: (image uint8 (S,S,3), instance map int32 (S,S) with -1 background, classes list)."""
    image = _random_crop(_photo(_BACKGROUNDS[int(rng.integers(0, len(_BACKGROUNDS)))]), rng, image_size)
    num_objects = int(rng.integers(1, 7))
    objects = []
    for _ in range(num_objects):
        class_index = int(rng.integers(0, num_classes))
        to_canvas = _affine_to_canvas(rng, _sample_side(rng, image_size), image_size)
        mask = _warp(_silhouette(SCENE_CLASS_NAMES[class_index]).astype(np.float32), to_canvas,
                     image_size, order=0) > 0.5
        texture = _warp(_class_texture(class_index, rng), to_canvas, image_size, order=1)
        objects.append((class_index, mask, texture))

    def instance_map(keep: list[int]) -> np.ndarray:
        ids = np.full((image_size, image_size), -1, dtype=np.int32)
        for index in keep:  # later objects are in front
            ids[objects[index][1]] = index
        return ids

    keep = [i for i, (_, mask, _) in enumerate(objects) if mask.sum() >= MIN_VISIBLE_PIXELS]
    ids = instance_map(keep)
    # removing a hidden object only uncovers pixels of earlier objects, so one pruning pass suffices
    keep = [i for i in keep if (visible := int((ids == i).sum())) >= MIN_VISIBLE_PIXELS
            and visible >= MIN_VISIBLE_FRACTION * int(objects[i][1].sum())]
    ids = instance_map(keep)
    for index in keep:
        visible = ids == index
        image[visible] = objects[index][2][visible]
    classes = {index: objects[index][0] for index in keep}
    return (np.clip(image * 255.0 + 0.5, 0, 255)).astype(np.uint8), ids, classes


def _save_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as temporary:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            Image.fromarray(array).save(temporary, format="JPEG", quality=95)
        else:
            Image.fromarray(array).save(temporary, format="PNG")


def generate_scenes(root, *, split: str = "train", num_images: int = 256, image_size: int = 320,
                    num_classes: int = 5, seed: int = 0) -> Path:
    """Write ``num_images`` seeded scenes of split ``split`` under ``root``; return the COCO JSON path.

    Deterministic in (``seed``, ``split``, ``num_images``, ``image_size``, ``num_classes``): the
    same call writes byte-identical annotations and masks. Different splits draw different scenes.
    """
    from pycocotools import mask as mask_utils

    if not 1 <= num_classes <= len(SCENE_CLASS_NAMES):
        raise ValueError(f"generate_scenes: num_classes must be 1..{len(SCENE_CLASS_NAMES)}, got {num_classes}")
    if num_images < 1:
        raise ValueError(f"generate_scenes: num_images must be >= 1, got {num_images}")
    if image_size < 32:
        raise ValueError(f"generate_scenes: image_size must be >= 32, got {image_size}")
    if not split or "/" in split or split.startswith("."):
        raise ValueError(f"generate_scenes: split must be a plain name such as 'train', got {split!r}")
    root = Path(root)
    image_dir, mask_dir = root / "images" / split, root / "masks" / split
    annotation_path = root / "annotations" / f"instances_{split}.json"
    for directory in (image_dir, mask_dir, annotation_path.parent):
        directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])

    images, annotations = [], []
    for image_index in range(num_images):
        stem = f"{split}_{image_index:06d}"
        pixels, ids, classes = _render_scene(rng, image_size, num_classes)
        semantic = np.zeros((image_size, image_size), dtype=np.uint8)
        for instance, class_index in classes.items():
            visible = ids == instance
            semantic[visible] = class_index + 1
            rows, cols = np.nonzero(visible)
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x0, y0 = int(cols.min()), int(rows.min())
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_index + 1, "category_id": class_index + 1,
                "bbox": [x0, y0, int(cols.max()) - x0 + 1, int(rows.max()) - y0 + 1],
                "area": int(visible.sum()), "iscrowd": 0, "segmentation": rle,
            })
        _save_image(image_dir / f"{stem}.jpg", pixels)
        _save_image(mask_dir / f"{stem}.png", semantic)
        images.append({"id": image_index + 1, "file_name": f"{stem}.jpg", "width": image_size,
                       "height": image_size})
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"}
                  for i, name in enumerate(SCENE_CLASS_NAMES[:num_classes])]
    document = {
        "info": {"description": "edgevision procedural scenes", "split": split, "seed": seed,
                 "image_size": image_size, "num_classes": num_classes},
        "images": images, "annotations": annotations, "categories": categories,
    }
    atomic_write_text(annotation_path, json.dumps(document))
    return annotation_path
