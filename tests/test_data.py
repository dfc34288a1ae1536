"""Dataset loading (CIFAR layouts, digits), safe unpickling of untrusted files, and CIFAR-N label files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from alignprune_exp.core.errors import DataError
from alignprune_exp.core.safe_load import safe_pickle_load, safe_torch_load
from alignprune_exp.data import (
    CIFAR100_COARSE_OF_FINE,
    ImageData,
    find_cifar_n_file,
    load_cifar,
    load_digits,
)
from alignprune_exp.noise import load_human_labels
from tests.fake_data import write_cifar_n, write_cifar_npy, write_cifar_torchvision, write_py2_pickle


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


class Payload:
    """Unpickling this runs Python code that creates ``marker``: what a tampered data file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


# --- safe loading ----------------------------------------------------------------------------------------------


def test_tampered_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros(3), "x": Payload(tmp_path / "marker")}, protocol=2))
    with pytest.raises(DataError, match="refusing to load") as info:
        safe_pickle_load(path)
    assert "exec is not allowed" in one_line(info) and str(path) in one_line(info)
    assert not (tmp_path / "marker").exists()
    # The payload is live: an ordinary unpickler runs it.
    live = tmp_path / "live.pkl"
    live.write_bytes(pickle.dumps(Payload(tmp_path / "live_marker")))
    pickle.loads(live.read_bytes())
    assert (tmp_path / "live_marker").exists()


def test_tampered_torch_file_is_refused_without_running_it(tmp_path):
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save({"clean_label": np.zeros(4, dtype=np.int64), "x": Payload(tmp_path / "marker")}, path)
    with pytest.raises(DataError, match="refusing to load") as info:
        safe_torch_load(path)
    assert "exec" in one_line(info)
    assert not (tmp_path / "marker").exists()
    torch.load(path, weights_only=False)  # the payload is live
    assert (tmp_path / "marker").exists()


def test_safe_torch_load_reads_checkpoint_contents(tmp_path):
    content = {
        "model": {"w": torch.randn(3, 2), "step": torch.tensor(7)},
        "epoch": 4,
        "lr": 0.1,
        "name": "run",
        "history": [1.0, 2.0],
        "nested": {"ok": (1, "a")},
        "labels": np.arange(5, dtype=np.int64),
        "pixels": np.full((2, 2), 9, np.uint8),
        "scores": np.linspace(0, 1, 3, dtype=np.float32),
    }
    torch.save(content, tmp_path / "ckpt.pt")
    loaded = safe_torch_load(tmp_path / "ckpt.pt")
    assert torch.equal(loaded["model"]["w"], content["model"]["w"]) and loaded["epoch"] == 4
    assert loaded["nested"] == {"ok": (1, "a")} and loaded["history"] == [1.0, 2.0]
    for key in ("labels", "pixels", "scores"):
        assert loaded[key].dtype == content[key].dtype and np.array_equal(loaded[key], content[key])


def test_unreadable_files_give_data_errors(tmp_path):
    (tmp_path / "junk").write_bytes(b"not a pickle at all")
    for load in (safe_torch_load, safe_pickle_load):
        with pytest.raises(DataError, match="cannot read") as info:
            load(tmp_path / "junk")
        one_line(info)
        with pytest.raises(DataError, match="does not exist"):
            load(tmp_path / "missing")


# --- CIFAR: torchvision python layout --------------------------------------------------------------------------


