"""Depth data: procedurally ray-cast scenes with exact metric depth, the real Middlebury motorcycle
scene, an NYU-v2-layout folder loader, and augmentations that keep image and depth consistent.

**Procedural scenes** (:func:`render_scene`): a pinhole camera (NYU-v2's Kinect intrinsics, scaled
to the image size) in a box-shaped room (floor, ceiling, three walls) holding spheres and boxes
resting on the floor, every surface textured with a real photograph bundled in scikit-image or
scikit-learn and Lambert-shaded by a point light. Depth is computed analytically per pixel ray
(plane / sphere / slab intersections), so it is exact; it is the **z-depth** (distance along the
optical axis), the NYU-v2 convention. Seeded and deterministic.

**Motorcycle** (:func:`motorcycle_scene`): ``skimage.data.stereo_motorcycle()`` is the Middlebury
2014 "Motorcycle" pair (Scharstein et al., GCPR 2014) downsampled 4x; its docstring gives the
calibration valid for that resolution: f = 994.978 px, baseline = 193.001 mm, principal-point
offset between the two cameras doffs = 31.086 px. Middlebury's disparity-to-depth rule is
Z = f * baseline / (d + doffs) (``calib.txt`` readme of the 2014 data set); pixels without ground
truth (inf in the map) are marked invalid (depth 0). The depth ranges 2.1 - 5.0 m.

**NYU-v2 layout** (:class:`NYUDepthFolder`): the layout BTS / AdaBins / NeWCRFs use for the
"sync" NYU-v2 release: ``ROOT/<scene>/rgb_<id>.<ext>`` with ``ROOT/<scene>/sync_depth_<id>.png``
(16-bit PNG, millimetres: depth = value / 1000, 0 = missing), listed by a split file
``ROOT/<split>.txt`` whose lines are ``/<scene>/rgb_<id>.jpg /<scene>/sync_depth_<id>.png <focal>``
(the third column, the focal length, is optional). Without a split file the folder is scanned.
Depth may also be stored as ``.npy`` float32 metres (non-finite values are refused).
:func:`write_nyu_layout` writes scenes in exactly this layout, so the real loader reads them.
``downsample=2`` halves every frame as FCRN trains (Laina et al. 2016, Sec. 4.1: NYU's 640x480 down-sampled
to 320x240, then the 304x228 crop), see :func:`downsample_pair`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "DepthDataError",
    "Intrinsics",
    "NYU_INTRINSICS",
    "NYU_DEPTH_SCALE",
    "MOTORCYCLE_CALIBRATION",
    "texture_bank",
    "render_scene",
    "motorcycle_scene",
    "write_nyu_layout",
    "NYUDepthFolder",
    "ProceduralDepthScenes",
    "DepthSamples",
    "augment_pair",
    "downsample_pair",
    "checkpoint_downsample",
]

#: 16-bit PNG value per metre in the NYU-v2 "sync" release (millimetres)
NYU_DEPTH_SCALE = 1000.0


class DepthDataError(ValueError):
    """Depth data that cannot be used as given; the message names the file and the fix."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels at ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled(self, width: int, height: int) -> "Intrinsics":
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)


#: NYU-v2's Kinect RGB camera at 640 x 480 (the toolbox's camera_params.m: fx_rgb, fy_rgb, cx_rgb, cy_rgb)
NYU_INTRINSICS = Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, 640, 480)

#: skimage.data.stereo_motorcycle's docstring (valid for its 4x-downsampled 741 x 500 images)
MOTORCYCLE_CALIBRATION = {"focal_px": 994.978, "cx": 311.193, "cy": 254.877, "doffs_px": 31.086, "baseline_m": 0.193001}


# ------------------------------------------------------------------------------------------------
# textures


@functools.lru_cache(maxsize=1)
def texture_bank() -> tuple[np.ndarray, ...]:
    """Real photographs as float32 RGB in [0, 1]: scikit-image's bundled images and scikit-learn's two (read once)."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    images = [getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "immunohistochemistry")]
    images += [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    bank = []
    for image in images:
        image = np.asarray(image, dtype=np.float32) / 255.0
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        bank.append(np.ascontiguousarray(image[..., :3]))
    return tuple(bank)


def _sample(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest texel at tiled coordinates (u, v) in texture widths/heights -> [K, 3]."""
    height, width = texture.shape[:2]
    rows = np.floor(np.mod(v, 1.0) * height).astype(np.int64).clip(0, height - 1)
    cols = np.floor(np.mod(u, 1.0) * width).astype(np.int64).clip(0, width - 1)
    return texture[rows, cols]


