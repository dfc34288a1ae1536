"""File writes that either complete or fail loudly: atomic replaces and checked appends.

Every byte these functions write goes through the module global ``_os_write`` (``os.write``), looked up at
call time: replacing ``alignprune_exp.runs.durable._os_write`` changes every durable write, whichever module
imported the functions (the tests' fault injection uses it to tear writes and fill the disk).

A write that fails (disk full, permissions) raises :class:`WriteFailed`: an ``OSError`` (errno kept) that is also
the project's ``ResultsWriteError``, so the CLI prints it as one line naming the file and the fix (exit 2);
nothing half-written is left behind (no temporary file, no half line).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from alignprune_exp.core.errors import ResultsWriteError

_os_write = os.write


class WriteFailed(ResultsWriteError, OSError):
    """A durable write of ``filename`` failed; ``errno``/``strerror`` are the operating system's."""

    def __init__(self, path: str | Path, err: OSError):
        OSError.__init__(self, err.errno, err.strerror or str(err), str(path))
        self.cause = err

    def __str__(self) -> str:
        return (
            f"could not write {self.filename} ({self.strerror}): free space on its disk (or make "
            f"{Path(self.filename).parent} writable), then run the same command again with resume=auto"
        )

    def __reduce__(self):  # picklable across joblib workers despite the two-argument constructor
        return (type(self), (self.filename, OSError(self.errno, self.strerror)))


def _failed(path: Path, err: OSError) -> WriteFailed:
    return err if isinstance(err, WriteFailed) else WriteFailed(path, err)


def write_all(fd: int, data: bytes, write=None) -> None:
    """Write every byte of ``data`` (a write may take fewer); raise OSError when the disk takes none.

    ``write`` defaults to this module's ``_os_write``, read at each call.
    """
    view = memoryview(data)
    while view:
        n = (write or _os_write)(fd, view.tobytes())
        if n <= 0:
            raise OSError(f"wrote 0 of {len(view)} remaining bytes")
        view = view[n:]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``path`` through a temporary file, fsync, rename, fsync the folder: readers see the old or the
    new file, whole. On any error the temporary file is removed and the error re-raised (``path`` untouched).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: parallel writers never share one
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _failed(path, err) from None
        raise
    _fsync_dir(path.parent)
    return path


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save(obj, path)`` through :func:`atomic_write_bytes` (serialised in memory first)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getbuffer())


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
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise _failed(Path(path), err) from None
    try:
        size = os.fstat(fd).st_size
        prefix = header if size == 0 else b""
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            prefix = b"\n"
        try:
            write_all(fd, prefix + payload)
            os.fsync(fd)
        except BaseException as err:
            os.ftruncate(fd, size)
            if isinstance(err, OSError):
                raise _failed(Path(path), err) from None
            raise
    finally:
        os.close(fd)
