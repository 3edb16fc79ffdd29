# SPDX-License-Identifier: Apache-2.0
"""Metrics of the protocol, computed by the `evaluate` metric modules shipped with the package
(`metric_scripts/top_k_accuracy`, `metric_scripts/mean_average_precision`, scikit-learn inside) and loaded by path:
`evaluate` has neither metric built in and the Hub may be unreachable.
"""

import os
from functools import cache
from pathlib import Path

import numpy as np

METRICS_DIR_ENV = "MAXI_METRICS_DIR"
TOP_K_ACCURACY = "top_k_accuracy"
MEAN_AVERAGE_PRECISION = "mean_average_precision"


def default_metrics_dir() -> Path:
    """`$MAXI_METRICS_DIR` if set, else the `metric_scripts` folder shipped inside this package."""
    if os.environ.get(METRICS_DIR_ENV):
        return Path(os.environ[METRICS_DIR_ENV])
    return Path(__file__).resolve().parent / "metric_scripts"


@cache
def _load(script_dir: str):
    import evaluate

    return evaluate.load(script_dir)


def load_metric(name: str, metrics_dir: str | Path | None = None):
    """
    Loads one of the repository's metric modules by path (cached per process).

    Args:
        name: `"top_k_accuracy"` or `"mean_average_precision"`.
        metrics_dir: The folder holding `<name>/<name>.py`; by default [`default_metrics_dir`].

    Returns:
        The `evaluate.EvaluationModule`.
    """
    if name not in (TOP_K_ACCURACY, MEAN_AVERAGE_PRECISION):
        raise ValueError(f"Unknown metric {name!r}; expected {TOP_K_ACCURACY!r} or {MEAN_AVERAGE_PRECISION!r}.")
    directory = Path(metrics_dir) if metrics_dir is not None else default_metrics_dir()
    script = directory / name / f"{name}.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"Metric script {str(script)!r} not found. Reinstall the package, pass `metrics_dir`, or "
            f"set ${METRICS_DIR_ENV} to the folder holding {name}/{name}.py."
        )
    return _load(str(script.parent))


def compute_metrics(
    scores: np.ndarray,
    labels: list[tuple[int, ...]] | np.ndarray,
    multi_label: bool,
    top_k: tuple[int, ...] = (1, 5),
    metrics_dir: str | Path | None = None,
) -> dict[str, float]:
    """
    Scores predictions the protocol's way: top-k accuracy (percent) for single-label data, mAP (percent, macro over
    classes with at least one positive) for multi-label data.

    Args:
        scores: `(N, C)` class scores.
        labels: Single-label: `N` class ids (or 1-tuples). Multi-label: `N` tuples of class ids, or an `(N, C)`
            multi-hot array.
        multi_label: Which of the two.
        top_k: The k values of top-k accuracy.

    Returns:
        Single-label: `{"top1": ..., "top5": ...}` (a k >= C is left out); multi-label: `{"mAP": ...,
        "num_classes_evaluated": ...}`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"`scores` must be a non-empty (N, C) array, got shape {scores.shape}.")
    if len(labels) != scores.shape[0]:
        raise ValueError(f"Got {len(labels)} labels for {scores.shape[0]} score rows.")
    if multi_label:
        targets = multi_hot(labels, scores.shape[1])
        result = load_metric(MEAN_AVERAGE_PRECISION, metrics_dir).compute(predictions=scores, references=targets)
        return {
            "mAP": 100.0 * result["mean_average_precision"],
            "num_classes_evaluated": result["num_classes_evaluated"],
        }
    if not top_k or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in top_k):
        raise ValueError(f"`top_k` must be a non-empty tuple of positive ints, got {top_k!r}.")
    # Top-k with k >= C is trivially 100%: such k are left out (e.g. top-5 of a 3-class dataset).
    ks = [k for k in top_k if k == 1 or k < scores.shape[1]]
    class_ids = np.asarray([_single(label) for label in labels], dtype=np.int64)
    result = load_metric(TOP_K_ACCURACY, metrics_dir).compute(predictions=scores, references=class_ids, k=ks)
    return {name: 100.0 * value for name, value in result.items()}


def multi_hot(labels, num_classes: int) -> np.ndarray:
    """`(N, C)` int64 multi-hot matrix from `N` tuples of class ids (an `(N, C)` array is checked and returned)."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.shape[1] != num_classes:
            raise ValueError(f"Multi-hot labels have {labels.shape[1]} columns, expected {num_classes}.")
        return labels.astype(np.int64)
    targets = np.zeros((len(labels), num_classes), dtype=np.int64)
    for row, ids in enumerate(labels):
        ids = list(ids)
        if any(not 0 <= i < num_classes for i in ids):
            raise ValueError(f"Row {row} has class ids {ids} outside 0..{num_classes - 1}.")
        targets[row, ids] = 1
    return targets


def _single(label) -> int:
    if isinstance(label, tuple | list):
        if len(label) != 1:
            raise ValueError(f"Single-label scoring needs exactly one class id per video, got {label!r}.")
        label = label[0]
    return int(label)


__all__ = ["compute_metrics", "default_metrics_dir", "load_metric", "multi_hot"]
