# SPDX-License-Identifier: Apache-2.0
"""Top-k accuracy as an `evaluate` metric module, loaded by path: `evaluate.load(".../top_k_accuracy")`."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import top_k_accuracy_score

_DESCRIPTION = """
Top-k accuracy of single-label classification: the fraction of samples whose true class is among the k classes with
the highest scores. Computed with `sklearn.metrics.top_k_accuracy_score` over the full class set `0..C-1` (C = number
of score columns), so classes absent from the references still compete for the top k. Ties are broken as scikit-learn
breaks them. When k >= C every sample counts as correct (scikit-learn warns).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): Scores (logits or probabilities) of shape (N, C), one row per sample.
    references (`list[int]`): True class ids in 0..C-1, one per sample.
    k (`int` or `list[int]`, defaults to `[1, 5]`): The k values to report.
Returns:
    `dict`: `top{k}` -> accuracy in [0, 1] for every requested k.
Examples:
    >>> metric = evaluate.load("modeling_maxi/evaluation/metric_scripts/top_k_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], references=[1, 2], k=[1, 2])
    {'top1': 0.5, 'top2': 1.0}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


def _check_k(k) -> list[int]:
    values = [k] if isinstance(k, int | np.integer) and not isinstance(k, bool) else list(k)
    if not values or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in values):
        raise ValueError(f"`k` must be a positive int or a non-empty list of positive ints, got {k!r}.")
    return [int(v) for v in values]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, k=(1, 5)):
        ks = _check_k(k)
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.int64)
        if scores.ndim != 2 or scores.shape[0] == 0:
            raise ValueError(f"`predictions` must be a non-empty (N, C) score matrix, got shape {scores.shape}.")
        num_classes = scores.shape[1]
        if num_classes < 2:
            raise ValueError(f"Top-k accuracy needs at least 2 classes (score columns), got {num_classes}.")
        out_of_range = labels[(labels < 0) | (labels >= num_classes)]
        if out_of_range.size:
            raise ValueError(
                f"`references` must be class ids in 0..{num_classes - 1}; got {sorted(set(out_of_range.tolist()))[:5]}."
            )
        if num_classes == 2:
            # scikit-learn reads a binary problem from one score column: the positive class's margin.
            scores = scores[:, 1] - scores[:, 0]
        class_ids = np.arange(num_classes)
        return {f"top{value}": float(top_k_accuracy_score(labels, scores, k=value, labels=class_ids)) for value in ks}
