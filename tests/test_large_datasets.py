"""WebVision-mini, Clothing-1M, ImageNet-1K and NEWS loaders on generated trees in their official layouts,
the streaming source, the splits they give the trainer, one-line errors for missing files, and CLI runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.clothing1m import load_clothing1m
from alignprune_exp.data.imagenet import load_imagenet1k
from alignprune_exp.data.news import TOPIC_OF_GROUP, load_news
from alignprune_exp.data.spec import Part
from alignprune_exp.data.webvision import load_webvision_mini
from alignprune_exp.noise import make_noisy_labels
from alignprune_exp.pipeline.data import build_data
from tests.conftest import ROOT
from tests.large_fake_trees import fake_wnids, write_all, write_clothing1m, write_imagenet, write_news, write_webvision

SMALL = {"image_size": 32, "resize_size": 36, "num_workers": 0}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, write_all(data_dir)


def webvision(data_dir, **kw):
    return load_webvision_mini(str(data_dir / "webvision"), str(data_dir / "imagenet"), **{**SMALL, **kw})


def source_of(spec, rows=None):
    """The spec's StreamingData over its training rows (noisy = given labels), official splits for eval."""
    rows = np.arange(len(spec.train_y)) if rows is None else rows
    ref = (
        Part("reference", np.arange(len(spec.reference_y)), spec.reference_y)
        if spec.reference_y is not None
        else Part("test", np.arange(len(spec.test_y)), spec.test_y)
    )
    return spec.make_source(
        Part("train", rows, spec.train_y[rows]),
        spec.train_y[rows],
        ref,
        Part("test", np.arange(len(spec.test_y)), spec.test_y),
        torch.device("cpu"),
    )


# --- loaders read the official layouts -------------------------------------------------------------------


def test_webvision_mini_keeps_first_50_classes_and_tests_on_ilsvrc(trees):
    data_dir, written = trees
    spec = webvision(data_dir)
    files, labels = written["webvision"].splits["train"]
    assert spec.num_classes == 50 and len(spec.train) == len(files) == 100
    assert [f.decode() for f in spec.train.files] == files and np.array_equal(spec.train_y, labels)
    assert spec.train_y.max() == 49 and not spec.labels_are_clean
    assert np.array_equal(spec.reference_y, written["webvision"].splits["val"][1])  # official val = reference
    assert spec.reference.root.endswith("val_images_256")
    wnids = fake_wnids(50)
    assert len(spec.test) == 50 and np.array_equal(spec.test_y, np.arange(50))  # ILSVRC val by synsets.txt
    assert all(f.decode().split("/")[0] == wnids[y] for f, y in zip(spec.test.files, spec.test_y))
    assert "ILSVRC2012" in spec.test_name and spec.input_shape == (3, 32, 32)


def test_webvision_val_as_test_splits_each_class_into_disjoint_halves(trees):
    data_dir, written = trees
    spec = webvision(data_dir, test_set="webvision_val", split_seed=3)
    ref, test = {f.decode() for f in spec.reference.files}, {f.decode() for f in spec.test.files}
    assert not ref & test and ref | test == set(written["webvision"].splits["val"][0])
    assert np.array_equal(np.bincount(spec.reference_y, minlength=50), np.ones(50))
    assert np.array_equal(np.bincount(spec.test_y, minlength=50), np.ones(50))
    with pytest.raises(ConfigError, match="test_set"):
        webvision(data_dir, test_set="both")


@pytest.mark.parametrize("annotations", [False, True])
def test_clothing1m_reads_key_lists_and_label_files(tmp_path, annotations):
    written = write_clothing1m(tmp_path / "c1m", annotations=annotations)
    spec = load_clothing1m(str(tmp_path / "c1m"), **SMALL)
    assert spec.num_classes == 14 and not spec.labels_are_clean
    for split, images in (("noisy_train", spec.train), ("clean_val", spec.reference), ("clean_test", spec.test)):
        keys, labels = written.splits[split]
        assert [f.decode() for f in images.files] == keys and np.array_equal(images.labels, labels)
    assert (spec.train_y != np.repeat(np.arange(14), 3)).sum() == 14  # every third training image is noisy


def test_imagenet1k_class_folders(trees):
    data_dir, written = trees
    spec = load_imagenet1k(str(data_dir / "imagenet"), **SMALL)
    assert spec.num_classes == 50 and len(spec.train) == 150 and len(spec.test) == 50
    assert [f.decode() for f in spec.train.files] == written["imagenet"].splits["train"][0]
    assert np.array_equal(spec.train_y, np.repeat(np.arange(50), 3)) and spec.reference_y is None


