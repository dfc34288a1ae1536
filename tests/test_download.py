"""download=true against a local server on 127.0.0.1 serving small files in the real formats (no other network).

The server's URLs and the files' checksums replace the real ones through ALIGNPRUNE_<KEY>_URL / _CHECKSUM.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time

import numpy as np
import pytest

from alignprune_exp.core.errors import DataError
from alignprune_exp.data import find_cifar_n_file, load_cifar
from alignprune_exp.data.catalog import CIFAR_N_COMMIT, source
from alignprune_exp.data.download import DownloadError, download
from alignprune_exp.noise import HumanNoise
from tests.conftest import ROOT
from tests.fake_data import write_cifar_n, write_cifar_torchvision
from tests.local_http import LocalServer

SHARED_CIFAR_N = ROOT.parent / "shared" / "data" / "cifar-n"  # the real label files, when present


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A tiny cifar-10-python.tar.gz in torchvision's layout and a CIFAR-10_human.pt for its labels."""
    staging = tmp_path_factory.mktemp("staging")
    fake = write_cifar_torchvision(staging, "cifar10", n_per_batch=4, n_test=6, seed=3)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    aggre = (fake.train_y + 1) % 10
    label_file = write_cifar_n(staging, "cifar10", fake.train_y, {"aggre_label": aggre}, subdir=None)
    return {"fake": fake, "aggre": aggre, "archive": buffer.getvalue(), "labels": label_file.read_bytes()}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ALIGNPRUNE_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setenv("ALIGNPRUNE_DOWNLOAD_ATTEMPTS", "2")
    with LocalServer() as state:
        yield state


def serve(server, monkeypatch, key: str, content: bytes, *, mode: str = "ok", checksum: str | None = None) -> str:
    name = {"CIFAR10": "/cifar-10-python.tar.gz", "CIFAR10N": "/data/CIFAR-10_human.pt"}[key]
    url = server.add(name, content, mode)
    monkeypatch.setenv(f"ALIGNPRUNE_{key}_URL", url)
    monkeypatch.setenv(
        f"ALIGNPRUNE_{key}_CHECKSUM", checksum or digest(content, "md5" if key == "CIFAR10" else "sha256")
    )
    return url