def test_torchvision_cifar10_layout_loads_in_original_order(tmp_path):
    fake = write_cifar_torchvision(tmp_path, "cifar10", n_per_batch=12, n_test=8, seed=3)
    data = load_cifar("cifar10", str(tmp_path))
    assert data.train_x.shape == (60, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (8, 3, 32, 32)
    assert np.array_equal(data.train_x.permute(0, 2, 3, 1).numpy(), fake.train_x)
    assert np.array_equal(data.test_x.permute(0, 2, 3, 1).numpy(), fake.test_x)
    assert np.array_equal(data.train_y, fake.train_y) and data.train_y.dtype == np.int64
    assert data.num_classes == 10 and data.coarse_of_fine is None
    assert data.mean == (0.4914, 0.4822, 0.4465) and "cifar-10-batches-py" in data.source


def test_torchvision_rows_are_channel_planes(tmp_path):
    """A row of 3072 bytes is the R plane, then G, then B; pixel (h, w) sits at h * 32 + w in each plane."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows = np.zeros((2, 3072), np.uint8)
    rows[1, [0 * 1024 + 5 * 32 + 7, 1 * 1024 + 5 * 32 + 7, 2 * 1024 + 5 * 32 + 7]] = [11, 22, 33]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_py2_pickle({b"data": rows, b"labels": [3, 4]}, folder / name)
    data = load_cifar("cifar10", str(tmp_path))
    assert data.train_x[1, :, 5, 7].tolist() == [11, 22, 33]
    assert int(data.train_x.sum()) == 5 * (11 + 22 + 33)


def test_torchvision_cifar100_layout_gives_coarse_map(tmp_path):
    fake = write_cifar_torchvision(tmp_path, "cifar100", n_per_batch=40, n_test=10)
    data = load_cifar("cifar100", str(tmp_path))
    assert data.train_x.shape == (200, 3, 32, 32) and data.num_classes == 100
    assert np.array_equal(data.train_y, fake.train_y)
    assert np.array_equal(data.coarse_of_fine, CIFAR100_COARSE_OF_FINE)


def test_torchvision_cifar100_inconsistent_coarse_labels_are_refused(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows = np.zeros((3, 3072), np.uint8)
    write_py2_pickle({b"data": rows, b"fine_labels": [4, 4, 30], b"coarse_labels": [0, 1, 0]}, folder / "train")
    write_py2_pickle({b"data": rows, b"fine_labels": [4, 4, 30], b"coarse_labels": [0, 0, 0]}, folder / "test")
    with pytest.raises(DataError, match="inconsistent coarse labels"):
        load_cifar("cifar100", str(tmp_path))


def test_torchvision_reads_the_fake_layout_identically(tmp_path, monkeypatch):
    """Cross-check of the fake files against torchvision's own reader (only on these generated files)."""
    tv_cifar = pytest.importorskip("torchvision.datasets.cifar")
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)  # fake files have other md5s
    for name, cls in (("cifar10", tv_cifar.CIFAR10), ("cifar100", tv_cifar.CIFAR100)):
        write_cifar_torchvision(tmp_path, name, n_per_batch=20)
        ours = load_cifar(name, str(tmp_path))
        theirs = cls(str(tmp_path), train=True, download=False)
        assert np.array_equal(ours.train_x.permute(0, 2, 3, 1).numpy(), theirs.data)
        assert np.array_equal(ours.train_y, np.asarray(theirs.targets))


