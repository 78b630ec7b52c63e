"""Example data for the demo: real medical tables shipped with scikit-learn, split by node.

Nothing is downloaded: ``load_breast_cancer`` and ``load_digits`` read files inside the
scikit-learn package.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SplitTable:
    node_files: list[Path]
    test_x: np.ndarray
    test_y: np.ndarray
    feature_names: list[str]
    classes: list[int]


def write_csv(path: Path, header: list[str], x: np.ndarray, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "target"])
        for row, target in zip(x, y, strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), int(target)])


def breast_cancer_split(
    out_dir: Path, n_nodes: int, *, test_ratio: float = 0.2, seed: int = 0
) -> SplitTable:
    """Wisconsin breast-cancer table: a held-out test split, the rest in unequal node shares."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.target))
    x, y = data.data[order], data.target[order]
    n_test = round(len(y) * test_ratio)
    test_x, test_y = x[:n_test], y[:n_test]
    train_x, train_y = x[n_test:], y[n_test:]
    # Unequal shares (hospitals differ in size), so sample weighting matters.
    weights = np.arange(1, n_nodes + 1, dtype=float) + n_nodes
    bounds = np.concatenate([[0], np.cumsum(weights / weights.sum() * len(train_y)).astype(int)])
    bounds[-1] = len(train_y)
    header = [name.replace(" ", "_") for name in data.feature_names]
    files = []
    for index in range(n_nodes):
        lo, hi = bounds[index], bounds[index + 1]
        path = out_dir / f"node{index + 1}" / "breast_cancer.csv"
        write_csv(path, header, train_x[lo:hi], train_y[lo:hi])
        files.append(path)
    return SplitTable(files, test_x, test_y, header, [0, 1])


def digits_split(
    out_dir: Path, node_ids: list[str], *, held_out: int = 360, seed: int = 0
) -> tuple[dict[str, Path], np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: ``held_out`` shuffled images kept back (as the
    (N, 1, 8, 8) float32 batch in [0, 1] that ``TorchCNNPlan`` evaluates, and their
    labels), the rest in equal shares, one CSV per node at ``out_dir/<node>/digits.csv``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    pixels, labels = digits.data[order], digits.target[order]
    files = {}
    shares = np.array_split(np.arange(held_out, len(labels)), len(node_ids))
    for node_id, rows in zip(node_ids, shares, strict=True):
        files[node_id] = out_dir / node_id / "digits.csv"
        write_csv(files[node_id], [f"pixel{i}" for i in range(64)], pixels[rows], labels[rows])
    held_x = (pixels[:held_out] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    return files, held_x, labels[:held_out]
