"""Where the configs come from, users' own config folders, and ``python -m alignprune_exp`` from any directory.

The installed-wheel path (fresh venv, console script from a temporary directory) is checked by
``make check-wheel`` (.ci/check_wheel.sh), which CI runs after the tests.
"""

from __future__ import annotations

import subprocess
import sys

from hydra import compose, initialize_config_dir

from alignprune_exp.config.paths import checkout_conf_dir, config_dir
from tests.conftest import CONF_DIR

USER_PRUNER = """\
# AlignPrune (InfoBatch + DAS) pruning harder: r = 0.7 instead of 0.5.
defaults:
  - infobatch_das            # start from the packaged pruner ...
  - _self_                   # ... and change only what follows
name: infobatch_das_r07
policy:
  prune_prob: 0.7
"""


def user_conf(tmp_path):
    folder = tmp_path / "my_conf"
    (folder / "pruner").mkdir(parents=True)
    (folder / "pruner" / "infobatch_das_r07.yaml").write_text(USER_PRUNER)
    return folder


def test_a_checkout_reads_its_own_conf_tree():
    assert checkout_conf_dir() == CONF_DIR and config_dir() == CONF_DIR


def test_a_user_config_folder_adds_a_pruner_through_the_searchpath(tmp_path):
    folder = user_conf(tmp_path)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.searchpath=[file://{folder}]", "pruner=infobatch_das_r07"])
    assert cfg.pruner.name == "infobatch_das_r07" and cfg.pruner.policy.prune_prob == 0.7
    assert cfg.pruner.policy.delta == 0.875 and cfg.pruner.scorer._target_.endswith("DASScorer")


def test_python_m_from_another_directory_lists_every_group_and_the_users_own(cli_env, tmp_path):
    folder = user_conf(tmp_path)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "alignprune_exp", "--config-dir", str(folder), "--help"],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=run_dir,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and not line[0].isspace())
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))
    for group in groups:
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        assert set(options) <= set(listed[group].split(", ")), group
    assert "infobatch_das_r07" in listed["pruner"].split(", ")
    assert list(run_dir.iterdir()) == []
