"""Tensor decoding of the streamed image datasets (``decode=tensor`` / ``gpu``) against the PIL pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.image_files import ImageFileDataset, TensorImageDataset, collate_encoded
from alignprune_exp.data.imagenet import load_imagenet1k
from alignprune_exp.data.jpeg_tensor import TensorCrop, resolve_decode
from tests.large_fake_trees import fake_wnids, write_imagenet


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet(root, fake_wnids(4), train_per_class=4, val_per_class=1)
    return load_imagenet1k(str(root), image_size=32, resize_size=36, num_workers=0, decode="tensor")


def test_tensor_eval_view_matches_pil_and_train_views_follow_the_seed(spec):
    sets = spec.datasets(spec.train, torch.device("cpu"))
    assert isinstance(sets["train"], TensorImageDataset)
    pil = ImageFileDataset(spec.train, spec.transforms["eval"])
    for i in range(4):
        a, b = sets["eval"][i][0], pil[i][0]
        assert a.shape == b.shape == (3, 32, 32) and a.dtype == torch.uint8
        assert (a.float() - b.float()).abs().mean() < 4  # same JPEG decoder; resize rounding differs slightly
    x1, x2, x3 = (sets["train"][(5, s)][0] for s in (11, 11, 12))
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    (weak, strong), label, index = sets["strong"][(5, 11)]
    assert torch.equal(weak, x1) and strong.shape == weak.shape and index == 5 and label == spec.train_y[5]


@pytest.mark.parametrize("mode", ["resize_random_crop", "random_resized_crop"])
def test_crop_boxes_stay_inside_the_image(mode):
    crop = TensorCrop(224, 256, mode)
    flips = 0
    for seed in range(200):
        h, w = (375, 500) if seed % 2 else (600, 300)
        top, left, ch, cw, flip = crop.box(h, w, torch.Generator().manual_seed(seed))
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
        if mode == "resize_random_crop":
            assert ch == cw == round(min(h, w) * 224 / 256)
        flips += flip
    assert 60 < flips < 140
    assert crop.box(375, 500, None) == TensorCrop(224, 256, "center").box(375, 500, None)


def test_encoded_batches_decode_later_to_the_same_pixels(spec):
    eager = spec.datasets(spec.train, torch.device("cpu"))["train"]
    encoded = TensorImageDataset(spec.train, eager.crop, eager.eval_crop, encoded=True)
    keys = [(i, 100 + i) for i in range(6)]
    batch, labels, idx = collate_encoded([encoded[k] for k in keys])
    x = encoded.decode_on(batch, torch.device("cpu"))
    assert torch.equal(x, torch.stack([eager[k][0] for k in keys]))
    assert torch.equal(labels, torch.as_tensor(spec.train_y[:6])) and torch.equal(idx, torch.arange(6))


def test_decode_modes_and_a_corrupt_jpeg(spec, tmp_path):
    cpu = torch.device("cpu")
    assert resolve_decode("auto", cpu) == "tensor" and resolve_decode("auto", torch.device("cuda")) == "gpu"
    with pytest.raises(ConfigError, match="decode=gpu needs device=cuda"):
        resolve_decode("gpu", cpu)
    with pytest.raises(ConfigError, match="decode='nvjpeg'"):
        resolve_decode("nvjpeg", cpu)
    bad = spec.train.subset(np.arange(2))
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bad.root, bad.files = str(tmp_path), np.array([b"broken.jpg", b"gone.jpg"])
    ds = TensorImageDataset(bad, TensorCrop(32, 36, "resize_random_crop"), TensorCrop(32, 36, "center"))
    with pytest.raises(DataError, match="cannot decode image .*broken.jpg") as err:
        ds[0]
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="gone.jpg listed in .* does not exist"):
        ds[1]
