# SPDX-License-Identifier: Apache-2.0
"""Filter stage: keep the fraction p of videos whose CLIP match is most confident (paper sec. 3.2, Table 4).

Counting rule (tested): with N videos and ratio p the filter keeps exactly `ceil(p * N)` videos, where `p * N` is
first rounded to 6 decimals so that float noise does not add a video (0.7 * 10 keeps 7, not 8). Any p > 0 therefore
keeps at least one video and p = 1 keeps all of them. Videos are ranked by their confidence score (highest first);
equal scores keep their dataset order. delta_p is the lowest kept score, i.e. the threshold of the paper.

Where p is applied: once, at training (`training/train.py --filter_ratio`, 0.9 by `similarity` in the paper's
YAML, `PAPER_TRAINING_FILTER`). A build publishes every readable video by default (`--filter-ratio 1.0`) with the
scores both rankings need, so any p of Table 4 can be trained from one published dataset. A dataset filtered at
build time anyway says so in its build record; training then counts p relative to the original collection
(`filter_after_build_filter`) or stops with a message, never filtering twice.

Two confidence scores (`FILTER_SCORES`):

- ``"similarity"`` (the paper's, the default): the cosine similarity of the video to its best-matched action,
  `match_score` (after a Gaussian refinement of the matches, `modeling_maxi.text_bags.refinement`, the log
  posterior probability of that action instead).
- ``"margin"``: how far the best match beats the runner-up, `top5_scores[0] - top5_scores[1]` (after a Gaussian
  refinement, the log-odds of the best action over the runner-up). A similarity is high for a video that resembles
  every action prompt (a scene the model likes) as much as for one it matches clearly; the margin compares the
  candidates of the same video, as the classic pseudo-labelling confidences (the softmax probability of the best
  class, or its margin) do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from datasets import Dataset

FILTER_SCORES = ("similarity", "margin")
#: The paper's filter (sec. 3.2, Table 4: p = 90% by CLIP similarity), applied once, at training.
PAPER_TRAINING_FILTER = {"ratio": 0.9, "score": "similarity"}


def filter_score_field(default: str = "similarity"):
    """The `filter_score` setting of the scripts' argument dataclasses (a `dataclasses.field` with CLI choices)."""
    return field(
        default=validate_filter_score(default),
        metadata={
            "help": "Confidence the text-bag filter ranks videos by: 'similarity' to the best-matched action (the "
            "paper's) or the 'margin' of the best match over the runner-up (see modeling_maxi/text_bags/filtering.py).",
            "choices": list(FILTER_SCORES),
        },
    )


@dataclass
class FilterResult:
    """Outcome of `filter_by_match_score`.

    Attributes:
        dataset: the kept rows, in their original order.
        ratio: the requested fraction p.
        delta_p: the lowest kept confidence score (None when nothing was there to filter).
        num_before: N, the number of rows given.
        num_kept: the number of rows kept, `ceil(p * N)`.
    """

    dataset: Dataset
    ratio: float
    delta_p: float | None
    num_before: int
    num_kept: int


def validate_filter_ratio(ratio: float) -> float:
    """Return `ratio` as a float or raise a `ValueError` naming it unless `0 < ratio <= 1`."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        raise ValueError(f"filter ratio must be a number in (0, 1], got {ratio!r}")
    if not 0 < ratio <= 1:
        raise ValueError(f"filter ratio must be in (0, 1], got {ratio!r}")
    return float(ratio)


def num_kept(num_videos: int, ratio: float) -> int:
    """The number of videos the filter keeps out of `num_videos`: `ceil(round(ratio * num_videos, 6))`."""
    ratio = validate_filter_ratio(ratio)
    if isinstance(num_videos, bool) or not isinstance(num_videos, int) or num_videos < 0:
        raise ValueError(f"num_videos must be a non-negative integer, got {num_videos!r}")
    return min(num_videos, math.ceil(round(ratio * num_videos, 6)))


def top_fraction_indices(scores: Sequence[float], ratio: float) -> tuple[list[int], float | None]:
    """Indices (ascending) of the `num_kept(len(scores), ratio)` highest scores, and the lowest kept score."""
    return top_count_indices(scores, num_kept(len(scores), ratio))


def top_count_indices(scores: Sequence[float], keep: int) -> tuple[list[int], float | None]:
    """Indices (ascending) of the `keep` highest scores (ties in order), and the lowest kept score."""
    keep = min(keep, len(scores))
    if keep == 0:
        return [], None
    ranked = sorted(range(len(scores)), key=lambda index: (-float(scores[index]), index))
    kept = ranked[:keep]
    delta_p = float(scores[kept[-1]])
    return sorted(kept), delta_p


def filter_by_match_score(dataset: Dataset, ratio: float, score_column: str = "match_score") -> FilterResult:
    """Keep the top fraction `ratio` of `dataset` by `score_column` (see the module docstring for the exact count)."""
    ratio = validate_filter_ratio(ratio)
    if score_column not in dataset.column_names:
        raise ValueError(f"score_column {score_column!r} is not a column of the dataset ({dataset.column_names})")
    return _keep_top(dataset, list(dataset[score_column]), ratio)


def _keep_top(dataset: Dataset, scores: Sequence[float], ratio: float, num_before: int | None = None) -> FilterResult:
    """The top `num_kept(num_before, ratio)` rows by `scores`; `num_before` defaults to the dataset's length (it is
    the original collection's size when the dataset is itself the top of a larger one)."""
    num_before = len(dataset) if num_before is None else num_before
    indices, delta_p = top_count_indices(scores, num_kept(num_before, ratio))
    kept = dataset if len(indices) == len(dataset) else dataset.select(indices)
    return FilterResult(dataset=kept, ratio=ratio, delta_p=delta_p, num_before=num_before, num_kept=len(indices))


