"""What ``download=true`` fetches, from where, with which checksum, and how it is unpacked into ``data_dir``.

- CIFAR-10/100: torchvision's own URLs and archive MD5s (``torchvision.datasets.CIFAR10.url``, ``.tgz_md5``),
  extracted into torchvision's layout (``cifar-10-batches-py/``, ``cifar-100-python/``).
- CIFAR-10N/100N: the authors' label files (github.com/UCSC-REAL/cifar-10-100n, ``data/*_human.pt``) at a
  pinned commit, with pinned SHA-256 digests, saved as ``<data_dir>/cifar-n/<file>``.

Nothing else is ever downloaded: NEWS has no stable source with a checksum (Co-teaching+ shares it through a
Google Drive link), and ImageNet, WebVision and Clothing-1M are too large and come under their own terms.
Each source can be redirected (a mirror; the tests' local server) with ``ALIGNPRUNE_<KEY>_URL`` and
``ALIGNPRUNE_<KEY>_CHECKSUM`` ("sha256:<hex>" or "md5:<hex>"), KEY one of CIFAR10, CIFAR100, CIFAR10N, CIFAR100N.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from alignprune_exp.data.download import Checksum, DownloadError, download, exclusive

CIFAR_N_COMMIT = "199b91536bd17e56274a3a7277dfe586f65fc1df"  # the 2023 release (corrected CIFAR-100N coarse labels)
CIFAR_N_RAW = f"https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/{CIFAR_N_COMMIT}/data"
CIFAR_N_FILES = {  # key -> (file name, SHA-256 of the file served at the pinned commit)
    "cifar10n": ("CIFAR-10_human.pt", "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"),
    "cifar100n": ("CIFAR-100_human.pt", "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394"),
}
TORCHVISION_CLASSES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}


@dataclass(frozen=True)
class Source:
    """One downloadable file: where it comes from, its expected digest, and the name it is saved under."""

    key: str
    url: str
    checksum: Checksum
    filename: str


def source(key: str) -> Source:
    """The source for ``key`` ("cifar10", "cifar100", "cifar10n", "cifar100n"), after environment overrides."""
    prefix = f"ALIGNPRUNE_{key.upper()}"
    url, checksum = os.environ.get(f"{prefix}_URL"), os.environ.get(f"{prefix}_CHECKSUM")
    if key in CIFAR_N_FILES:
        filename, sha256 = CIFAR_N_FILES[key]
        url, checksum = url or f"{CIFAR_N_RAW}/{filename}", checksum or f"sha256:{sha256}"
    elif key in TORCHVISION_CLASSES:
        filename = f"{key[:5]}-{key[5:]}-python.tar.gz"  # torchvision's name: cifar-10-python.tar.gz
        if not (url and checksum):
            import torchvision.datasets  # a few seconds to import: only when its URL or MD5 is needed

            dataset = getattr(torchvision.datasets, TORCHVISION_CLASSES[key])
            filename, url, checksum = dataset.filename, url or dataset.url, checksum or f"md5:{dataset.tgz_md5}"
    else:
        raise KeyError(key)
    return Source(key, url, Checksum.parse(checksum), filename)


def fetch_cifar(name: str, root: Path, folder: str) -> Path:
    """Download (or reuse) torchvision's CIFAR archive in ``root``, verify it, and extract ``root/folder``."""
    target = root / folder
    with exclusive(root / f".{folder}.lock"):
        if target.is_dir():  # a parallel job finished it while this one waited
            return target
        src = source(name)
        archive = download(src.url, root / src.filename, src.checksum)
        _extract_folder(archive, folder, root)
    return target


def fetch_cifar_n(name: str, root: Path) -> Path:
    """Download the CIFAR-N label file of ``name`` ("cifar10"/"cifar100") into ``root/cifar-n/``, verified."""
    src = source(f"{name}n")
    return download(src.url, root / "cifar-n" / src.filename, src.checksum)


def _extract_folder(archive: Path, folder: str, root: Path) -> None:
    """Unpack the members under ``folder/`` into a scratch directory, then move the folder into place."""
    scratch = root / f".{folder}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)  # a previous extraction that was interrupted (ours, never the user's)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name == folder or m.name.startswith(f"{folder}/")]
            if not members:
                raise DownloadError(
                    f"{archive} holds no {folder}/ folder; it is not the expected archive: move it away and run again"
                )
            _safe_extract(tar, members, scratch)
        os.replace(scratch / folder, root / folder)
    except (tarfile.TarError, OSError) as exc:
        raise DownloadError(
            f"cannot extract {archive}: {' '.join(str(exc).split())}; move it away and run again with download=true"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _safe_extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """Extract regular files and folders only, never outside ``dest`` (tarfile's "data" filter where it exists)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
        return
    for member in members:  # Python releases before the extraction filters
        parts = Path(member.name).parts
        if Path(member.name).is_absolute() or ".." in parts or not (member.isfile() or member.isdir()):
            raise DownloadError(f"{tar.name} has an unsafe member {member.name!r}; it is not the expected archive")
    tar.extractall(dest, members=members)