def test_tampered_cifar_batch_is_refused(tmp_path):
    write_cifar_torchvision(tmp_path, "cifar10", n_per_batch=4, n_test=4)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({"data": Payload(tmp_path / "marker"), "labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refusing to load") as info:
        load_cifar("cifar10", str(tmp_path))
    assert str(batch) in one_line(info)
    assert not (tmp_path / "marker").exists()


def test_incomplete_torchvision_folder_names_the_missing_file(tmp_path):
    write_cifar_torchvision(tmp_path, "cifar10", n_per_batch=4, n_test=4)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch") as info:
        load_cifar("cifar10", str(tmp_path))
    assert "cs.toronto.edu" in one_line(info)


# --- CIFAR: npy layout and search order ------------------------------------------------------------------------


def test_npy_layout_in_named_subfolder(tmp_path):
    fake = write_cifar_npy(tmp_path, "cifar10", n_train=30, n_test=10, seed=1)
    assert (tmp_path / "cifar10" / "train_x.npy").is_file()
    data = load_cifar("cifar10", str(tmp_path))
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
    assert np.array_equal(data.train_x.permute(0, 2, 3, 1).numpy(), fake.train_x)
    assert np.array_equal(data.test_y, fake.test_y)
    assert data.train_x.is_contiguous() and "npy layout" in data.source


def test_npy_pixels_land_in_nchw_order(tmp_path):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[1, 2, 3] = [10, 20, 30]  # image 1, row 2, column 3, RGB
    np.save(tmp_path / "train_x.npy", x)
    np.save(tmp_path / "train_y.npy", np.array([0, 9]))
    data = load_cifar("cifar10", str(tmp_path))
    assert data.train_x[1, :, 2, 3].tolist() == [10, 20, 30]
    assert data.train_x[1, 0].sum() == 10 and data.train_x[0].sum() == 0


def test_search_order_torchvision_then_named_subfolder_then_data_dir(tmp_path):
    write_cifar_npy(tmp_path, "cifar10", n_train=20, n_test=0, subdir=False)
    assert load_cifar("cifar10", str(tmp_path)).num_train == 20
    write_cifar_npy(tmp_path, "cifar10", n_train=30, n_test=0, subdir=True)
    assert load_cifar("cifar10", str(tmp_path)).num_train == 30
    write_cifar_torchvision(tmp_path, "cifar10", n_per_batch=8)
    assert load_cifar("cifar10", str(tmp_path)).num_train == 40


def test_npy_without_test_split_gives_none(tmp_path):
    write_cifar_npy(tmp_path, "cifar10", n_train=20, n_test=0)
    data = load_cifar("cifar10", str(tmp_path))
    assert data.test_x is None and data.test_y is None and "no test split" in data.source


def test_npy_cifar100_without_coarse_labels_uses_the_standard_map(tmp_path):
    write_cifar_npy(tmp_path, "cifar100", n_train=120, n_test=0)
    data = load_cifar("cifar100", str(tmp_path))
    assert np.array_equal(data.coarse_of_fine, CIFAR100_COARSE_OF_FINE)
    assert data.mean == (0.5071, 0.4865, 0.4409)


def test_npy_cifar100_coarse_labels_are_checked(tmp_path):
    fake = write_cifar_npy(tmp_path, "cifar100", n_train=120, n_test=0)
    coarse = CIFAR100_COARSE_OF_FINE[fake.train_y].copy()
    np.save(tmp_path / "cifar100" / "train_coarse_y.npy", coarse)
    assert np.array_equal(load_cifar("cifar100", str(tmp_path)).coarse_of_fine, CIFAR100_COARSE_OF_FINE)
    coarse[np.flatnonzero(fake.train_y == 4)[0]] += 1  # one image of fine class 4 in another super-class
    np.save(tmp_path / "cifar100" / "train_coarse_y.npy", coarse)
    with pytest.raises(DataError, match="inconsistent coarse labels"):
        load_cifar("cifar100", str(tmp_path))


def test_pickled_npy_is_refused_without_running_it(tmp_path):
    write_cifar_npy(tmp_path, "cifar10", n_train=10, n_test=0)
    labels = tmp_path / "cifar10" / "train_y.npy"
    np.save(labels, np.array([Payload(tmp_path / "marker")] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="refusing to load") as info:
        load_cifar("cifar10", str(tmp_path))
    assert str(labels) in one_line(info)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((5, 32, 32, 3), np.float32), np.zeros(5, np.int64), "expected uint8"),
        (np.zeros((5, 3, 32, 32), np.uint8), np.zeros(5, np.int64), "NHWC"),
        (np.zeros((5, 32, 32, 3), np.uint8), np.zeros(4, np.int64), "train_y has 4 labels for 5 images"),
        (np.zeros((5, 32, 32, 3), np.uint8), np.array([0, 1, 2, 3, 10]), r"classes 0\.\.9"),
        (np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5, np.float64), "integer"),
    ],
)
def test_malformed_npy_layout_is_refused(tmp_path, x, y, match):
    np.save(tmp_path / "train_x.npy", x)
    np.save(tmp_path / "train_y.npy", y)
    with pytest.raises(DataError, match=match) as info:
        load_cifar("cifar10", str(tmp_path))
    assert str(tmp_path) in one_line(info)


def test_test_images_without_test_labels_are_refused(tmp_path):
    write_cifar_npy(tmp_path, "cifar10", n_train=10, n_test=5)
    (tmp_path / "cifar10" / "test_y.npy").unlink()
    with pytest.raises(DataError, match="test_y.npy"):
        load_cifar("cifar10", str(tmp_path))


