"""ImageFolder trees: one sub-folder per class holding JPEG/PNG files, decoded with Pillow.

Layouts: ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (used as given), or
``ROOT/<class>/*`` (split seeded and stratified, see :func:`~edgevision.datasets.base.split_indices`).
Every image is converted to RGB (or L when the whole tree is grey), its shorter side resized to
``image_size`` and center-cropped square. Files are checked when the dataset is built: a corrupt
image is skipped and reported (``on_corrupt="skip"``) or stops loading with its path
(``on_corrupt="fail"``). Decoding happens lazily in ``__getitem__``, in a DataLoader worker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import DataError

__all__ = ["ImageFolderDataset", "IMAGE_SUFFIXES", "scan_image_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ON_CORRUPT = ("skip", "fail")


def scan_image_folder(root: Path, on_corrupt: str = "skip") -> tuple[list[tuple[Path, int]], tuple[str, ...], list[str]]:
    """(files with class index, class names, skipped "path: reason") of one class-per-folder tree."""
    from PIL import Image

    if on_corrupt not in ON_CORRUPT:
        raise DataError(f"on_corrupt must be 'skip' or 'fail', got {on_corrupt!r}")
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{str(root)!r} has no class sub-folders; the layout is ROOT/<class>/<image>.png (or .jpg)")
    files: list[tuple[Path, int]] = []
    skipped: list[str] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        good = 0
        for path in found:
            try:
                with Image.open(path) as image:
                    image.verify()  # checks structure and checksums without a full decode
                with Image.open(path) as image:
                    image.load()  # a truncated file passes verify() but fails here
            except Exception as error:
                message = f"{path}: {type(error).__name__}: {error}"
                if on_corrupt == "fail":
                    raise DataError(f"corrupt image {message}; remove it or pass --on-corrupt skip") from None
                skipped.append(message)
                continue
            files.append((path, index))
            good += 1
        if good == 0:
            raise DataError(f"class folder {str(root / name)!r} has no readable {'/'.join(IMAGE_SUFFIXES)} images; add images or remove the folder")
    return files, tuple(classes), skipped


class ImageFolderDataset(Dataset):
    """Lazy decoding of (path, class) pairs to uint8 ``(C, image_size, image_size)``."""

    def __init__(self, files: list[tuple[Path, int]], image_size: int, grey: bool = False) -> None:
        self.files = files
        self.image_size = image_size
        self.mode = "L" if grey else "RGB"
        self.labels = torch.tensor([label for _, label in files], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        path, label = self.files[index]
        with Image.open(path) as image:
            image = image.convert(self.mode)
            scale = self.image_size / min(image.size)
            width, height = max(self.image_size, round(image.width * scale)), max(self.image_size, round(image.height * scale))
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            left, top = (width - self.image_size) // 2, (height - self.image_size) // 2
            image = image.crop((left, top, left + self.image_size, top + self.image_size))
            pixels = np.asarray(image, dtype=np.uint8)
        tensor = torch.from_numpy(pixels.copy())
        tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
        return tensor, self.labels[index]

    def subset(self, indices: torch.Tensor) -> "ImageFolderDataset":
        return ImageFolderDataset([self.files[i] for i in indices.tolist()], self.image_size, self.mode == "L")


def is_grey_tree(files: list[tuple[Path, int]], sample: int = 32) -> bool:
    """True when the (first ``sample``) images are all single-channel."""
    from PIL import Image

    for path, _ in files[:sample]:
        with Image.open(path) as image:
            if image.mode not in ("L", "1", "I;16", "I"):
                return False
    return True
