"""NEWS text benchmark (20 Newsgroups with GloVe word vectors; Kiryo et al. 2017) as used by Co-teaching+
(Yu et al. 2019) and the paper's Table H: read locally, turned into fixed-length float features.

Layout under ``root``, first match wins:
- ``news.pkl``: the Co-teaching+ file (github.com/xingruiyu/coteaching_plus, data/download_news_data.md), a
  pickled tuple ``(weights_matrix [V, 300] float, data [n, 1000] int word ids, labels [n] int in 0..19)``.
  It is read with a numpy-only unpickler: anything but arrays and builtin containers is refused.
- ``weights_matrix.npy``, ``data.npy``, ``labels.npy``: the same three arrays as plain .npy files.

As in Co-teaching+: the 20 newsgroups are regrouped into 7 topics, the first 70% of documents train and the
rest test. Their ``NewsNet`` embeds the words with the frozen (detached) GloVe matrix, flattens the
[1000, 300] sequence and average-pools it to 4800 values before three trainable layers; because that front
end has no trainable weights, it is computed once here, so the model is the 3-layer MLP ``mlp3``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import DataError
from alignprune_exp.core.safe_load import safe_pickle_load
from alignprune_exp.data.features import FeatureSpec

# Co-teaching+'s regroup_dataset: alt | comp.* | misc.forsale | rec.* | sci.* | soc.religion | talk.*
TOPIC_OF_GROUP = np.array([0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 6, 6, 6, 6], dtype=np.int64)
NPY_FILES = ("weights_matrix.npy", "data.npy", "labels.npy")
LAYOUT = (
    f"NEWS needs news.pkl (Co-teaching+'s file: (weights_matrix, data, labels)) or {', '.join(NPY_FILES)} "
    "in dataset.loader.root (news.pkl: see github.com/xingruiyu/coteaching_plus, data/download_news_data.md; "
    "not downloaded by download=true: its only source is a Google Drive share without a checksum)"
)


def load_news(
    root: str, train_fraction: float = 0.7, pooled_dim: int = 4800, regroup: bool = True, batch_size: int = 128
) -> FeatureSpec:
    """Read the NEWS arrays and pool each document into ``pooled_dim`` features (float32).

    Args:
        root: folder holding ``news.pkl`` or the three .npy files.
        train_fraction: leading fraction of documents used for training (Co-teaching+: 0.7).
        pooled_dim: length of the pooled feature vector (Co-teaching+: 16 x 300).
        regroup: map the 20 newsgroups to Co-teaching+'s 7 topics (False keeps 20 classes).
        batch_size: documents pooled at a time (memory: batch_size x words x dims floats).

    Raises:
        DataError: no file found, or arrays of the wrong kind or shape.
    """
    folder = Path(root).expanduser()
    weights, tokens, labels, where = _read_arrays(folder)
    if labels.min() < 0 or labels.max() >= len(TOPIC_OF_GROUP):
        raise DataError(f"{where} has labels in [{labels.min()}, {labels.max()}], expected the 20 newsgroups 0..19")
    if tokens.min() < 0 or tokens.max() >= len(weights):
        raise DataError(f"{where} has word ids in [{tokens.min()}, {tokens.max()}] but {len(weights)} word vectors")
    features = pool_documents(
        torch.from_numpy(weights.astype(np.float32)),
        torch.from_numpy(tokens.astype(np.int64)),
        int(pooled_dim),
        int(batch_size),
    )
    y = TOPIC_OF_GROUP[labels] if regroup else labels.astype(np.int64)
    n_train = int(len(y) * float(train_fraction))
    return FeatureSpec(
        name="news",
        num_classes=7 if regroup else 20,
        train_x=features[:n_train],
        train_labels=y[:n_train],
        test_x=features[n_train:],
        test_labels=y[n_train:],
        source=f"{where} ({len(y)} documents, {tokens.shape[1]} words x {weights.shape[1]} dims "
        f"pooled to {pooled_dim})",
        test_name=f"NEWS last {len(y) - n_train} documents",
    )


def pool_documents(weights: torch.Tensor, tokens: torch.Tensor, pooled_dim: int, batch_size: int) -> torch.Tensor:
    """Embed each document's words and average-pool the flattened sequence to ``pooled_dim`` values."""
    out = []
    for i in range(0, len(tokens), batch_size):
        emb = weights[tokens[i : i + batch_size]]  # [B, words, dims]
        out.append(F.adaptive_avg_pool1d(emb.reshape(len(emb), 1, -1), pooled_dim).squeeze(1))
    return torch.cat(out) if out else torch.zeros(0, pooled_dim)


def _read_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    pkl = folder / "news.pkl"
    if pkl.is_file():
        content = safe_pickle_load(pkl)
        if not (isinstance(content, (tuple, list)) and len(content) == 3):
            raise DataError(
                f"{pkl} holds a {type(content).__name__}, expected Co-teaching+'s tuple "
                "(weights_matrix, data, labels); get the original file"
            )
        arrays, where = [np.asarray(a) for a in content], str(pkl)
    elif (folder / NPY_FILES[0]).is_file():
        arrays, where = [_npy(folder / name) for name in NPY_FILES], f"{folder}/{{{','.join(NPY_FILES)}}}"
    else:
        raise DataError(f"expected NEWS file {pkl} (or {folder / NPY_FILES[0]}) does not exist; {LAYOUT}")
    weights, tokens, labels = arrays
    if weights.ndim != 2 or not np.issubdtype(weights.dtype, np.floating):
        raise DataError(f"{where}: weights_matrix is {weights.dtype} {weights.shape}, expected float [vocab, dims]")
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise DataError(f"{where}: data is {tokens.dtype} {tokens.shape}, expected integer word ids [docs, words]")
    labels = labels.reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(tokens) or not len(labels):
        raise DataError(f"{where}: labels are {labels.dtype} {labels.shape} for {len(tokens)} documents")
    return weights, tokens, labels, where


def _npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"expected NEWS file {path} does not exist; {LAYOUT}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        raise DataError(f"refusing to load {path}: not a plain numeric .npy array; save it with np.save") from None
    except (OSError, EOFError) as exc:  # an empty or truncated file raises EOFError
        raise DataError(
            f"cannot read {path}: {exc or type(exc).__name__} (empty or truncated?); save it with np.save"
        ) from None