@pytest.mark.parametrize(("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_data_names_paths_layouts_and_source(tmp_path, name, folder):
    with pytest.raises(DataError) as info:
        load_cifar(name, str(tmp_path))
    message = one_line(info)
    assert str(tmp_path / folder) in message and str(tmp_path / name / "train_x.npy") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message and "npy layout" in message


# --- CIFAR-N label files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["", "cifar-n", "cifar10"])
def test_cifar_n_file_is_found_in_each_place(tmp_path, where):
    path = write_cifar_n(tmp_path, "cifar10", np.zeros(3, np.int64), {}, subdir=where or None)
    assert find_cifar_n_file("cifar10", str(tmp_path)) == path


def test_missing_cifar_n_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        find_cifar_n_file("cifar10", str(tmp_path))
    message = one_line(info)
    assert str(tmp_path / "cifar-n" / "CIFAR-10_human.pt") in message
    assert "https://github.com/UCSC-REAL/cifar-10-100n (data/CIFAR-10_human.pt)" in message


def test_human_labels_load_and_match_clean_order(tmp_path):
    clean = np.arange(100) % 10
    worse = (clean + 3) % 10
    path = write_cifar_n(tmp_path, "cifar10", clean, {"worse_label": worse})
    labels = load_human_labels(path, "worse_label", 100, 10, clean_labels=clean)
    assert labels.dtype == np.int64 and np.array_equal(labels, worse)


def test_cifar100_file_with_coarse_lists_loads(tmp_path):
    clean = np.arange(200) % 100
    path = write_cifar_n(tmp_path, "cifar100", clean, {"noisy_label": (clean + 1) % 100})
    assert "clean_coarse_label" in safe_torch_load(path)
    assert np.array_equal(load_human_labels(path, "noisy_label", 200, 100, clean), (clean + 1) % 100)


def test_human_label_length_mismatch(tmp_path):
    path = write_cifar_n(tmp_path, "cifar10", np.zeros(90, np.int64), {"worse_label": np.zeros(90, np.int64)})
    with pytest.raises(DataError) as info:
        load_human_labels(path, "worse_label", num_train=100, num_classes=10)
    assert "CIFAR-10_human.pt 'worse_label' has 90 labels but the training split has 100 images" in one_line(info)


def test_human_label_class_range_mismatch(tmp_path):
    path = write_cifar_n(tmp_path, "cifar100", np.arange(100), {"noisy_label": np.arange(100)})
    with pytest.raises(DataError, match=r"labels in \[0, 99\] but the dataset has classes 0\.\.9") as info:
        load_human_labels(path, "noisy_label", num_train=100, num_classes=10)
    one_line(info)


def test_human_label_missing_key_lists_available_keys(tmp_path):
    path = write_cifar_n(tmp_path, "cifar10", np.zeros(5, np.int64), {"aggre_label": np.zeros(5, np.int64)})
    with pytest.raises(DataError, match="available: clean_label, aggre_label"):
        load_human_labels(path, "worse_label", 5, 10)


def test_clean_label_order_mismatch_is_refused(tmp_path):
    clean = np.arange(50) % 10
    path = write_cifar_n(tmp_path, "cifar10", clean, {"aggre_label": clean})
    shuffled = clean.copy()
    shuffled[[3, 4]] = shuffled[[4, 3]]
    with pytest.raises(DataError, match="not in the order") as info:
        load_human_labels(path, "aggre_label", 50, 10, clean_labels=shuffled)
    assert "first at index 3" in one_line(info) and "original training order" in one_line(info)


# --- ImageData and digits --------------------------------------------------------------------------------------


def test_image_data_validates_what_it_holds():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    kwargs = {
        "name": "t",
        "test_x": None,
        "test_y": None,
        "num_classes": 3,
        "mean": (0.5,),
        "std": (0.2,),
        "source": "unit",
    }
    with pytest.raises(DataError, match="train_y has 3 labels for 4 images in unit"):
        ImageData(train_x=x, train_y=np.zeros(3, np.int64), **kwargs)
    with pytest.raises(DataError, match="uint8"):
        ImageData(train_x=x.float(), train_y=np.zeros(4, np.int64), **kwargs)
    with pytest.raises(DataError, match="mean/std"):
        ImageData(train_x=x, train_y=np.zeros(4, np.int64), **{**kwargs, "mean": (0.5, 0.5)})
    with pytest.raises(DataError, match="both"):
        ImageData(train_x=x, train_y=np.zeros(4, np.int64), **{**kwargs, "test_x": x})
    data = ImageData(train_x=x, train_y=np.zeros(4, np.int32), **kwargs)
    assert data.train_y.dtype == np.int64


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits()


def test_digits_shapes_split_and_scaling(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    assert digits.name == "digits" and digits.num_classes == 10
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == torch.uint8 and int(digits.train_x.max()) == 255
    # stratified: every class has 35-37 of the 360 test images
    assert np.all(np.abs(np.bincount(digits.test_y, minlength=10) - 36) <= 1)
    # together the two splits are exactly the 1797 scaled images
    raw = sklearn_digits()
    scaled = np.rint(raw.images * 255 / 16).astype(np.uint8).reshape(1797, -1)
    ours = np.concatenate([digits.train_x.numpy(), digits.test_x.numpy()]).reshape(1797, -1)
    key = lambda rows, labels: sorted(zip(map(bytes, rows), labels.tolist()))  # noqa: E731
    assert key(ours, np.concatenate([digits.train_y, digits.test_y])) == key(scaled, raw.target)
    pixels = digits.train_x.double() / 255
    assert digits.mean[0] == pytest.approx(float(pixels.mean()))
    assert digits.std[0] == pytest.approx(float(pixels.std()), rel=1e-3)


def test_digits_split_is_fixed(digits):
    again = load_digits()
    assert torch.equal(again.train_x, digits.train_x) and np.array_equal(again.test_y, digits.test_y)