def test_download_true_fetches_verifies_and_the_loaders_read_it(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10", originals["archive"])
    serve(server, monkeypatch, "CIFAR10N", originals["labels"])
    fake = originals["fake"]
    images = load_cifar("cifar10", str(tmp_path), download=True)
    assert np.array_equal(images.train_x.permute(0, 2, 3, 1).numpy(), fake.train_x)
    assert np.array_equal(images.train_y, fake.train_y) and np.array_equal(images.test_y, fake.test_y)
    noisy = HumanNoise("cifar10", "real_aggre", download=True).apply(
        images.train_y, num_classes=10, dataset="cifar10", data_dir=str(tmp_path), seed=0
    )
    assert np.array_equal(noisy, originals["aggre"])
    assert (tmp_path / "cifar-n" / "CIFAR-10_human.pt").read_bytes() == originals["labels"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        "cifar-n",
    ]
    assert not list(tmp_path.rglob("*.part")) and len(server.requests) == 2
    load_cifar("cifar10", str(tmp_path), download=True)  # already there: nothing is fetched again
    assert len(server.requests) == 2


def test_without_download_nothing_is_fetched_and_the_error_says_how(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10", originals["archive"])
    serve(server, monkeypatch, "CIFAR10N", originals["labels"])
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", str(tmp_path))
    assert "download=true" in one_line(info)
    with pytest.raises(DataError) as info:
        find_cifar_n_file("cifar10", str(tmp_path))
    assert "download=true" in one_line(info)
    assert server.requests == [] and list(tmp_path.iterdir()) == []


def test_checksum_mismatch_is_one_line_and_keeps_what_the_user_had(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10N", originals["labels"], checksum="sha256:" + "0" * 64)
    mine = tmp_path / "cifar-n" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("my own file")
    with pytest.raises(DownloadError) as info:
        find_cifar_n_file("cifar10", str(tmp_path), download=True)
    message = one_line(info)
    assert "checksum mismatch for CIFAR-10_human.pt" in message and "0" * 64 in message
    assert digest(originals["labels"]).split(":")[1] in message
    assert sorted(p.name for p in mine.parent.iterdir() if not p.name.endswith(".lock")) == ["notes.txt"]
    assert mine.read_text() == "my own file"


def test_a_corrupt_archive_already_on_disk_is_named_and_left_alone(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10", originals["archive"])
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(originals["archive"][:100])
    with pytest.raises(DownloadError) as info:
        load_cifar("cifar10", str(tmp_path), download=True)
    assert f"checksum mismatch for {archive}" in one_line(info)
    assert archive.read_bytes() == originals["archive"][:100] and server.requests == []
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_a_truncated_transfer_resumes_with_a_range_request(server, monkeypatch, originals, tmp_path):
    url = serve(server, monkeypatch, "CIFAR10", originals["archive"], mode="truncate_once")
    load_cifar("cifar10", str(tmp_path), download=True)
    half = len(originals["archive"]) // 2
    assert server.requests == [("/cifar-10-python.tar.gz", None), ("/cifar-10-python.tar.gz", f"bytes={half}-")]
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == originals["archive"]
    assert url.startswith("http://127.0.0.1:")


def test_a_stale_partial_file_with_other_bytes_restarts_cleanly(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10N", originals["labels"])
    part = tmp_path / "cifar-n" / "CIFAR-10_human.pt.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 1000)  # left by an interrupted run, but not a prefix of the real file
    path = find_cifar_n_file("cifar10", str(tmp_path), download=True)
    assert path.read_bytes() == originals["labels"] and not part.exists()
    assert [r[1] for r in server.requests] == ["bytes=1000-", None]


def test_a_server_that_stops_answering_is_a_timeout_not_a_hang(server, monkeypatch, originals, tmp_path):
    serve(server, monkeypatch, "CIFAR10N", originals["labels"], mode="stall")
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        find_cifar_n_file("cifar10", str(tmp_path), download=True)
    assert time.monotonic() - start < 5
    message = one_line(info)
    assert "no answer within 0.5 s" in message and "after 2 attempts" in message
    assert not (tmp_path / "cifar-n" / "CIFAR-10_human.pt").exists()


def test_a_server_that_stalls_mid_file_keeps_the_part_and_the_next_run_resumes(
    server, monkeypatch, originals, tmp_path
):
    url = serve(server, monkeypatch, "CIFAR10N", originals["labels"], mode="stall_mid_body")
    dest = tmp_path / "CIFAR-10_human.pt"
    with pytest.raises(DownloadError, match="bytes are kept in"):
        download(url, dest, digest(originals["labels"]), attempts=1, timeout=0.3, progress=False)
    half = len(originals["labels"]) // 2
    assert (tmp_path / "CIFAR-10_human.pt.part").stat().st_size == half and not dest.exists()
    server.modes["/data/CIFAR-10_human.pt"] = "ok"
    download(url, dest, digest(originals["labels"]), progress=False)
    assert dest.read_bytes() == originals["labels"] and server.requests[-1][1] == f"bytes={half}-"


def test_a_missing_file_on_the_server_is_one_line_without_retries(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download(server.url("/nothing.pt"), tmp_path / "x.pt", "sha256:" + "0" * 64, progress=False)
    assert "404 Not Found" in one_line(info) and len(server.requests) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".x.pt.lock"]  # the (empty) lock file parallel jobs share


def test_default_sources_are_torchvisions_and_the_pinned_cifar_n_files(monkeypatch):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    for key in ("CIFAR10", "CIFAR100", "CIFAR10N", "CIFAR100N"):
        monkeypatch.delenv(f"ALIGNPRUNE_{key}_URL", raising=False)
        monkeypatch.delenv(f"ALIGNPRUNE_{key}_CHECKSUM", raising=False)
    for key, cls in (("cifar10", torchvision_datasets.CIFAR10), ("cifar100", torchvision_datasets.CIFAR100)):
        src = source(key)
        assert (src.url, src.filename, str(src.checksum)) == (cls.url, cls.filename, f"md5:{cls.tgz_md5}")
    for key, name in (("cifar10n", "CIFAR-10_human.pt"), ("cifar100n", "CIFAR-100_human.pt")):
        src = source(key)
        assert src.url.endswith(f"/UCSC-REAL/cifar-10-100n/{CIFAR_N_COMMIT}/data/{name}")
        assert src.checksum.algorithm == "sha256" and src.filename == name
        if (SHARED_CIFAR_N / name).is_file():  # the pinned digest is the real file's
            assert digest((SHARED_CIFAR_N / name).read_bytes()) == str(src.checksum)


def test_download_option_reaches_the_cifar_loaders_and_label_files(compose_cfg):
    from alignprune_exp.config.instantiate import instantiate

    cfg = compose_cfg(["dataset=cifar100", "noise=real"])
    assert cfg.download is False and cfg.dataset.loader.download is False
    cfg = compose_cfg(["dataset=cifar10", "noise=real_worst", "download=true"])
    assert cfg.dataset.loader.download is True
    assert instantiate(cfg.noise).download is True


def test_bad_checksum_override_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("ALIGNPRUNE_CIFAR10N_CHECKSUM", "crc32:1234")
    with pytest.raises(DataError, match="sha256:<hex> or md5:<hex>"):
        source("cifar10n")
