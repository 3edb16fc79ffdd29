# SPDX-License-Identifier: Apache-2.0
"""The repository's `evaluate` metric modules (loaded by path) against scikit-learn and against hand computations."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, top_k_accuracy_score

from modeling_maxi.evaluation import compute_metrics, load_metric


@pytest.fixture(scope="module")
def top_k():
    return load_metric("top_k_accuracy")


@pytest.fixture(scope="module")
def mean_ap():
    return load_metric("mean_average_precision")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_accuracy_matches_sklearn_with_absent_classes(top_k, seed):
    rng = np.random.default_rng(seed)
    num_classes = 12
    scores = rng.normal(size=(57, num_classes))
    # references use only 7 of the 12 classes: the absent ones still compete for the top k
    labels = rng.choice([0, 2, 3, 5, 8, 9, 11], size=57)
    result = top_k.compute(predictions=scores, references=labels, k=[1, 3, 5])
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(num_classes))
        assert result[f"top{k}"] == pytest.approx(expected, abs=1e-12)
        by_hand = np.mean([label in np.argsort(-row)[:k] for row, label in zip(scores, labels)])
        assert result[f"top{k}"] == pytest.approx(by_hand, abs=1e-12)


def test_top_k_accuracy_two_classes_and_single_k(top_k):
    scores = np.array([[0.2, 0.9], [0.8, 0.1], [0.3, 0.4], [0.6, 0.5]])
    labels = np.array([1, 1, 1, 0])
    assert top_k.compute(predictions=scores, references=labels, k=1) == {"top1": pytest.approx(0.75)}


def test_top_k_accuracy_rejects_bad_input(top_k):
    with pytest.raises(ValueError, match=r"class ids in 0..2; got \[3\]"):
        top_k.compute(predictions=[[0.1, 0.2, 0.3]], references=[3], k=[1])
    with pytest.raises(ValueError, match="`k` must be a positive int"):
        top_k.compute(predictions=[[0.1, 0.2, 0.3]], references=[0], k=[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_mean_average_precision_matches_sklearn_and_skips_classes_without_positives(mean_ap, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(40, 9))
    targets = (rng.random((40, 9)) < 0.3).astype(int)
    targets[:, [2, 7]] = 0  # two classes without any positive
    result = mean_ap.compute(predictions=scores, references=targets)
    keep = targets.sum(0) > 0
    assert result["num_classes_evaluated"] == 7
    assert result["mean_average_precision"] == pytest.approx(
        average_precision_score(targets[:, keep], scores[:, keep], average="macro"), abs=1e-12
    )
    # independent of scikit-learn: AP = mean over positives of the precision at their rank
    by_hand = []
    for c in np.flatnonzero(keep):
        order = np.argsort(-scores[:, c])
        hits = targets[order, c]
        precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        by_hand.append(precision_at[hits == 1].mean())
    assert result["mean_average_precision"] == pytest.approx(np.mean(by_hand), abs=1e-12)

    with pytest.warns(UserWarning, match="No positive class"):
        kept_all = mean_ap.compute(predictions=scores, references=targets, ignore_classes_without_positives=False)
    assert kept_all["num_classes_evaluated"] == 9
    with pytest.warns(UserWarning, match="No positive class"):
        expected = average_precision_score(targets, scores, average="macro")
    assert kept_all["mean_average_precision"] == pytest.approx(expected, abs=1e-12)


def test_mean_average_precision_rejects_bad_input(mean_ap):
    with pytest.raises(ValueError, match=r"only 0/1, got values \[2\]"):
        mean_ap.compute(predictions=[[0.1, 0.2]], references=[[2, 0]])
    with pytest.raises(ValueError, match="No class has a positive sample"):
        mean_ap.compute(predictions=[[0.1, 0.2]], references=[[0, 0]])


def test_compute_metrics_reports_percent_and_drops_trivial_k():
    scores = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    result = compute_metrics(scores, [(0,), (1,), (1,)], multi_label=False, top_k=(1, 2, 5))
    assert result == {"top1": pytest.approx(100 / 3), "top2": pytest.approx(100.0)}  # top-5 of 3 classes is left out
    multi = compute_metrics(scores, [(0,), (2, 1), ()], multi_label=True)
    assert multi["num_classes_evaluated"] == 3
    assert multi["mAP"] == pytest.approx(100 * average_precision_score([[1, 0, 0], [0, 1, 1], [0, 0, 0]], scores))
    with pytest.raises(ValueError, match="Got 2 labels for 3 score rows"):
        compute_metrics(scores, [(0,), (1,)], multi_label=False)
    with pytest.raises(ValueError, match="exactly one class id"):
        compute_metrics(scores, [(0, 1), (1,), (2,)], multi_label=False)


def test_load_metric_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown metric 'f1'"):
        load_metric("f1")
    with pytest.raises(FileNotFoundError, match="MAXI_METRICS_DIR"):
        load_metric("top_k_accuracy", metrics_dir=tmp_path)
