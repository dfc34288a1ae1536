"""Run train.py's entry point in processes forked from a server that imported it once (about 15 s saved per run).

Each call gets a fresh process (its own signals, RNGs and exit status, killable with SIGKILL) and runs the
same ``alignprune_exp.cli.main`` as ``python train.py ...``, with ``sys.argv``, cwd and environment set,
through the fault launcher (``tests/faults.py``: the faults its environment variables name, if any).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from pathlib import Path


def _child(argv: list[str], cwd: str, env: dict, log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(cwd)
    os.environ.update(env)
    from tests.faults import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class ForkedCLI:
    """``cli(args, cwd, env) -> (exit status, output)``; a process killed by signal N returns -N."""

    def __init__(self):
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["alignprune_exp.cli"])
        self.n = 0

    def __call__(self, args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300):
        self.n += 1
        log_path = Path(cwd) / f".cli_{self.n}.log"
        proc = self.ctx.Process(target=_child, args=(list(args), str(cwd), dict(env or {}), str(log_path)))
        proc.start()
        self.proc = proc  # for a caller that signals it from another thread
        proc.join(timeout)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise TimeoutError(f"train.py {' '.join(args)} ran over {timeout} s")
        return proc.exitcode, log_path.read_text(errors="replace")
