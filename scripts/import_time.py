#!/usr/bin/env python
"""Time ``import alignprune_exp.cli`` (python -X importtime) in fresh interpreters, here and at another git revision.

    python scripts/import_time.py                              # this checkout only
    python scripts/import_time.py --against golden-base        # this checkout vs a revision (tag, branch, commit)
    python scripts/import_time.py --against HEAD --repeats 9 --module alignprune_exp.data

Each measurement is one new interpreter (this one's ``sys.executable``) running ``-X importtime -c "import M"``
from a temporary folder, with ``PYTHONPATH=<tree>/src``; its time is the sum of every module's *self* time, i.e.
the whole import. The revision is checked out with ``git worktree add --detach`` into a temporary folder and
removed afterwards. The two trees are measured in turn (their order alternating each round), so machine load
affects both alike; each tree is imported once unmeasured first (bytecode caches). Prints the median of each,
the ratio before/after (> 1: this checkout imports faster) and each tree's 5 modules of largest cumulative time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "import time:"


def parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """``{module: (self_us, cumulative_us)}`` from ``-X importtime`` output (other stderr lines ignored)."""
    out = {}
    for line in stderr.splitlines():
        if not line.startswith(PREFIX):
            continue
        fields = line[len(PREFIX) :].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():  # the "self [us] | cumulative | ..." header
            continue
        out[fields[2].strip()] = (int(fields[0]), int(fields[1]))
    return out


def measure(src: Path, module: str, cwd: str) -> dict[str, tuple[int, int]]:
    """One fresh interpreter importing ``module`` from ``src``; raises RuntimeError when the import fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(src)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith(PREFIX)]
        raise RuntimeError(f"`import {module}` from {src} failed (exit {proc.returncode}):\n" + "\n".join(errors[-15:]))
    return parse_importtime(proc.stderr)


def imported_from(src: Path, module: str, cwd: str) -> Path:
    """The file ``module`` is imported from with ``PYTHONPATH=src`` (checks an installed copy does not win)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = f"import importlib.util as u; print(u.find_spec({module.split('.')[0]!r}).origin)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return Path(proc.stdout.strip()).resolve()


class Tree:
    """One source tree's runs: totals (seconds) and per-module cumulative times (microseconds)."""

    def __init__(self, label: str, src: Path):
        self.label, self.src = label, src
        self.totals: list[float] = []
        self.cumulative: dict[str, list[int]] = {}

    def add(self, times: dict[str, tuple[int, int]]) -> None:
        self.totals.append(sum(s for s, _ in times.values()) / 1e6)
        for name, (_, cum) in times.items():
            self.cumulative.setdefault(name, []).append(cum)

    @property
    def median(self) -> float:
        return statistics.median(self.totals)

    def top(self, module: str, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` modules (other than ``module`` itself) of largest median cumulative time, in seconds."""
        medians = {name: statistics.median(v) / 1e6 for name, v in self.cumulative.items() if name != module}
        return sorted(medians.items(), key=lambda kv: -kv[1])[:n]


def add_worktree(rev: str, parent: str) -> Path:
    path = Path(parent) / "tree"
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git worktree add {rev} failed: {proc.stderr.strip()}")
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)


def run(trees: list[Tree], module: str, repeats: int, cwd: str) -> None:
    for tree in trees:
        origin = imported_from(tree.src, module, cwd)
        if not origin.is_relative_to(tree.src.resolve()):
            raise RuntimeError(f"{module} would be imported from {origin}, not from {tree.src}")
        measure(tree.src, module, cwd)  # unmeasured: writes the bytecode caches
    for i in range(repeats):
        for tree in trees if i % 2 == 0 else trees[::-1]:
            tree.add(measure(tree.src, module, cwd))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="git revision to compare with (e.g. golden-base)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per tree (default: 5)")
    parser.add_argument("--module", default="alignprune_exp.cli", help="module to import (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="import_time_") as tmp:
        cwd = os.path.join(tmp, "cwd")
        os.mkdir(cwd)
        worktree = None
        try:
            trees = [Tree("this checkout", ROOT / "src")]
            if args.against:
                worktree = add_worktree(args.against, tmp)
                trees.insert(0, Tree(args.against, worktree / "src"))
            run(trees, args.module, args.repeats, cwd)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        finally:
            if worktree is not None:
                remove_worktree(worktree)
    print(f"import {args.module}: median of {args.repeats} fresh interpreter(s), sum of self times")
    for tree in trees:
        runs = ", ".join(f"{t:.2f}" for t in tree.totals)
        print(f"  {tree.label:>16}: {tree.median:.3f} s  (runs: {runs})")
    if len(trees) == 2:
        before, after = trees
        print(f"  ratio before/after ({before.label} / {after.label}): {before.median / after.median:.2f}x")
    for tree in trees:
        print(f"top 5 modules by cumulative time, {tree.label}:")
        for name, seconds in tree.top(args.module):
            print(f"  {seconds:8.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
