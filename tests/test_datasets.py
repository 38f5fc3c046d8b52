"""Loaders on fixture files in the real on-disk formats, the restricted unpickler, splits and tensor augmentations."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from edgevision.datasets import (
    DataError,
    TensorImageDataset,
    UnsafePickleError,
    load_cifar,
    load_data,
    make_loader,
    parse_data_spec,
)
from training_helpers import single_thread  # noqa: F401  (autouse fixture)
from edgevision.datasets.transforms import BatchPreprocessor, MixAugment, cutmix, mixup, random_crop, random_flip


# ---- CIFAR: python-version pickle batches, protocol 2 with bytes keys like the official files ----------------------
def _write_batch(path, data, labels, label_key=b"labels", extra=None):
    batch = {b"batch_label": b"fixture batch", label_key: labels, b"data": data, b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    batch.update(extra or {})
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


@pytest.fixture
def cifar10_dir(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for index in (1, 2):
        _write_batch(root / f"data_batch_{index}", rng.integers(0, 256, (6, 3072), dtype=np.uint8), [i % 10 for i in range(6)])
    _write_batch(root / "test_batch", rng.integers(0, 256, (4, 3072), dtype=np.uint8), [9, 8, 7, 6])
    with open(root / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"], b"num_vis": 3072}, handle, protocol=2)
    return root


def test_cifar10_reads_official_layout(cifar10_dir):
    train, test, names = load_cifar(cifar10_dir, 10)
    assert len(train) == 12 and len(test) == 4
    assert names[0] == "airplane" and names[9] == "truck"
    raw = pickle.load(open(cifar10_dir / "data_batch_1", "rb"), encoding="bytes")[b"data"]
    image, label = train[0]
    # rows are the R plane, then G, then B, each 32x32 row-major
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert image[1, 0, 0] == raw[0, 1024] and image[2, 31, 31] == raw[0, 3071] and image[0, 0, 5] == raw[0, 5]
    assert test.labels.tolist() == [9, 8, 7, 6]


def test_cifar100_reads_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    _write_batch(root / "train", np.zeros((5, 3072), np.uint8), [0, 42, 99, 1, 2], b"fine_labels", {b"coarse_labels": [0, 1, 2, 3, 4]})
    _write_batch(root / "test", np.zeros((2, 3072), np.uint8), [5, 6], b"fine_labels", {b"coarse_labels": [0, 1]})
    splits = load_data(f"cifar100:{root}")
    assert splits.num_classes == 100 and splits.train.labels.tolist() == [0, 42, 99, 1, 2]
    assert splits.class_names[42] == "42"  # no meta file: numbered names


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Exploit.marker),))


def test_restricted_unpickler_refuses_code_and_runs_nothing(tmp_path, cifar10_dir):
    marker = tmp_path / "pwned"
    _Exploit.marker = marker
    with open(cifar10_dir / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os)\.system"):
        load_cifar(cifar10_dir, 10)
    assert not marker.exists()  # the command never ran


def test_restricted_unpickler_refuses_builtins_eval(cifar10_dir):
    class Evil:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    with open(cifar10_dir / "test_batch", "wb") as handle:
        pickle.dump(Evil(), handle, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        load_cifar(cifar10_dir, 10)


def test_cifar_errors_name_the_problem(tmp_path, cifar10_dir):
    with pytest.raises(DataError, match="does not exist"):
        load_cifar(tmp_path / "missing", 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected files data_batch_1..5 and test_batch"):
        load_cifar(tmp_path / "empty", 10)
    (cifar10_dir / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR pickle batch"):
        load_cifar(cifar10_dir, 10)


# ---- ImageFolder: real PNG and JPEG files ----------------------------------------------------------------------------
@pytest.fixture
def image_tree(tmp_path):
    from PIL import Image

    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for class_index, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_decodes_png_and_jpeg(image_tree):
    splits = load_data(f"imagefolder:{image_tree}", image_size=16, val_fraction=0.4)
    assert splits.class_names == ("cat", "dog")
    assert len(splits.train) == 6 and len(splits.val) == 4
    image, label = splits.train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and label.item() in (0, 1)
    assert splits.skipped == ()


def test_image_folder_corrupt_image_skip_or_fail(image_tree):
    (image_tree / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    splits = load_data(f"imagefolder:{image_tree}", image_size=16)
    assert len(splits.skipped) == 1 and "broken.png" in splits.skipped[0]
    assert len(splits.train) + len(splits.val) == 10
    with pytest.raises(DataError, match="corrupt image .*broken.png"):
        load_data(f"imagefolder:{image_tree}", image_size=16, on_corrupt="fail")


def test_image_folder_layout_errors(tmp_path, image_tree):
    (image_tree / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class.*no readable"):
        load_data(f"imagefolder:{image_tree}")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_data(f"imagefolder:{tmp_path / 'flat'}")


def test_image_folder_train_val_layout(tmp_path, image_tree):
    import shutil

    root = tmp_path / "split"
    shutil.copytree(image_tree, root / "train")
    shutil.copytree(image_tree, root / "val")
    splits = load_data(f"imagefolder:{root}", image_size=8)
    assert len(splits.train) == 10 and len(splits.val) == 10


# ---- npz ---------------------------------------------------------------------------------------------------------------
def test_npz_nhwc_and_class_names(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(20) % 2, class_names=np.array(["even", "odd"]))
    splits = load_data(f"npz:{tmp_path / 'd.npz'}", val_fraction=0.5)
    assert splits.class_names == ("even", "odd") and splits.in_channels == 3
    assert len(splits.train) == 10 and len(splits.val) == 10
    originals = {image.tobytes() for image in images}
    loaded = [image.permute(1, 2, 0).numpy().tobytes() for image in torch.cat([splits.train.images, splits.val.images])]
    assert set(loaded) == originals  # (N, H, W, C) read back as (N, C, H, W), every pixel intact


def test_npz_pixels_survive_exactly(tmp_path):
    images = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)  # grey (N, H, W)
    np.savez(tmp_path / "g.npz", x=images, y=np.array([0, 1, 0, 1]))
    splits = load_data(f"npz:{tmp_path / 'g.npz'}", val_fraction=0.5)
    everything = torch.cat([splits.train.images, splits.val.images])
    assert everything.shape[1:] == (1, 8, 8)
    assert sorted(everything.reshape(4, -1)[:, 0].tolist()) == [0, 64, 128, 192]


def test_npz_multilabel_and_errors(tmp_path):
    images = np.zeros((6, 8, 8), np.uint8)
    np.savez(tmp_path / "m.npz", images=images, labels=np.eye(3, dtype=np.int64)[[0, 1, 2, 0, 1, 2]] + np.eye(3, dtype=np.int64)[[1, 2, 0, 1, 2, 0]])
    splits = load_data(f"npz:{tmp_path / 'm.npz'}", val_fraction=0.34)
    assert splits.multi_label and splits.num_classes == 3
    np.savez(tmp_path / "gap.npz", images=images, labels=np.array([0, 2, 0, 2, 0, 2]))
    with pytest.raises(DataError, match=r"class\(es\) \[1\] have no images"):
        load_data(f"npz:{tmp_path / 'gap.npz'}")
    np.savez(tmp_path / "obj.npz", images=np.array([object()] * 2, dtype=object), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="without pickle"):
        load_data(f"npz:{tmp_path / 'obj.npz'}")
    np.savez(tmp_path / "keys.npz", pictures=images)
    with pytest.raises(DataError, match="needs 'images'"):
        load_data(f"npz:{tmp_path / 'keys.npz'}")


# ---- embedded default and the --data parser ------------------------------------------------------------------------
def test_embedded_mnist_split_is_fixed_and_stratified():
    first = load_data("default")
    again = load_data("default")
    assert len(first.train) == 4000 and len(first.val) == 1000
    assert torch.bincount(first.val.labels).tolist() == [100] * 10
    assert torch.equal(first.val.images, again.val.images)
    assert first.in_channels == 1 and first.image_size == 28 and not first.flip_safe
    assert 0.1 < first.mean[0] < 0.15  # MNIST's well-known mean 0.1307


@pytest.mark.parametrize(
    "text, message",
    [("imagenet:/x", "unknown dataset"), ("cifar10", "needs a path"), ("default:/x", "takes no path"), ("npz:", "needs a path")],
)
def test_data_spec_errors(text, message):
    with pytest.raises(DataError, match=message):
        parse_data_spec(text)


def test_data_spec_parses():
    assert parse_data_spec("cifar10:/data/c10").path == "/data/c10"
    assert str(parse_data_spec("npz:a:b.npz")) == "npz:a:b.npz"  # only the first colon separates


def test_loader_shards_union_is_the_single_process_batch():
    dataset = TensorImageDataset(torch.zeros(30, 1, 4, 4, dtype=torch.uint8), torch.arange(30))
    single = [labels.tolist() for _, labels in make_loader(dataset, 8, train=True, seed=3)]
    shards = [[labels.tolist() for _, labels in make_loader(dataset, 4, train=True, seed=3, rank=r, world_size=2)] for r in (0, 1)]
    assert len(single) == len(shards[0]) == 3
    for step, batch in enumerate(single):
        assert sorted(batch) == sorted(shards[0][step] + shards[1][step])
    assert single != [list(range(i, i + 8)) for i in range(0, 24, 8)]  # shuffled


# ---- augmentations ---------------------------------------------------------------------------------------------------
def test_random_crop_cuts_a_window_of_the_padded_image():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    cropped = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, t : t + 6, l : l + 6] for t in range(5) for l in range(5)]
        assert any(torch.equal(cropped[b], w) for w in windows)
    assert torch.equal(random_crop(images, 2, torch.Generator().manual_seed(0)), cropped)  # seeded
    assert torch.equal(random_crop(images, 0, torch.Generator()), images)


def test_random_flip_probability_extremes():
    images = torch.rand(3, 2, 4, 5)
    assert torch.equal(random_flip(images, torch.Generator(), 1.0), images.flip(-1))
    assert torch.equal(random_flip(images, torch.Generator(), 0.0), images)


def test_mixup_is_a_convex_combination():
    images, targets = torch.rand(4, 1, 3, 3), torch.eye(4)
    permutation = torch.tensor([1, 0, 3, 2])
    mixed, mixed_targets = mixup(images, targets, 0.7, permutation)
    assert torch.allclose(mixed[0], 0.7 * images[0] + 0.3 * images[1])
    assert torch.allclose(mixed_targets[0], torch.tensor([0.7, 0.3, 0.0, 0.0]))
    assert torch.allclose(mixed_targets.sum(1), torch.ones(4))


def test_cutmix_targets_match_pasted_area():
    images, targets = torch.zeros(2, 1, 10, 10), torch.eye(2)
    images[1] = 1.0
    mixed, mixed_targets = cutmix(images, targets, 0.75, torch.tensor([1, 0]), np.random.default_rng(1))
    pasted = mixed[0].mean().item()  # fraction of image 0's pixels that came from image 1
    assert 0 < pasted < 1
    assert mixed_targets[0, 1].item() == pytest.approx(pasted)


def test_mix_augment_off_is_identity_and_preprocessor_shapes():
    images, targets = torch.rand(4, 1, 8, 8), torch.eye(4)
    out, out_targets = MixAugment(0.0, 0.0, seed=0)(images, targets)
    assert out is images and out_targets is targets
    preprocess = BatchPreprocessor(16, 3, (0.5,), (0.25,), crop_padding=2, flip=True)
    batch = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    result = preprocess(batch, train=False)
    assert result.shape == (2, 3, 16, 16)  # grey replicated to 3 channels, resized
    assert torch.allclose(result, torch.full_like(result, 2.0))  # (1 - 0.5) / 0.25
