"""The code a result was produced by: git commit and dirty flag, or the package version outside a checkout."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from alignprune_exp import __version__

SOURCE = Path(__file__).resolve().parents[1]  # the package folder


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git:<commit>`` (``+dirty`` with uncommitted changes to tracked files) or ``pkg:<version>``."""
    try:

        def git(*args):
            return subprocess.run(
                ["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()

        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top / "src" / "alignprune_exp" != SOURCE:  # an installed copy inside some other repository
            raise OSError("not a checkout of alignprune-exp")
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", str(top / "src"), str(top / "conf")))
        return f"git:{commit[:12]}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"pkg:{__version__}"
