"""SR data: image files read safely, HR/LR pairs made the DIV2K way, benchmark folder layouts, patches.

- :func:`load_image`: an 8- or 16-bit PNG/JPEG/... -> float [C, H, W] in [0, 1] (C = 1 gray, 3 RGB;
  alpha dropped); anything else is a :class:`SRDataError` naming the file and the problem.
- :func:`make_pair`: HR trimmed to a multiple of the scale ("modcrop"), LR = MATLAB bicubic of it,
  rounded to 8 bits as the published LR PNGs are (DIV2K track 1, Set5/Set14/BSD100/Urban100).
- :func:`bundled_images`: real photographs inside installed packages, no download: scikit-image's
  lossless PNG photos are the HR test set; its JPEGs and scikit-learn's china/flower the training set.
- :func:`load_folder_pairs`: DIV2K (``DIV2K_*_HR`` + ``DIV2K_*_LR_bicubic/X{s}``), the EDSR benchmark
  layout (``HR/`` + ``LR_bicubic/X{s}/``), BasicSR's (``GTmod12/`` + ``LRbicx{s}/``), the original
  SelfExSR release (``image_SRF_{s}/*_HR.png`` + ``*_LR.png``), or a plain folder of HR images.
- :func:`random_patches`: aligned LR/HR crops with random flips and 90-degree rotations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .resize import imresize

__all__ = ["SRDataError", "SRPair", "load_image", "make_pair", "modcrop", "bundled_images", "bundled_pairs",
           "load_folder_pairs", "random_patches", "to_rgb", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: scikit-image's bundled lossless photographs (synthetic charts, binary masks and text pages left out)
TEST_IMAGES = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
               "gravel.png", "ihc.png", "moon.png", "motorcycle_left.png")
#: JPEG photographs: scikit-image's and scikit-learn's sample images
TRAIN_IMAGES = ("skimage:hubble_deep_field.jpg", "skimage:retina.jpg", "skimage:rocket.jpg", "sklearn:china.jpg", "sklearn:flower.jpg")


class SRDataError(ValueError):
    """A file or folder that cannot be used: the message names it and says what to do."""


@dataclass(frozen=True)
class SRPair:
    name: str
    lr: torch.Tensor  # [C, h, w] in [0, 1]
    hr: torch.Tensor  # [C, h*s, w*s]


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """[C, H, W] float32 in [0, 1] from an image file (8- or 16-bit; gray -> C=1, RGB/RGBA -> C=3)."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise SRDataError(f"image {str(file)!r} does not exist")
    try:
        with Image.open(file) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
                array = array[None] / peak
            elif mode in ("L", "LA", "1", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
                if mode == "P":
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif mode in ("1", "LA"):
                    image = image.convert("L")
                elif mode in ("RGBA", "CMYK", "YCbCr"):
                    image = image.convert("RGB")
                array = np.asarray(image, dtype=np.float64) / 255.0
                array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
                if array.shape[0] == 4:
                    array = array[:3]
            else:
                raise SRDataError(f"image {str(file)!r} has pixel mode {mode!r}; save it as an 8- or 16-bit gray or RGB PNG")
    except (UnidentifiedImageError, OSError) as error:
        raise SRDataError(f"{str(file)!r} is not a readable image ({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
    return torch.from_numpy(np.ascontiguousarray(array)).float()


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """[1|3, H, W] -> [3, H, W] (gray replicated)."""
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


def modcrop(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """HR trimmed (bottom/right) to a multiple of ``scale`` on both axes."""
    height, width = hr.shape[-2:]
    if height < scale or width < scale:
        raise SRDataError(f"an HR image of {height}x{width} is smaller than the scale x{scale}; use a larger image")
    return hr[..., : height - height % scale, : width - width % scale]


def bicubic_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic downscale of a (modcropped) [C, H, W] image in [0, 1], rounded to 8 bits."""
    return (imresize(hr.double() * 255, 1 / scale).round().clamp(0, 255) / 255).float()


def make_pair(name: str, hr: torch.Tensor, scale: int) -> SRPair:
    hr = modcrop(hr, scale)
    return SRPair(name, bicubic_lr(hr, scale), hr)


def _bundled_path(entry: str) -> Path:
    source, _, filename = entry.partition(":") if ":" in entry else ("skimage", "", entry)
    if source == "sklearn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images" / filename
    import skimage

    return Path(skimage.__file__).parent / "data" / filename


def bundled_images(split: str = "test", rgb: bool = True) -> list[tuple[str, torch.Tensor]]:
    """(name, [3, H, W]) of the bundled photographs: ``split`` "test" (PNG) or "train" (JPEG)."""
    entries = {"test": TEST_IMAGES, "train": TRAIN_IMAGES}.get(split)
    if entries is None:
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    out = []
    for entry in entries:
        image = load_image(_bundled_path(entry))
        out.append((Path(entry.split(":")[-1]).stem, to_rgb(image) if rgb else image))
    return out


def bundled_pairs(scale: int, limit: int | None = None, max_side: int | None = None) -> list[SRPair]:
    """The bundled HR test photos as LR/HR pairs at ``scale`` (``max_side``: centre-crop HR to at most that)."""
    pairs = []
    for name, hr in bundled_images("test")[:limit]:
        pairs.append(make_pair(name, _centre_crop(hr, max_side), scale))
    return pairs


def _centre_crop(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    if max_side is None:
        return image
    height, width = image.shape[-2:]
    top, left = max(0, (height - max_side) // 2), max(0, (width - max_side) // 2)
    return image[..., top: top + max_side, left: left + max_side]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _lr_for(hr_path: Path, lr_folder: Path, scale: int) -> Path | None:
    for candidate in (f"{hr_path.stem}x{scale}", hr_path.stem):
        for suffix in (hr_path.suffix, ".png"):
            path = lr_folder / f"{candidate}{suffix}"
            if path.is_file():
                return path
    return None


def _paired(hr_paths: list[Path], lr_folder: Path | None, scale: int) -> list[SRPair]:
    pairs = []
    for hr_path in hr_paths:
        hr = modcrop(to_rgb(load_image(hr_path)), scale)
        lr_path = _lr_for(hr_path, lr_folder, scale) if lr_folder is not None else None
        if lr_path is None:
            pairs.append(make_pair(hr_path.stem, hr, scale))
            continue
        lr = to_rgb(load_image(lr_path))
        expected = (hr.shape[-2] // scale, hr.shape[-1] // scale)
        if tuple(lr.shape[-2:]) != expected:
            raise SRDataError(f"LR image {str(lr_path)!r} is {lr.shape[-2]}x{lr.shape[-1]}, but its HR {hr_path.name} trimmed to x{scale} "
                              f"needs {expected[0]}x{expected[1]}: is it the x{scale} set?")
        pairs.append(SRPair(hr_path.stem, lr, hr))
    return pairs


def load_folder_pairs(root: str | os.PathLike, scale: int, split: str = "valid") -> list[SRPair]:
    """LR/HR pairs at ``scale`` from a dataset folder in one of the known layouts (module docstring)."""
    folder = Path(root)
    if not folder.is_dir():
        raise SRDataError(f"dataset folder {str(folder)!r} does not exist")
    div2k_hr = folder / f"DIV2K_{split}_HR"
    if div2k_hr.is_dir():  # DIV2K: DIV2K_valid_HR/0801.png + DIV2K_valid_LR_bicubic/X4/0801x4.png
        lr = folder / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
        pairs = _paired(_images_in(div2k_hr), lr if lr.is_dir() else None, scale)
    elif (folder / "HR").is_dir():  # EDSR benchmark: Set5/HR/baby.png + Set5/LR_bicubic/X4/babyx4.png
        lr = folder / "LR_bicubic" / f"X{scale}"
        pairs = _paired(_images_in(folder / "HR"), lr if lr.is_dir() else None, scale)
    elif (folder / "GTmod12").is_dir():  # BasicSR: Set5/GTmod12/baby.png + Set5/LRbicx4/baby.png
        lr = folder / f"LRbicx{scale}"
        pairs = _paired(_images_in(folder / "GTmod12"), lr if lr.is_dir() else None, scale)
    elif (folder / f"image_SRF_{scale}").is_dir():  # SelfExSR: image_SRF_4/img_001_SRF_4_HR.png + _LR.png
        srf = folder / f"image_SRF_{scale}"
        pairs = []
        for hr_path in sorted(srf.glob("*_HR.*")):
            lr_path = hr_path.with_name(hr_path.name.replace("_HR.", "_LR."))
            hr = modcrop(to_rgb(load_image(hr_path)), scale)
            pairs.append(SRPair(hr_path.stem[:-3], to_rgb(load_image(lr_path)), hr) if lr_path.is_file() else make_pair(hr_path.stem[:-3], hr, scale))
    else:
        other = sorted(p.name for p in folder.glob("image_SRF_*"))
        if other:
            raise SRDataError(f"{str(folder)!r} has {', '.join(other)} but no image_SRF_{scale}: the set has no x{scale} images")
        pairs = _paired(_images_in(folder), None, scale)
    if not pairs:
        raise SRDataError(f"no images found in {str(folder)!r}; expected DIV2K_{split}_HR/, HR/ (+ LR_bicubic/X{scale}/), "
                          f"GTmod12/, image_SRF_{scale}/ or image files")
    return pairs


def random_patches(pairs: list[SRPair], patch: int, scale: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR [B, C, patch, patch], HR [B, C, patch*s, patch*s]): random aligned crops, flips and 90-degree turns."""
    usable = [p for p in pairs if min(p.lr.shape[-2:]) >= patch]
    if not usable:
        raise SRDataError(f"no training image is at least {patch} LR pixels ({patch * scale} HR) on each side; lower --patch-size")
    lrs, hrs = [], []
    for _ in range(batch):
        pair = usable[int(torch.randint(len(usable), (1,), generator=generator))]
        h, w = pair.lr.shape[-2:]
        top = int(torch.randint(h - patch + 1, (1,), generator=generator))
        left = int(torch.randint(w - patch + 1, (1,), generator=generator))
        lr = pair.lr[:, top: top + patch, left: left + patch]
        hr = pair.hr[:, top * scale: (top + patch) * scale, left * scale: (left + patch) * scale]
        flip, turns = bool(torch.randint(2, (1,), generator=generator)), int(torch.randint(4, (1,), generator=generator))
        if flip:
            lr, hr = lr.flip(-1), hr.flip(-1)
        lrs.append(torch.rot90(lr, turns, (-2, -1)))
        hrs.append(torch.rot90(hr, turns, (-2, -1)))
    return torch.stack(lrs), torch.stack(hrs)
