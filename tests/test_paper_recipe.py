"""docs/paper_recipe.md is executable: every row of every recipe table there is composed and asserted.

A recipe table is any markdown table whose header has the columns hyper-parameter, scope, config key, composed
value and source (in any order, other columns allowed). Per row: the backticked Hydra overrides of ``scope``
are composed, the backticked ``config key`` is selected and must equal the backticked ``composed value``
(YAML, as OmegaConf reads it).
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, ROOT

DOC = ROOT / "docs" / "paper_recipe.md"
COLUMNS = ("hyper-parameter", "scope", "config key", "composed value", "source")
_MISSING = object()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def recipe_rows(text: str) -> list[dict]:
    """Rows of every table whose header holds COLUMNS, as {column: cell, "line": n}."""
    rows, header = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            names = [c.lower() for c in cells]
            header = names if all(c in names for c in COLUMNS) else []
        elif header and not all(re.fullmatch(r":?-+:?", c) for c in cells):
            rows.append({**dict(zip(header, cells)), "line": n})
    return rows


ROWS = recipe_rows(DOC.read_text(encoding="utf-8"))


@cache
def _compose(overrides: tuple[str, ...]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def _swept(cfg, key: str) -> list[str] | None:
    """The values a grid sweeps for ``key`` (its params and extra cells), or None when it does not sweep it."""
    params, extra = cfg.hydra.sweeper.get("params"), cfg.hydra.sweeper.get("extra")
    params = {} if params is None else OmegaConf.to_container(params)
    if key not in params:
        return None
    extra = [] if extra is None else OmegaConf.to_container(extra)
    return [v.strip() for v in str(params[key]).split(",")] + [str(c[key]) for c in extra if key in c]


def test_the_doc_has_recipe_tables_covering_table_a():
    assert len(ROWS) >= 100
    scopes = " ".join(r["scope"] for r in ROWS)
    for grid in ("table1", "table2", "fig1_webvision", "fig1_clothing1m", "tableB", "tableC", "tableD", "tableE"):
        assert f"+experiment={grid}" in scopes
    assert (
        recipe_rows(
            "| hyper-parameter | scope | config key | composed value | source |\n|---|---|---|---|---|\n"
            "| a | `x=1` | `k` | `2` | s |\n\n| other | table |\n|---|---|\n| 1 | 2 |\n"
        )[0]["line"]
        == 3
    )


@pytest.mark.parametrize("row", ROWS, ids=[f"L{r['line']}-{r['hyper-parameter'][:30]}" for r in ROWS])
def test_recipe_row_composes_to_its_value(row):
    overrides, keys, values = _code(row["scope"]), _code(row["config key"]), _code(row["composed value"])
    assert overrides and len(keys) == 1 and len(values) == 1, f"line {row['line']}: backtick scope, key and value"
    overrides = tuple(o for part in overrides for o in part.split())
    cfg = _compose(overrides)
    got = OmegaConf.select(cfg, keys[0], default=_MISSING)
    assert got is not _MISSING, f"line {row['line']}: {keys[0]} is not in the composed config"
    got = OmegaConf.to_container(got, resolve=True) if OmegaConf.is_config(got) else got
    want = OmegaConf.to_container(OmegaConf.create(f"v: {values[0]}"))["v"]  # OmegaConf's YAML: 1.0e4 is a float
    if isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want), f"line {row['line']}"
    else:
        assert got == want, f"line {row['line']}"
    for option in overrides:
        key, _, value = option.partition("=")
        swept = _swept(cfg, key) if not key.startswith(("+", "~")) else None
        assert swept is None or value in swept, f"line {row['line']}: the grid does not sweep {option}"
