"""Bad settings fail up front with one-line errors; splits and data files name the setting or file at fault."""

from __future__ import annotations

import numpy as np
import pytest

from alignprune_exp.config.checks import check_writable, validate_config
from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.splits import make_splits

BAD = {
    "batch_size=0": "batch_size=0 must be an integer >= 1",
    "batch_size=-4": "batch_size=-4 must be an integer >= 1",
    "eval_batch_size=0": "eval_batch_size=0 must be an integer >= 1",
    "seed=-1": "seed=-1 must be an integer >= 0",
    "num_threads=-1": "num_threads=-1 must be an integer >= 1",
    "epochs=five": "epochs='five' must be an integer >= 1",
    "epochs=2.5": "epochs=2.5 must be an integer >= 1",
    "max_epoch_factor=0": "max_epoch_factor=0 must be a number >= 1",
    "checkpoint_every=-1": "checkpoint_every=-1 must be an integer >= 0",
}


@pytest.mark.parametrize("override", list(BAD))
def test_bad_setting_is_a_one_line_error(compose_cfg, override):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_cfg(["dataset=digits", override]))
    assert BAD[override] in str(err.value) and "\n" not in str(err.value)


def test_defaults_and_paper_experiment_pass(compose_cfg):
    validate_config(compose_cfg([]))
    validate_config(compose_cfg(["+experiment=table2", "num_threads=2", "max_epoch_factor=1.5"]))


def test_unwritable_results_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="is not writable .*choose a writable results_dir"):
        check_writable(blocker / "results")
    check_writable(tmp_path / "fine")
    assert (tmp_path / "fine").is_dir() and not list((tmp_path / "fine").iterdir())


def test_holdout_larger_than_the_data_blames_holdout_size(compose_cfg):
    reference = instantiate(compose_cfg(["reference=clean_val"]).reference)
    with pytest.raises(ConfigError, match="holdout_size=5000 holds out 5000 of the 1437"):
        make_splits(1437, reference=reference, test_split="holdout", holdout_size=5000, official_test_size=None, seed=0)


def test_empty_npy_names_the_file(tmp_path):
    from alignprune_exp.data.cifar import _npy

    (tmp_path / "train_x.npy").write_bytes(b"")
    with pytest.raises(DataError, match=f"cannot read {tmp_path / 'train_x.npy'}: .*empty or truncated"):
        _npy(tmp_path / "train_x.npy")
    np.save(tmp_path / "ok.npy", np.arange(3))
    assert _npy(tmp_path / "ok.npy").tolist() == [0, 1, 2]