def test_news_features_equal_newsnet_front_end_and_npy_layout_matches(tmp_path):
    fake = write_news(tmp_path / "pkl")
    write_news(tmp_path / "npy", npy=True)
    spec = load_news(str(tmp_path / "pkl"), pooled_dim=240)
    n_train = int(140 * 0.7)
    assert spec.num_classes == 7 and spec.input_shape == (240,) and len(spec.train_y) == n_train
    assert np.array_equal(spec.train_y, TOPIC_OF_GROUP[fake.labels[:n_train]])
    # Co-teaching+'s NewsNet: frozen embedding, view (1, B, words*dims), AdaptiveAvgPool1d, squeeze.
    emb = nn.Embedding.from_pretrained(torch.from_numpy(fake.weights))
    out = nn.AdaptiveAvgPool1d(240)(emb(torch.from_numpy(fake.tokens).long()).view(1, 140, -1)).squeeze(0)
    assert torch.allclose(torch.cat([spec.train_x, spec.test_x]), out, atol=1e-6)
    other = load_news(str(tmp_path / "npy"), pooled_dim=240, regroup=False)
    assert other.num_classes == 20 and torch.equal(other.train_x, spec.train_x)


# --- the streaming source ----------------------------------------------------------------------------------


def test_streaming_batches_follow_the_given_order_and_do_not_depend_on_workers(trees):
    data_dir, _ = trees
    spec = load_imagenet1k(str(data_dir / "imagenet"), **SMALL)
    data = source_of(spec)
    order = torch.randperm(150, generator=torch.Generator().manual_seed(0))[:40]
    slices = [slice(0, 16), slice(16, 32), slice(32, 40)]

    def run(workers, seed=5):
        data.num_workers = workers
        return list(data.train_batches(order, slices, torch.Generator().manual_seed(seed)))

    batches = run(0)
    assert [len(b.idx) for b in batches] == [16, 16, 8]
    assert torch.equal(torch.cat([b.idx for b in batches]), order)
    assert torch.equal(torch.cat([b.y for b in batches]), data.y[order])
    x = torch.cat([b.x for b in batches])
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and -3 < x.mean() < 3
    again = run(2)
    assert all(torch.equal(a.x, b.x) for a, b in zip(batches, again))  # workers change nothing
    assert not torch.equal(run(0, seed=6)[0].x, batches[0].x)  # another draw, other crops
    strong = next(iter(data.train_batches(order, slices, torch.Generator().manual_seed(5), strong=True)))
    assert strong.x_strong.shape == strong.x.shape and torch.equal(strong.x, batches[0].x)


def test_each_rank_reads_only_its_part_of_every_global_batch(trees):
    from alignprune_exp.core.distributed import Dist

    data_dir, _ = trees
    data = source_of(load_imagenet1k(str(data_dir / "imagenet"), **SMALL))
    order = torch.randperm(150, generator=torch.Generator().manual_seed(0))[:40]
    slices = [slice(0, 16), slice(16, 32), slice(32, 40)]
    full = list(data.train_batches(order, slices, torch.Generator().manual_seed(5)))
    train = data.train

    class Recording(torch.utils.data.Dataset):
        def __init__(self):
            self.read = []

        def __getitem__(self, key):
            self.read.append(key[0])
            return train[key]

    parts = []
    for rank in (0, 1):
        data.train = Recording()
        parts.append(list(data.train_batches(order, slices, torch.Generator().manual_seed(5), dist=Dist(rank, 2))))
        assert sorted(data.train.read) == sorted(torch.cat([b.idx for b in parts[-1]]).tolist())
    data.train = train
    for whole, p0, p1 in zip(full, *parts):  # per-sample augmentation: the parts are the whole batch, cut
        assert len(p0.idx) == len(p1.idx) == len(whole.idx) // 2
        assert torch.equal(torch.cat([p0.idx, p1.idx]), whole.idx) and torch.equal(torch.cat([p0.x, p1.x]), whole.x)
    ys = [torch.cat([y for _, y in data.eval_batches("test", 7, dist=Dist(r, 2))]) for r in (0, 1)]
    assert sorted(torch.cat(ys).tolist()) == sorted(data.test_y.tolist()) and len(ys[0]) > 0 and len(ys[1]) > 0