# ------------------------------------------------------------------------------------------------
# ray casting (camera frame: x right, y down, z forward; ray p = t * (dx, dy, 1), so t is the z-depth)


def _rays(intrinsics: Intrinsics) -> np.ndarray:
    """[H*W, 3] ray directions with z = 1 through pixel centres."""
    v, u = np.meshgrid(np.arange(intrinsics.height) + 0.5, np.arange(intrinsics.width) + 0.5, indexing="ij")
    d = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones_like(u)], axis=-1)
    return d.reshape(-1, 3)


def _hit_plane(rays: np.ndarray, axis: int, offset: float) -> np.ndarray:
    """t where the ray meets the plane p[axis] = offset (inf when parallel or behind)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = offset / rays[:, axis]
    return np.where(np.isfinite(t) & (t > 0), t, np.inf)


def _hit_sphere(rays: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    a = (rays * rays).sum(1)
    b = -2.0 * rays @ centre
    c = centre @ centre - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _hit_box(rays: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test: (t of the entry point or inf, index of the entry axis)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = low / rays
        t2 = high / rays
    near = np.minimum(t1, t2)
    far = np.maximum(t1, t2)
    near = np.where(np.isnan(near), -np.inf, near)
    far = np.where(np.isnan(far), np.inf, far)
    t_near, t_far = near.max(1), far.min(1)
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf), near.argmax(1)


def render_scene(seed: int, height: int = 240, width: int = 320, textures: Sequence[np.ndarray] | None = None,
                 intrinsics: Intrinsics | None = None) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """One seeded room: (image float32 [H, W, 3] in [0, 1], z-depth float32 [H, W] in metres, intrinsics)."""
    rng = np.random.default_rng(seed)
    bank = list(textures) if textures is not None else texture_bank()
    camera = (intrinsics or NYU_INTRINSICS).scaled(width, height)
    rays = _rays(camera)
    count = rays.shape[0]

    camera_height = rng.uniform(1.1, 1.6)  # floor at y = +camera_height
    ceiling = -rng.uniform(1.0, 1.6)
    left, right = -rng.uniform(1.5, 3.0), rng.uniform(1.5, 3.0)
    back = rng.uniform(4.0, 9.0)
    # (t, surface id) for the room's planes: 0 floor, 1 ceiling, 2 left, 3 right, 4 back
    planes = [(1, camera_height), (1, ceiling), (0, left), (0, right), (2, back)]
    candidates = [_hit_plane(rays, axis, offset) for axis, offset in planes]
    normals = [np.array(n, dtype=np.float64) for n in ((0, -1, 0), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, -1))]
    surfaces: list[dict] = [{"kind": "plane", "axis": axis, "normal": normal} for (axis, _), normal in zip(planes, normals)]

    for _ in range(int(rng.integers(1, 4))):  # spheres on the floor
        radius = rng.uniform(0.25, 0.7)
        centre = np.array([rng.uniform(left + radius, right - radius), camera_height - radius, rng.uniform(1.5, back - radius)])
        candidates.append(_hit_sphere(rays, centre, radius))
        surfaces.append({"kind": "sphere", "centre": centre, "radius": radius})
    for _ in range(int(rng.integers(1, 4))):  # boxes on the floor
        size = rng.uniform([0.3, 0.3, 0.3], [1.0, 1.2, 1.0])
        x = rng.uniform(left, right - size[0])
        z = rng.uniform(1.2, back - size[2])
        low = np.array([x, camera_height - size[1], z])
        t, axis = _hit_box(rays, low, low + size)
        candidates.append(t)
        surfaces.append({"kind": "box", "low": low, "high": low + size, "entry_axis": axis})

    ts = np.stack(candidates)  # [S, H*W]
    nearest = ts.argmin(0)
    depth = ts[nearest, np.arange(count)]  # every ray leaves through a wall of the closed room: finite
    points = rays * depth[:, None]
    light = np.array([rng.uniform(left * 0.5, right * 0.5), ceiling + 0.2, rng.uniform(1.0, back * 0.6)])
    tile = rng.uniform(0.8, 2.0)  # metres per texture repeat
    chosen = rng.permutation(len(bank))
    image = np.zeros((count, 3), dtype=np.float32)
    for index, surface in enumerate(surfaces):
        pixels = np.nonzero(nearest == index)[0]
        if pixels.size == 0:
            continue
        p = points[pixels]
        texture = bank[chosen[index % len(bank)]]
        if surface["kind"] == "plane":
            axis = surface["axis"]
            others = [a for a in range(3) if a != axis]
            u, v = p[:, others[0]] / tile, p[:, others[1]] / tile
            normal = np.broadcast_to(surface["normal"], p.shape)
        elif surface["kind"] == "sphere":
            normal = (p - surface["centre"]) / surface["radius"]
            u = np.arctan2(normal[:, 0], normal[:, 2]) / (2 * math.pi) + 0.5
            v = np.arccos(np.clip(-normal[:, 1], -1, 1)) / math.pi
        else:
            axis = surface["entry_axis"][pixels]
            centre = (surface["low"] + surface["high"]) / 2
            normal = np.zeros_like(p)
            normal[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis] - centre[axis])
            extent = surface["high"] - surface["low"]
            local = (p - surface["low"]) / extent  # [0, 1] across each face
            u = np.where(axis == 0, local[:, 2], local[:, 0])
            v = np.where(axis == 1, local[:, 2], local[:, 1])
        to_light = light - p
        distance = np.linalg.norm(to_light, axis=1, keepdims=True)
        lambert = np.clip((normal * to_light / distance).sum(1), 0, 1)
        shade = 0.3 + 0.7 * lambert / (1 + 0.05 * distance[:, 0] ** 2)
        image[pixels] = _sample(texture, u, v) * shade[:, None]
    return (image.reshape(height, width, 3).clip(0, 1).astype(np.float32), depth.reshape(height, width).astype(np.float32), camera)


# ------------------------------------------------------------------------------------------------
# the real scene


def motorcycle_scene() -> tuple[np.ndarray, np.ndarray, dict]:
    """Middlebury 2014 Motorcycle (left view): (image float32 [500, 741, 3], depth float32 metres (0 = no ground truth), calibration)."""
    import skimage.data

    left, _right, disparity = skimage.data.stereo_motorcycle()
    calibration = MOTORCYCLE_CALIBRATION
    valid = np.isfinite(disparity)
    with np.errstate(invalid="ignore"):
        depth = calibration["focal_px"] * calibration["baseline_m"] / (disparity + calibration["doffs_px"])
    depth = np.where(valid, depth, 0.0).astype(np.float32)
    return left.astype(np.float32) / 255.0, depth, dict(calibration)


# ------------------------------------------------------------------------------------------------
# the NYU-v2 folder layout


def write_nyu_layout(root: str | Path, scenes: Sequence[tuple[np.ndarray, np.ndarray]], split: str = "train",
                     scene_name: str = "procedural", focal: float | None = None) -> Path:
    """Write (image [H, W, 3] in [0, 1], depth metres [H, W]) pairs as ``ROOT/<scene>/rgb_XXXXX.png`` +
    ``sync_depth_XXXXX.png`` (uint16 mm) and the split file ``ROOT/<split>.txt``; returns the split file."""
    from PIL import Image

    from ..atomic import atomic_write_text

    root = Path(root)
    folder = root / scene_name
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (image, depth) in enumerate(scenes):
        rgb_name, depth_name = f"rgb_{index:05d}.png", f"sync_depth_{index:05d}.png"
        Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(folder / rgb_name)
        millimetres = np.clip(np.round(np.nan_to_num(depth, nan=0.0, posinf=0.0) * NYU_DEPTH_SCALE), 0, 65535).astype(np.uint16)
        Image.fromarray(millimetres).save(folder / depth_name)
        lines.append(f"/{scene_name}/{rgb_name} /{scene_name}/{depth_name}" + (f" {focal:.4f}" if focal else ""))
    split_file = root / f"{split}.txt"
    atomic_write_text(split_file, "\n".join(lines) + "\n")
    return split_file


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as handle:
            image = np.asarray(handle.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as error:
        raise DepthDataError(f"cannot read image {str(path)!r} ({type(error).__name__}: {error}); give a PNG or JPEG") from None
    return image


def _depth_shape(path: Path) -> tuple[int, int]:
    if path.suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DepthDataError(f"cannot read depth {str(path)!r} ({type(error).__name__}: {error})") from None
        if array.ndim != 2:
            raise DepthDataError(f"depth {str(path)!r} has shape {array.shape}; expected a 2-D H x W array of metres")
        return tuple(array.shape)
    from PIL import Image

    try:
        with Image.open(path) as handle:
            return handle.size[1], handle.size[0]
    except (OSError, ValueError) as error:
        raise DepthDataError(f"cannot read depth {str(path)!r} ({type(error).__name__}: {error}); give a 16-bit PNG in millimetres or a .npy in metres") from None


def _read_depth(path: Path, depth_scale: float) -> np.ndarray:
    if path.suffix == ".npy":
        depth = np.load(path, allow_pickle=False)
        if not np.issubdtype(depth.dtype, np.floating) and not np.issubdtype(depth.dtype, np.integer):
            raise DepthDataError(f"depth {str(path)!r} has dtype {depth.dtype}; expected float metres")
        depth = depth.astype(np.float32)
        if not np.isfinite(depth).all():
            bad = int((~np.isfinite(depth)).sum())
            raise DepthDataError(f"depth {str(path)!r} has {bad} non-finite values; mark missing pixels with 0 instead")
    else:
        from PIL import Image

        with Image.open(path) as handle:
            if handle.mode not in ("I;16", "I;16B", "I", "I;16L"):
                raise DepthDataError(f"depth {str(path)!r} is a {handle.mode!r} PNG; expected 16-bit millimetres (NYU-v2 sync_depth_*.png)")
            depth = np.asarray(handle, dtype=np.float32) / depth_scale
    if (depth < 0).any():
        raise DepthDataError(f"depth {str(path)!r} has negative values; depth is metres >= 0 (0 = missing)")
    return depth


class NYUDepthFolder:
    """Pairs of an NYU-v2-layout folder (see the module docstring): ``samples[i]`` = (image path, depth path)."""

    def __init__(self, root: str | Path, split: str = "train", depth_scale: float = NYU_DEPTH_SCALE, downsample: int = 1) -> None:
        self.root = Path(root)
        self.depth_scale = depth_scale
        if downsample not in (1, 2, 4):
            raise DepthDataError(f"NYU-v2 downsample must be 1, 2 (FCRN's 640x480 -> 320x240) or 4, got {downsample}")
        self.downsample = downsample
        if not self.root.is_dir():
            raise DepthDataError(f"NYU-v2 folder {str(self.root)!r} does not exist; give a folder with <scene>/rgb_*.jpg and sync_depth_*.png")
        split_file = self.root / f"{split}.txt"
        if split_file.is_file():
            self.samples = self._from_split_file(split_file)
        else:
            self.samples = self._scan()
        if not self.samples:
            raise DepthDataError(f"NYU-v2 folder {str(self.root)!r} holds no rgb_*/sync_depth_* pairs (and no {split}.txt split file)")
        for image_path, depth_path in self.samples:
            from PIL import Image

            try:
                with Image.open(image_path) as handle:
                    image_size = handle.size[1], handle.size[0]
            except (OSError, ValueError) as error:
                raise DepthDataError(f"cannot read image {str(image_path)!r} ({type(error).__name__}); give a PNG or JPEG") from None
            depth_size = _depth_shape(depth_path)
            if image_size != depth_size:
                raise DepthDataError(
                    f"image {str(image_path)!r} is {image_size[0]}x{image_size[1]} but its depth {str(depth_path)!r} is "
                    f"{depth_size[0]}x{depth_size[1]}; depth must be registered to the image at the same size"
                )

    def _from_split_file(self, split_file: Path) -> list[tuple[Path, Path]]:
        samples = []
        for number, line in enumerate(split_file.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DepthDataError(f"{str(split_file)!r} line {number}: expected '<rgb path> <depth path> [focal]', got {line.strip()!r}")
            image_path, depth_path = (self.root / field.lstrip("/") for field in fields[:2])
            if not image_path.is_file():
                raise DepthDataError(f"{str(split_file)!r} line {number}: image {str(image_path)!r} does not exist")
            if not depth_path.is_file():
                raise DepthDataError(f"{str(split_file)!r} line {number}: depth file {str(depth_path)!r} does not exist")
            samples.append((image_path, depth_path))
        return samples

    def _scan(self) -> list[tuple[Path, Path]]:
        samples = []
        for image_path in sorted(self.root.rglob("rgb_*")):
            identifier = image_path.stem[len("rgb_"):]
            found = [image_path.with_name(f"sync_depth_{identifier}{suffix}") for suffix in (".png", ".npy")]
            found = [path for path in found if path.is_file()]
            if not found:
                raise DepthDataError(f"image {str(image_path)!r} has no depth file (expected {image_path.with_name(f'sync_depth_{identifier}.png').name} beside it)")
            samples.append((image_path, found[0]))
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, depth_path = self.samples[index]
        return downsample_pair(_read_image(image_path), _read_depth(depth_path, self.depth_scale), self.downsample)


def downsample_pair(image: np.ndarray, depth: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(image [H, W, 3], depth [H, W]) -> both ``factor`` times smaller (sides trimmed to a multiple of it).

    The image is the mean of each factor x factor block (an area / antialiased resize, cv2's INTER_AREA at an
    integer factor). Depth is the mean of the block's *valid* pixels (> 0) and 0 where none is: averaging the
    0 of a Kinect hole into its neighbours would invent depth nearer than any surface there, and nearest-neighbour
    would drop 3 of 4 measurements."""
    if factor == 1:
        return image, depth
    height, width = (depth.shape[0] // factor) * factor, (depth.shape[1] // factor) * factor
    if height == 0 or width == 0:
        raise DepthDataError(f"a {depth.shape[0]}x{depth.shape[1]} frame is smaller than the downsample factor {factor}")
    blocks = (height // factor, factor, width // factor, factor)
    small_image = image[:height, :width].reshape(*blocks, image.shape[-1]).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    depth_blocks = depth[:height, :width].reshape(blocks).astype(np.float64)
    valid = depth_blocks > 0
    counts = valid.sum(axis=(1, 3))
    sums = np.where(valid, depth_blocks, 0.0).sum(axis=(1, 3))
    small_depth = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0).astype(np.float32)
    return small_image, small_depth


class ProceduralDepthScenes:
    """``count`` seeded scenes (scene i = :func:`render_scene` with seed ``seed * 100003 + i``), rendered once and kept."""

    def __init__(self, count: int, height: int = 120, width: int = 160, seed: int = 0) -> None:
        bank = texture_bank()
        self.scenes = [render_scene(seed * 100_003 + index, height, width, bank)[:2] for index in range(count)]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.scenes[index]


# ------------------------------------------------------------------------------------------------
# tensors and augmentation


def augment_pair(image, depth, size: tuple[int, int], generator, flip: bool = True, max_scale: float = 1.0):
    """Random scale s in [1, max_scale] (image bilinear, depth nearest and divided by s: Eigen et al. 2014,
    Sec. 3.3 - enlarging the image is moving the camera closer), random crop to ``size``, random
    horizontal flip, applied identically to ``image`` [3, H, W] and ``depth`` [1, H, W] (torch)."""
    import torch
    import torch.nn.functional as F

    if max_scale > 1.0:
        scale = 1.0 + float(torch.rand((), generator=generator)) * (max_scale - 1.0)
        height, width = image.shape[-2:]
        new = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = F.interpolate(image[None], size=new, mode="bilinear", align_corners=False)[0]
        depth = F.interpolate(depth[None], size=new, mode="nearest")[0] / scale
    height, width = image.shape[-2:]
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise DepthDataError(f"crop {crop_h}x{crop_w} is larger than the {height}x{width} sample; lower --resolution")
    top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
    left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
    image = image[:, top:top + crop_h, left:left + crop_w]
    depth = depth[:, top:top + crop_h, left:left + crop_w]
    if flip and bool(torch.rand((), generator=generator) < 0.5):
        image, depth = image.flip(-1), depth.flip(-1)
    return image, depth


class DepthSamples:
    """A torch dataset over (image [H, W, 3], depth [H, W]) pairs: (image [3, h, w] normalised, depth [1, h, w]).

    ``train=True``: :func:`augment_pair` to ``size`` (seeded per epoch and index); otherwise the
    full sample, or a centre crop to ``size`` when given.
    """

    def __init__(self, pairs, mean: Sequence[float], std: Sequence[float], size: tuple[int, int] | None = None,
                 train: bool = False, seed: int = 0, max_scale: float = 1.0) -> None:
        import torch

        self.pairs, self.size, self.train, self.seed, self.max_scale = pairs, size, train, seed, max_scale
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        import torch

        image, depth = self.pairs[index]
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        depth = torch.from_numpy(np.ascontiguousarray(depth)).float()[None]
        if self.train:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)
            image, depth = augment_pair(image, depth, self.size, generator, max_scale=self.max_scale)
        elif self.size is not None:
            height, width = image.shape[-2:]
            crop_h, crop_w = self.size
            if crop_h > height or crop_w > width:
                raise DepthDataError(f"evaluation size {crop_h}x{crop_w} is larger than the {height}x{width} sample")
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            image, depth = image[:, top:top + crop_h, left:left + crop_w], depth[:, top:top + crop_h, left:left + crop_w]
        return (image - self.mean) / self.std, depth


