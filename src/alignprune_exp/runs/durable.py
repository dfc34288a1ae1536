"""File writes that either complete or fail loudly: atomic replaces and checked appends."""

from __future__ import annotations

import os
from pathlib import Path

from alignprune_exp import faultinject


def write_all(fd: int, data: bytes, write=os.write) -> None:
    """Write every byte of ``data`` (``os.write`` may write fewer); raise OSError when the disk takes none."""
    view = memoryview(data)
    while view:
        n = write(fd, view.tobytes())
        if n <= 0:
            raise OSError(f"wrote 0 of {len(view)} remaining bytes")
        view = view[n:]


def atomic_write_bytes(path: str | Path, data: bytes, kill_point: str | None = None) -> Path:
    """Write ``path`` through a temporary file, fsync, then rename: readers see the old or the new file, whole.

    ``kill_point`` names a fault-injection point hit halfway through the write (tests of torn writes).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        half = len(data) // 2
        write_all(fd, data[:half])
        if kill_point:
            faultinject.kill_point(kill_point)
        write_all(fd, data[half:])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_checked(path: str | Path, payload: bytes, header: bytes = b"") -> None:
    """Append ``payload`` (``header`` first if the file is empty) in full, or restore the file and raise.

    A last line without its newline (a row torn by a crash) is closed first, so the new row never glues to it.
    On any error the file is truncated back to its previous size: no half row is left behind.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        prefix = header if size == 0 else b""
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            prefix = b"\n"
        try:
            write_all(fd, prefix + payload, write=faultinject.os_write)
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
