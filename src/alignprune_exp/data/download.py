"""Fetch one file over HTTP(S), only when the user asked (``download=true``), and never use it unverified.

The bytes go to ``<name>.part`` and are renamed to ``<name>`` only after their checksum matched. An interrupted
transfer resumes with an HTTP Range request (the ``.part`` file is kept for the next run), and every network
wait has a timeout, so a server that stops answering is an error, not a hang. A mismatch is a one-line error
that names the file; a file the user already had is never deleted or overwritten.

Environment: ``ALIGNPRUNE_DOWNLOAD_TIMEOUT`` (seconds per network wait, default 30) and
``ALIGNPRUNE_DOWNLOAD_ATTEMPTS`` (transfers tried before giving up, default 3).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from alignprune_exp.core.errors import DataError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
ALGORITHMS = ("sha256", "md5")


class DownloadError(DataError):
    """A requested download failed: no answer, an HTTP error, or bytes that do not match their checksum."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest, written ``"sha256:<hex>"`` or ``"md5:<hex>"``."""

    algorithm: str
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> Checksum:
        algorithm, _, digest = str(text).partition(":")
        if algorithm not in ALGORITHMS or not digest or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise DataError(f"checksum {text!r} is not of the form sha256:<hex> or md5:<hex>; fix the override")
        return cls(algorithm, digest.lower())

    def of(self, path: Path) -> str:
        """The hex digest of ``path`` under this checksum's algorithm."""
        digest = hashlib.new(self.algorithm)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
                digest.update(block)
        return digest.hexdigest()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


def env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else float(value)
    except ValueError:
        raise DataError(f"{name}={value!r} is not a number; set it to a number of seconds or attempts") from None


def verify(path: Path, checksum: Checksum, origin: str) -> None:
    """Raise a one-line DownloadError naming ``path`` when its digest differs; never deletes anything."""
    actual = checksum.of(path)
    if actual != checksum.hexdigest:
        raise DownloadError(
            f"checksum mismatch for {path} ({origin}): {checksum.algorithm} {actual}, expected {checksum.hexdigest}; "
            f"the file was left as it is: move it away (or replace it with the original) and run again"
        )


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` so parallel sweep jobs never write the same file at once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): a single process at a time is the user's affair
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Retryable(Exception):
    """A transfer that stopped part-way (timeout, reset, short body): worth resuming."""


def download(
    url: str,
    dest: str | Path,
    checksum: str | Checksum,
    *,
    timeout: float | None = None,
    attempts: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` already exists; verify the checksum before it is used.

    Args:
        url: http(s) address of the file.
        dest: final path; the transfer writes ``dest.part`` and renames it once verified.
        checksum: the expected digest ("sha256:<hex>" or "md5:<hex>").
        timeout: seconds any single network wait may take (default: ALIGNPRUNE_DOWNLOAD_TIMEOUT or 30).
        attempts: transfers tried, each resuming the last (default: ALIGNPRUNE_DOWNLOAD_ATTEMPTS or 3).
        progress: show a tqdm bar (None: only on a terminal).

    Raises:
        DownloadError: the server did not answer in time, answered with an error, or sent other bytes; an
            existing ``dest`` that fails the checksum is named and left untouched.
    """
    dest = Path(dest)
    checksum = checksum if isinstance(checksum, Checksum) else Checksum.parse(checksum)
    timeout = float(timeout if timeout is not None else env_number("ALIGNPRUNE_DOWNLOAD_TIMEOUT", 30.0))
    attempts = max(1, int(attempts if attempts is not None else env_number("ALIGNPRUNE_DOWNLOAD_ATTEMPTS", 3)))
    with exclusive(dest.with_name(f".{dest.name}.lock")):
        if dest.is_file():
            verify(dest, checksum, "already on disk")
            return dest
        part = dest.with_name(dest.name + ".part")
        for fresh_restart in (False, True):  # a resumed file that fails its checksum gets one clean restart
            resumed = _transfer(url, part, timeout, attempts, progress)
            actual = checksum.of(part)
            if actual == checksum.hexdigest:
                os.replace(part, dest)
                log.info("downloaded and verified %s (%s)", dest, checksum.algorithm)
                return dest
            part.unlink()
            if not resumed or fresh_restart:
                break
            log.warning("%s failed its checksum after a resumed transfer; downloading it again from the start", dest)
        raise DownloadError(
            f"checksum mismatch for {dest.name} downloaded from {url}: {checksum.algorithm} {actual}, expected "
            f"{checksum.hexdigest}; the download was discarded and nothing else in {dest.parent} was changed; "
            "the server sent a different file: retry later or check the URL override"
        )


def _transfer(url: str, part: Path, timeout: float, attempts: int, progress: bool | None) -> bool:
    """Fill ``part`` with the whole file, resuming across up to ``attempts`` tries; True if any bytes were reused."""
    part.parent.mkdir(parents=True, exist_ok=True)
    resumed = part.is_file() and part.stat().st_size > 0
    problem = ""
    for attempt in range(attempts):
        if attempt:
            resumed = resumed or (part.is_file() and part.stat().st_size > 0)
            log.warning("retrying %s (attempt %d of %d) after: %s", url, attempt + 1, attempts, problem)
        try:
            _transfer_once(url, part, timeout, progress)
            return resumed
        except _Retryable as exc:
            problem = str(exc)
    have = part.stat().st_size if part.is_file() else 0
    raise DownloadError(
        f"could not download {url} after {attempts} attempts: {problem}; {have} bytes are kept in {part} and "
        f"the next run with download=true resumes from there (ALIGNPRUNE_DOWNLOAD_TIMEOUT={timeout:g} s per wait)"
    )


def _transfer_once(url: str, part: Path, timeout: float, progress: bool | None) -> None:
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "alignprune-exp", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)  # noqa: S310 (http(s) URLs only)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the .part file is complete (the checksum decides)
            return
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"the server answered {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url} answered {exc.code} {exc.reason}; check the address (or its override)") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(_describe(exc, timeout)) from None
    with response:
        partial = offset and response.status == 206
        if partial and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            partial = False  # a range other than the one asked for: start over rather than splice
        start = offset if partial else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        with (
            open(part, "ab" if partial else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[:-5],
                disable=None if progress is None else not progress,
                leave=False,
            ) as bar,
        ):
            read = getattr(response, "read1", response.read)  # read1: keep what arrived before a stall
            try:
                for block in iter(lambda: read(CHUNK_BYTES), b""):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(_describe(exc, timeout)) from None
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retryable(f"the connection closed after {size} of {total} bytes")


def _describe(exc: BaseException, timeout: float) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return " ".join(f"{type(reason).__name__}: {reason}".split())