def test_streaming_eval_batches_cover_each_split_in_order(trees):
    data_dir, _ = trees
    data = source_of(webvision(data_dir))
    for split in ("reference", "test"):
        ys = [y for _, y in data.eval_batches(split, 32)]
        assert sum(map(len, ys)) == data.eval_size(split)
    assert torch.equal(torch.cat(ys), torch.arange(50))
    x1 = torch.cat([x for x, _ in data.eval_batches("test", 32)])
    assert torch.equal(x1, torch.cat([x for x, _ in data.eval_batches("test", 7)]))  # no randomness
    idx = torch.cat([i for _, _, i in data.train_eval_batches(64)])
    assert torch.equal(idx, torch.arange(100))


def test_a_missing_image_in_a_worker_is_a_one_line_error(tmp_path):
    write_imagenet(tmp_path / "imagenet", fake_wnids(4), train_per_class=3)
    spec = load_imagenet1k(str(tmp_path / "imagenet"), **{**SMALL, "num_workers": 2})
    gone = tmp_path / "imagenet" / "train" / spec.train.files[7].decode()
    gone.unlink()
    data = source_of(spec)
    with pytest.raises(DataError) as err:
        list(data.train_batches(torch.arange(12), [slice(0, 6), slice(6, 12)], torch.Generator()))
    assert "\n" not in str(err.value) and str(gone) in str(err.value)


# --- noise, reference and test splits through pipeline.data.build_data ----------------------------------------


def build(compose_cfg, data_dir, *overrides):
    small = (
        []
        if "dataset=news" in overrides
        else ["++dataset.loader.num_workers=0", "++dataset.loader.image_size=32", "++dataset.loader.resize_size=36"]
    )
    cfg = compose_cfg([f"data_dir={data_dir}", *small, *overrides])
    return build_data(cfg, torch.device("cpu"))


def test_imagenet_asym_noise_is_next_class_and_reference_comes_from_training(trees, compose_cfg):
    data_dir, _ = trees
    spec = load_imagenet1k(str(data_dir / "imagenet"), **SMALL)
    data, info = build(
        compose_cfg, data_dir, "dataset=imagenet1k", "noise=asym0.2", "reference.size=20", "split_seed=4"
    )
    y, clean = data.y.numpy(), data.y_clean.numpy()
    flipped = y != clean
    assert np.array_equal(y[flipped], (clean[flipped] + 1) % 50) and info["noise_rate"] == pytest.approx(flipped.mean())
    # Noise is drawn on the whole training split (one flip in each class of 3), then the reference is drawn;
    # it stays in training with its noisy labels (reference.disjoint=false, the default).
    full = make_noisy_labels(spec.train_y, "asym", 0.2, 50, seed=0, dataset="imagenet1k")
    assert (full != spec.train_y).sum() == 50
    position = {f: i for i, f in enumerate(spec.train.files)}
    assert np.array_equal(y, full[[position[f] for f in data.train.images.files]])
    assert (info["n_train"], info["n_reference"], info["n_test"]) == (150, 20, 50)
    ref_paths = {f.decode() for f in data.reference.images.files}
    train_paths = {f.decode() for f in data.train.images.files}
    assert len(ref_paths) == 20 and ref_paths <= train_paths and ref_paths <= {f.decode() for f in spec.train.files}
    _, info = build(
        compose_cfg,
        data_dir,
        "dataset=imagenet1k",
        "noise=asym0.2",
        "reference.size=20",
        "split_seed=4",
        "reference.disjoint=true",
    )
    assert info["n_train"] == 130  # held out of training
    assert info["test_set"].startswith("ImageNet val")


def test_real_noise_datasets_use_their_official_clean_split_as_reference(trees, compose_cfg):
    data_dir, _ = trees
    data, info = build(compose_cfg, data_dir, "dataset=webvision_mini", "noise=native")
    assert (info["n_train"], info["n_reference"], info["n_test"]) == (100, 100, 50)
    assert info["reference"] == "clean_val" and "WebVision val" in info["reference_set"]
    assert np.isnan(info["noise_rate"]) and not data.is_noisy.any()
    _, info = build(compose_cfg, data_dir, "dataset=webvision_mini", "noise=native", "reference.size=10")
    assert info["n_reference"] == 10 and info["n_train"] == 100
    _, info = build(
        compose_cfg, data_dir, "dataset=webvision_mini", "noise=native", "reference=noisy_train", "reference.size=10"
    )
    assert info["n_reference"] == 10 and info["n_train"] == 100  # drawn from the web-labelled images
    assert np.isnan(info["reference_noise_rate"])
    data, info = build(compose_cfg, data_dir, "dataset=clothing1m", "noise=native", "train_subset=20")
    assert (info["n_train"], info["n_reference"], info["reference_noise_rate"]) == (20, 14, 0.0)
    assert len(data.train.images) == 20 and "clean val" in info["reference_set"]
    with pytest.raises(ConfigError, match="test_split=official"):
        build(compose_cfg, data_dir, "dataset=clothing1m", "noise=native", "test_split=holdout")