def validate_filter_score(score: str) -> str:
    """Return `score` or raise a `ValueError` naming it unless it is one of `FILTER_SCORES`."""
    if score not in FILTER_SCORES:
        raise ValueError(f"filter score must be one of {FILTER_SCORES}, got {score!r}")
    return score


def match_margins(top_scores: Sequence[Sequence[float]]) -> list[float]:
    """Per video, its best similarity minus its second best (`top_scores` rows are best first, as `top5_scores`).

    A video with fewer than two scores (unreadable, or a one-action dictionary) gets `-inf`: it ranks last.
    """
    margins = []
    for index, row in enumerate(top_scores):
        row = list(row or ())
        if len(row) >= 2 and row[0] < row[1]:
            raise ValueError(f"top scores of row {index} are not sorted best first: {row!r}")
        margins.append(float(row[0]) - float(row[1]) if len(row) >= 2 else -math.inf)
    return margins


def confidence_scores(dataset: Dataset, score: str = "similarity") -> list[float]:
    """Per row, the confidence `score` (one of `FILTER_SCORES`) the filter ranks by.

    ``"similarity"`` is the `match_score` column, ``"margin"`` the `match_margins` of the `top5_scores` column.
    """
    column = "match_score" if validate_filter_score(score) == "similarity" else "top5_scores"
    if column not in dataset.column_names:
        raise ValueError(f"filter score {score!r} needs a {column!r} column; the dataset has {dataset.column_names}")
    return list(dataset[column]) if score == "similarity" else match_margins(dataset[column])


def filter_by_confidence(dataset: Dataset, ratio: float, score: str = "similarity") -> FilterResult:
    """Keep the top fraction `ratio` of `dataset` by the confidence `score` (see `confidence_scores`)."""
    ratio = validate_filter_ratio(ratio)
    return _keep_top(dataset, confidence_scores(dataset, score), ratio)


@dataclass(frozen=True)
class BuildFilter:
    """The filter a published dataset already went through at build time (from its build record).

    Attributes:
        ratio: the build-time p (< 1).
        score: the confidence it ranked by.
        num_before: N, the readable videos of the original collection.
        num_published: the videos published, `num_kept(N, ratio)`.
    """

    ratio: float
    score: str
    num_before: int
    num_published: int


def build_filter_of(record: dict | None) -> BuildFilter | None:
    """The build-time filter a build record (`text_bag_build.json`) reports, or None when it published every video."""
    if not record:
        return None
    parameters, stats = record.get("parameters", {}), record.get("stats", {})
    ratio = parameters.get("filter_ratio", 1.0)
    if ratio is None or ratio >= 1.0 or "videos_before_filter" not in stats:
        return None
    return BuildFilter(
        ratio=validate_filter_ratio(ratio),
        score=validate_filter_score(parameters.get("filter_score", "similarity")),
        num_before=int(stats["videos_before_filter"]),
        num_published=int(stats.get("videos_published", num_kept(int(stats["videos_before_filter"]), ratio))),
    )


def filter_after_build_filter(
    dataset: Dataset, ratio: float, score: str, build_filter: BuildFilter | None
) -> FilterResult:
    """Keep the top `ratio` of the original collection, once, however much of it the build already dropped.

    Without a build filter this is `filter_by_confidence`. After a build-time filter (p_b by score s_b, N videos) the
    published rows are the top `num_kept(N, p_b)` by s_b, so a training p <= p_b by s_b composes exactly: it keeps
    `num_kept(N, p)` of them (p = p_b keeps them all). Any other filter would need videos the build dropped, and is
    refused with a message saying how to get them.
    """
    ratio, score = validate_filter_ratio(ratio), validate_filter_score(score)
    if build_filter is None:
        return filter_by_confidence(dataset, ratio, score)
    if score != build_filter.score or ratio > build_filter.ratio:
        raise ValueError(
            f"filter ratio {ratio:g} by {score!r} cannot be applied: this dataset was already filtered at build time "
            f"(p = {build_filter.ratio:g} by {build_filter.score!r}, {build_filter.num_published} of "
            f"{build_filter.num_before} videos published). Train with a filter ratio <= {build_filter.ratio:g} and "
            f"filter score {build_filter.score!r} (counted relative to the {build_filter.num_before} videos), or "
            "rebuild with --filter-ratio 1.0 (the default) to publish every video."
        )
    return _keep_top(dataset, confidence_scores(dataset, score), ratio, num_before=build_filter.num_before)
