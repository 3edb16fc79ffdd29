# SPDX-License-Identifier: Apache-2.0
"""Mean average precision (macro over classes) of multi-label classification as an `evaluate` metric module, loaded by
path: `evaluate.load("modeling_maxi/evaluation/metric_scripts/mean_average_precision")`."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score

_DESCRIPTION = """
Mean average precision (mAP) of multi-label classification, as reported on Charades: the average precision of every
class (`sklearn.metrics.average_precision_score`, i.e. the step-wise area under the precision-recall curve of ranking
all samples by that class's score), averaged over classes (macro). A class without any positive sample has no defined
average precision; by default such classes are left out of the mean (their number is reported), which is what the
Charades protocol does. With `ignore_classes_without_positives=False` they are kept and scored as scikit-learn scores
them (0, with a warning).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): Scores of shape (N, C), one row per sample.
    references (`list[list[int]]`): Multi-hot targets of shape (N, C) with values 0/1.
    ignore_classes_without_positives (`bool`, defaults to `True`): Leave classes with no positive sample out.
Returns:
    `dict`: `mean_average_precision` in [0, 1] and `num_classes_evaluated` (classes in the mean).
Examples:
    >>> metric = evaluate.load("modeling_maxi/evaluation/metric_scripts/mean_average_precision")
    >>> metric.compute(
    ...     predictions=[[0.9, 0.1, 0.3], [0.2, 0.8, 0.5], [0.6, 0.4, 0.1]],
    ...     references=[[0, 1, 0], [0, 1, 0], [1, 0, 0]],
    ... )  # class 2 has no positive: left out
    {'mean_average_precision': 0.6666666666666666, 'num_classes_evaluated': 2}
"""

_CITATION = """
@inproceedings{sigurdsson2016hollywood,
  title={Hollywood in Homes: Crowdsourcing Data Collection for Activity Understanding},
  author={Sigurdsson, Gunnar A. and Varol, G{\"u}l and Wang, Xiaolong and Farhadi, Ali and Laptev, Ivan and Gupta,
          Abhinav},
  booktitle={ECCV},
  year={2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanAveragePrecision(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.average_precision_score.html"
            ],
        )

    def _compute(self, predictions, references, ignore_classes_without_positives=True):
        if not isinstance(ignore_classes_without_positives, bool):
            raise ValueError(
                f"`ignore_classes_without_positives` must be a bool, got {ignore_classes_without_positives!r}."
            )
        scores = np.asarray(predictions, dtype=np.float64)
        targets = np.asarray(references, dtype=np.int64)
        if scores.ndim != 2 or scores.shape[0] == 0:
            raise ValueError(f"`predictions` must be a non-empty (N, C) score matrix, got shape {scores.shape}.")
        if targets.shape != scores.shape:
            raise ValueError(
                f"`references` must be multi-hot with the shape of `predictions` {scores.shape}, got {targets.shape}."
            )
        bad = np.setdiff1d(np.unique(targets), [0, 1])
        if bad.size:
            raise ValueError(f"`references` must hold only 0/1, got values {bad[:5].tolist()}.")
        keep = targets.sum(axis=0) > 0 if ignore_classes_without_positives else np.ones(scores.shape[1], dtype=bool)
        if not keep.any():
            raise ValueError("No class has a positive sample: mean average precision is undefined.")
        per_class = np.atleast_1d(average_precision_score(targets[:, keep], scores[:, keep], average=None))
        return {"mean_average_precision": float(per_class.mean()), "num_classes_evaluated": int(keep.sum())}