def test_news_goes_through_the_same_noise_and_split_paths(trees, compose_cfg):
    data_dir, _ = trees
    data, info = build(compose_cfg, data_dir, "dataset=news", "noise=pairflip0.45", "dataset.loader.pooled_dim=64")
    assert info["input_shape"] == (64,) and info["n_test"] == 42 and info["n_reference"] == 42
    assert data.x.dtype == torch.float32 and torch.equal(data.augment(data.x[:3], train=True), data.x[:3])
    flipped = data.y != data.y_clean
    assert torch.equal(data.y[flipped], (data.y_clean[flipped] + 1) % 7)


# --- missing files: one line naming the expected path ------------------------------------------------------

MISSING = {
    "webvision_list": ("webvision", "webvision/info/train_filelist_google.txt"),
    "webvision_val_list": ("webvision", "webvision/info/val_filelist.txt"),
    "webvision_val_images": ("webvision", "webvision/val_images_256"),
    "webvision_synsets": ("webvision", "webvision/info/synsets.txt"),
    "webvision_first_image": ("webvision", "webvision/google/q0001/img_000.jpg"),
    "ilsvrc_val": ("webvision", "imagenet/val"),
    "ilsvrc_class_folder": ("webvision", "imagenet/val/n00000007"),
    "clothing_noisy_kv": ("clothing1m", "c1m/noisy_label_kv.txt"),
    "clothing_train_keys": ("clothing1m", "c1m/noisy_train_key_list.txt"),
    "clothing_val_keys": ("clothing1m", "c1m/clean_val_key_list.txt"),
    "clothing_test_keys": ("clothing1m", "c1m/clean_test_key_list.txt"),
    "clothing_clean_kv": ("clothing1m", "c1m/clean_label_kv.txt"),
    "imagenet_train": ("imagenet1k", "imagenet/train"),
    "imagenet_val": ("imagenet1k", "imagenet/val"),
    "news_pkl": ("news", "news/news.pkl"),
}


@pytest.mark.parametrize("case", sorted(MISSING))
def test_each_missing_file_is_a_one_line_error_naming_its_path(tmp_path, case):
    dataset, rel = MISSING[case]
    wnids = fake_wnids(60)
    if dataset == "webvision":
        write_webvision(tmp_path / "webvision", wnids, train_per_class=1, val_per_class=1, extra_classes=0)
        write_imagenet(tmp_path / "imagenet", wnids[:50], train_per_class=0, val_per_class=1)
    elif dataset == "clothing1m":
        write_clothing1m(tmp_path / "c1m", train_per_class=1)
    elif dataset == "imagenet1k":
        write_imagenet(tmp_path / "imagenet", wnids[:3])
    else:
        write_news(tmp_path / "news")
    target = tmp_path / rel
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    load = {
        "webvision": lambda: webvision(tmp_path),
        "clothing1m": lambda: load_clothing1m(str(tmp_path / "c1m"), **SMALL),
        "imagenet1k": lambda: load_imagenet1k(str(tmp_path / "imagenet"), **SMALL),
        "news": lambda: load_news(str(tmp_path / "news")),
    }[dataset]
    with pytest.raises(DataError) as err:
        load()
    message = str(err.value)
    assert "\n" not in message and str(target) in message


def test_a_missing_dataset_reaches_the_cli_as_its_own_one_line_error(compose_cfg, tmp_path):
    from alignprune_exp.config.instantiate import instantiate

    cfg = compose_cfg(["dataset=webvision_mini", f"data_dir={tmp_path}"])
    with pytest.raises(DataError) as err:  # utils.instantiate unwraps it; cli.main prints it as "error: ..."
        instantiate(cfg.dataset.loader)
    assert str(tmp_path / "webvision" / "info" / "train_filelist_google.txt") in str(err.value)


def test_imagenet_val_classes_must_match_train(tmp_path):
    write_imagenet(tmp_path / "imagenet", fake_wnids(3))
    (tmp_path / "imagenet" / "val" / "n09999999").mkdir()
    with pytest.raises(DataError, match="different class folders"):
        load_imagenet1k(str(tmp_path / "imagenet"), **SMALL)