# ------------------------------------------------------------------------------------------------
# --data sources

#: procedural scenes: resolution they are rendered at, and the test set's size and seed family
PROCEDURAL_SIZE = (120, 160)
PROCEDURAL_TEST_SCENES = 16
_TRAIN_FAMILY, _TEST_FAMILY = 0, 1


def checkpoint_downsample(source: str, metadata: dict, given: int | None = None) -> int:
    """The NYU downsample factor to score a checkpoint with: ``given`` (--depth-downsample), else the one it was trained
    with (metadata ``depth_downsample``) when ``source`` is NYU, else 1: a model trained on half-resolution frames is
    evaluated and deployed on half-resolution frames."""
    if given is not None:
        return given
    return int(metadata.get("depth_downsample", 1)) if source.split(":")[0] == "nyu" else 1


def depth_pairs(source: str, split: str, scenes: int = 48, depth_scale: float = NYU_DEPTH_SCALE, downsample: int = 1):
    """(dataset name, sequence of (image [H, W, 3], depth [H, W] metres)) for a ``--data`` source and split.

    ``procedural`` / ``procedural:N`` (N training scenes; the test split is 16 other seeded scenes),
    ``nyu:DIR`` (``train.txt`` / ``test.txt`` or a scan), ``motorcycle`` (the one real test scene).
    ``downsample`` (NYU only: 2 is FCRN's half resolution) shrinks every NYU frame by that factor.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    kind, _, argument = source.partition(":")
    if downsample != 1 and kind != "nyu":
        raise DepthDataError(f"--depth-downsample {downsample} applies to nyu:DIR frames (FCRN halves NYU's 640x480); "
                             f"--data {source!r} is already at its working size")
    if kind in ("default", "procedural"):
        count = scenes
        if argument:
            if not argument.isdigit() or int(argument) < 2:
                raise DepthDataError(f"--data {source!r}: procedural:N needs a scene count N >= 2")
            count = int(argument)
        if split == "test":
            return "procedural", ProceduralDepthScenes(PROCEDURAL_TEST_SCENES, *PROCEDURAL_SIZE, seed=_TEST_FAMILY)
        return "procedural", ProceduralDepthScenes(count, *PROCEDURAL_SIZE, seed=_TRAIN_FAMILY)
    if kind == "nyu":
        if not argument:
            raise DepthDataError("--data nyu: needs a folder, e.g. nyu:data/nyu_depth_v2")
        return f"nyu:{argument}", NYUDepthFolder(argument, split, depth_scale, downsample)
    if kind == "motorcycle":
        if split == "train":
            raise DepthDataError("--data motorcycle is one real evaluation scene (Middlebury 2014); train on procedural or nyu:DIR")
        image, depth, _ = motorcycle_scene()
        return "motorcycle", [(image, depth)]
    raise DepthDataError(f"unknown depth --data {source!r}; use procedural[:N], nyu:DIR or motorcycle (evaluation)")