# --- through the CLI ---------------------------------------------------------------------------------------

TINY = [
    "noise=native",
    "model=mlp",
    "model.hidden=32",
    "optimizer=sgd",
    "optimizer.lr=0.05",
    "scheduler=constant",
    "epochs=1",
    "batch_size=16",
    "device=cpu",
    "progress_bar=false",
    "pruner=infobatch_das",
    "pruner.scorer.window=3",
    "ratio=r0",
]


def train(args, env, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cli_one_epoch_on_each_image_dataset(trees, cli_env, tmp_path):
    data_dir, _ = trees
    proc = train(
        [
            "-m",
            "dataset=webvision_mini,clothing1m,imagenet1k",
            *TINY,
            f"data_dir={data_dir}",
            "++dataset.loader.num_workers=0",
            "++dataset.loader.image_size=32",
            "++dataset.loader.resize_size=36",
            f"results_dir={tmp_path / 'results'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "hydra.sweep.subdir=${hydra.job.num}",
        ],
        cli_env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    summaries = {s["dataset"]: s for s in runs}
    assert set(summaries) == {"webvision_mini", "clothing1m", "imagenet1k"}
    expected = {"webvision_mini": (100, 100, 50), "clothing1m": (42, 14, 14), "imagenet1k": (150, 50, 50)}
    for name, (n_train, n_ref, n_test) in expected.items():
        s = summaries[name]
        assert (s["n_train"], s["n_reference"], s["n_test"]) == (n_train, n_ref, n_test)
        assert s["epochs_run"] == 1 and s["train_fwd"] == n_train and s["reference_fwd"] == n_ref
        assert 0 <= s["final_test_acc"] <= 100 and s["input_shape"] == [3, 32, 32]


@pytest.mark.slow
def test_cli_news_run(trees, cli_env, tmp_path):
    data_dir, _ = trees
    proc = train(
        [
            "dataset=news",
            "noise=sym0.5",
            "model=mlp3",
            "model.hidden=16",
            "optimizer=adamw",
            "scheduler=linear_decay",
            "epochs=2",
            "batch_size=16",
            "device=cpu",
            "progress_bar=false",
            "pruner=infobatch_das",
            "pruner.scorer.window=3",
            f"data_dir={data_dir}",
            "dataset.loader.pooled_dim=64",
            f"results_dir={tmp_path / 'results'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cli_env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_train"] == 98 and summary["input_shape"] == [64] and summary["epochs_run"] >= 2
    assert summary["noise_rate"] == pytest.approx(0.5, abs=0.1)


# --- experiment files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,dataset,model,grid",
    [
        ("fig1_webvision", "webvision_mini", "inception_resnet_v2", {"ratio": "r30,r50,r70", "seed": "0,1,2"}),
        ("fig1_clothing1m", "clothing1m", "resnet50", {"ratio": "r30,r50,r70", "seed": "0,1,2"}),
        (
            "table4_imagenet",
            "imagenet1k",
            "convnext_tiny",
            {"model": "convnext_tiny,convnext_base,deit_small,deit_base,swin_tiny,swin_base", "noise": "clean,asym0.2"},
        ),
        ("tableH_news", "news", "mlp3", {"noise": "clean,sym0.2,sym0.5,pairflip0.45"}),
    ],
)
def test_experiment_files_pin_the_papers_grid_and_recipe(compose_cfg, name, dataset, model, grid):
    cfg = compose_cfg([f"+experiment={name}", "pruner=infobatch_das"], hydra_config=True)
    assert (cfg.dataset.name, cfg.model.name) == (dataset, model)
    params = cfg.hydra.sweeper.params
    assert params.pruner == "infobatch,infobatch_das" and all(params[k] == v for k, v in grid.items())
    table_a = {"fig1_webvision": (0.75, 25, 0.02, 32, 100), "fig1_clothing1m": (0.75, 5, 0.002, 32, 10)}
    if name in table_a:
        assert (
            cfg.pruner.policy.prune_prob,
            cfg.pruner.scorer.window,
            cfg.optimizer.lr,
            cfg.batch_size,
            cfg.epochs,
        ) == table_a[name]
        assert cfg.scheduler.milestones == [0.5] and cfg.noise._target_.endswith("NoNoise")
    else:
        assert (cfg.pruner.policy.prune_prob, cfg.pruner.scorer.window) == (0.5, 25)
