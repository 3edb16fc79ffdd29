# SPDX-License-Identifier: Apache-2.0
"""Optional refine step after matching: transductive refinement of the dictionary's classes (not in the paper).

MAXI matches every video once, to the prompt-ensembled text embeddings of the dictionary (paper eq. 1). This module
can then fit the classes to the unlabeled videos themselves, without labels, starting from those matches, and match
every video again. Two methods:

- ``"gaussian"`` (the default): a Gaussian mixture with one covariance shared by all classes (linear discriminant
  analysis), fitted by expectation-maximisation. It starts from the text matches (each video assigned to its best
  class); each step re-estimates the class means, the class priors and the shared within-class covariance (shrunk
  towards a multiple of the identity) from the current assignments, then assigns every video softly by its posterior.
  The shared covariance learns which directions of the embedding vary inside a class (for example the objects or the
  scene that every action is shown with) and discounts them, which is what a nearest-mean rule cannot do. This is the
  Gaussian-discriminant view of CLIP's zero-shot classifier used by transductive CLIP methods.
- ``"kmeans"``: each step assigns every video to its most similar class and sets each class embedding to the
  L2-normalised mean of its videos (k-means on the unit sphere, started from the text embeddings; the prototype
  rectification of transductive zero-shot CLIP methods). A class no video is assigned to keeps its embedding.

Zero steps is the paper's matching. After refinement `matched_label`, `matched_text`, `match_score` and the top-k
columns are rewritten, so the filter and the bags downstream use the refined matches. With ``"kmeans"`` the scores stay
cosine similarities, to the refined class embeddings; with ``"gaussian"`` they are the classes' log posterior
probabilities (<= 0), so that the margin of the filter is the log-odds of the best class over the runner-up. Only the
pseudo-labels change: the model, the dictionary and the prompts are untouched.

Either method can only regroup the videos along structure the base model's video embeddings have. When they group
by action and only the text side is off, refinement pulls each class onto the group of its action; the names follow
the text matches, so a class whose text embedding points at another action's group stays swapped.
`toy_world/benchmarks/toy_refined_matching.py` measures both methods on the toy world.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ..scoring import video_text_similarity
from .matching import EMBEDDING_COLUMN, rank_matches

logger = logging.getLogger(__name__)

REFINEMENT_METHODS: tuple[str, ...] = ("gaussian", "kmeans")
DEFAULT_REFINEMENT_METHOD = "gaussian"
#: What the rewritten `match_score` / `top5_scores` hold after each method's refinement (for dataset cards).
REFINED_SCORE_DESCRIPTIONS: dict[str, str] = {
    "gaussian": "the log posterior probabilities of one Gaussian per action with a shared covariance",
    "kmeans": "cosine similarities to the refined class embeddings",
}
DEFAULT_COVARIANCE_SHRINKAGE = 0.1
_ROWS_PER_CHUNK = 65536  # videos per float64 block in the Gaussian steps (bounds the memory at K400 scale)


def validate_refinement_steps(steps: int) -> int:
    """Return `steps` or raise a `ValueError` naming it unless it is an integer >= 0."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"match refinement steps must be an integer >= 0, got {steps!r}")
    return steps


def validate_refinement_method(method: str) -> str:
    """Return `method` or raise a `ValueError` naming it unless it is one of `REFINEMENT_METHODS`."""
    if method not in REFINEMENT_METHODS:
        raise ValueError(f"match refinement method must be one of {REFINEMENT_METHODS}, got {method!r}")
    return method


def refinement_method_field(default: str = DEFAULT_REFINEMENT_METHOD):
    """The `match_refinement_method` setting of the scripts' argument dataclasses (a `dataclasses.field` with CLI
    choices)."""
    return field(
        default=validate_refinement_method(default),
        metadata={
            "help": "How the refinement steps refit the classes: 'gaussian' (one Gaussian per class with a shared "
            "covariance, fitted by EM) or 'kmeans' (each class embedding moved to the mean of its videos); see "
            "modeling_maxi/text_bags/refinement.py.",
            "choices": list(REFINEMENT_METHODS),
        },
    )


def validate_covariance_shrinkage(shrinkage: float) -> float:
    """Return `shrinkage` or raise a `ValueError` naming it unless it is a number in (0, 1]."""
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not 0.0 < shrinkage <= 1.0:
        raise ValueError(f"covariance shrinkage must be a number in (0, 1], got {shrinkage!r}")
    return float(shrinkage)


def _check_shapes(video_embeds: torch.Tensor, class_embeds: torch.Tensor) -> None:
    if video_embeds.ndim != 2 or class_embeds.ndim != 2 or video_embeds.shape[1] != class_embeds.shape[1]:
        raise ValueError(
            f"video_embeds (num_videos, dim) and class_embeds (num_classes, dim) must share dim, got shapes "
            f"{tuple(video_embeds.shape)} and {tuple(class_embeds.shape)}"
        )


def refine_class_embeddings(video_embeds: torch.Tensor, class_embeds: torch.Tensor, steps: int) -> torch.Tensor:
    """Refine the class embeddings transductively (k-means started from the text embeddings).

    Args:
        video_embeds (`torch.Tensor` of shape `(num_videos, dim)`): L2-normalised video embeddings.
        class_embeds (`torch.Tensor` of shape `(num_classes, dim)`): L2-normalised class (text) embeddings.
        steps (`int`): number of assign-then-average steps; 0 returns a copy of `class_embeds`.

    Returns:
        `torch.Tensor` of shape `(num_classes, dim)`, float32, L2-normalised.
    """
    steps = validate_refinement_steps(steps)
    _check_shapes(video_embeds, class_embeds)
    videos = video_embeds.float()
    refined = class_embeds.float().clone()
    for _ in range(steps):
        assigned = (videos @ refined.T).argmax(dim=1)
        sums = torch.zeros_like(refined).index_add_(0, assigned, videos)
        counts = torch.bincount(assigned, minlength=refined.shape[0])
        populated = counts > 0
        refined[populated] = torch.nn.functional.normalize(sums[populated], dim=-1)
    return refined


@dataclass
class SharedCovarianceClasses:
    """Classes as Gaussians over the video embeddings that share one covariance (see `fit_shared_covariance_classes`).

    Attributes:
        means (`torch.Tensor` of shape `(num_classes, dim)`, float64): class means.
        precision (`torch.Tensor` of shape `(dim, dim)`, float64): inverse of the shared (shrunk) covariance.
        log_priors (`torch.Tensor` of shape `(num_classes,)`, float64): log class priors.
    """

    means: torch.Tensor
    precision: torch.Tensor
    log_priors: torch.Tensor

    def log_posteriors(self, video_embeds: torch.Tensor) -> torch.Tensor:
        """Log posterior probability of every class for every video.

        Args:
            video_embeds (`torch.Tensor` of shape `(num_videos, dim)`): video embeddings.

        Returns:
            `torch.Tensor` of shape `(num_videos, num_classes)`, float64; each row's exponentials sum to 1.
        """
        if video_embeds.ndim != 2 or video_embeds.shape[1] != self.means.shape[1]:
            raise ValueError(
                f"video_embeds must have shape (num_videos, {self.means.shape[1]}), got {tuple(video_embeds.shape)}"
            )
        weights = self.means @ self.precision  # (num_classes, dim): the linear discriminant of each class
        offsets = -0.5 * (weights * self.means).sum(dim=1) + self.log_priors
        rows = []
        for start in range(0, video_embeds.shape[0], _ROWS_PER_CHUNK):
            chunk = video_embeds[start : start + _ROWS_PER_CHUNK].double()
            rows.append(torch.log_softmax(chunk @ weights.T + offsets, dim=1))
        if not rows:
            return torch.empty(0, self.means.shape[0], dtype=torch.float64, device=self.means.device)
        return torch.cat(rows)


def _fit_shared_covariance(
    videos: torch.Tensor, responsibilities: torch.Tensor, previous_means: torch.Tensor, shrinkage: float
) -> SharedCovarianceClasses:
    """One maximisation step: class means, priors and the shrunk pooled within-class covariance."""
    num_videos, dim = videos.shape
    counts = torch.zeros(responsibilities.shape[1], dtype=torch.float64, device=videos.device)
    sums = torch.zeros_like(previous_means)
    scatter = torch.zeros(dim, dim, dtype=torch.float64, device=videos.device)
    for start in range(0, num_videos, _ROWS_PER_CHUNK):
        chunk = videos[start : start + _ROWS_PER_CHUNK].double()
        weights = responsibilities[start : start + _ROWS_PER_CHUNK]
        counts += weights.sum(dim=0)
        sums += weights.T @ chunk
        scatter += chunk.T @ chunk
    populated = counts > 1e-6  # a class that holds (almost) no video keeps its previous mean
    means = previous_means.clone()
    means[populated] = sums[populated] / counts[populated, None]
    covariance = (scatter - (means.T * counts) @ means) / num_videos
    identity = torch.eye(dim, dtype=torch.float64, device=videos.device)
    covariance = (1.0 - shrinkage) * covariance + shrinkage * covariance.trace() / dim * identity
    log_priors = torch.log((counts / counts.sum()).clamp_min(1e-12))
    return SharedCovarianceClasses(means=means, precision=torch.linalg.inv(covariance), log_priors=log_priors)


def fit_shared_covariance_classes(
    video_embeds: torch.Tensor,
    class_embeds: torch.Tensor,
    steps: int,
    shrinkage: float = DEFAULT_COVARIANCE_SHRINKAGE,
) -> SharedCovarianceClasses:
    """Fit one Gaussian per class, with a covariance shared by all classes, to unlabeled videos (EM).

    The first maximisation step uses the text matches (each video assigned to its most similar class embedding);
    every later one uses the posteriors of the previous fit. The shared covariance is the pooled within-class
    covariance shrunk towards `trace / dim` times the identity, which keeps it invertible when `dim` approaches the
    number of videos.

    Args:
        video_embeds (`torch.Tensor` of shape `(num_videos, dim)`): L2-normalised video embeddings.
        class_embeds (`torch.Tensor` of shape `(num_classes, dim)`): L2-normalised class (text) embeddings.
        steps (`int`): maximisation steps, at least 1.
        shrinkage (`float`, in (0, 1]): weight of the identity in the shared covariance.

    Returns:
        `SharedCovarianceClasses`; a class whose share of the videos falls below 1e-6 keeps its previous mean (its
        text embedding if it never held any) and gets a negligible prior.
    """
    steps = validate_refinement_steps(steps)
    if steps < 1:
        raise ValueError(f"the Gaussian refinement needs at least 1 step, got {steps!r}")
    shrinkage = validate_covariance_shrinkage(shrinkage)
    _check_shapes(video_embeds, class_embeds)
    if video_embeds.shape[0] == 0:
        raise ValueError("the Gaussian refinement needs at least one video, got an empty video_embeds")
    videos = video_embeds.float()
    means = class_embeds.to(device=videos.device, dtype=torch.float64)
    assigned = (videos @ means.float().T).argmax(dim=1)
    responsibilities = torch.nn.functional.one_hot(assigned, class_embeds.shape[0]).double()
    for step in range(steps):
        classes = _fit_shared_covariance(videos, responsibilities, means, shrinkage)
        means = classes.means
        if step + 1 < steps:
            responsibilities = classes.log_posteriors(videos).exp()
    return classes


def refined_match_scores(
    video_embeds: torch.Tensor,
    class_embeds: torch.Tensor,
    steps: int,
    method: str = DEFAULT_REFINEMENT_METHOD,
    shrinkage: float = DEFAULT_COVARIANCE_SHRINKAGE,
) -> torch.Tensor:
    """Scores of every video for every class after refinement, higher is better.

    Args:
        video_embeds (`torch.Tensor` of shape `(num_videos, dim)`): L2-normalised video embeddings.
        class_embeds (`torch.Tensor` of shape `(num_classes, dim)`): L2-normalised class (text) embeddings.
        steps (`int`): refinement steps; 0 gives the paper's cosine similarities to `class_embeds`.
        method (`str`): ``"gaussian"`` (log posteriors) or ``"kmeans"`` (cosine similarities to the refined
            class embeddings); see the module docstring.
        shrinkage (`float`): covariance shrinkage of the ``"gaussian"`` method.

    Returns:
        `torch.Tensor` of shape `(num_videos, num_classes)`.
    """
    steps = validate_refinement_steps(steps)
    method = validate_refinement_method(method)
    _check_shapes(video_embeds, class_embeds)
    if steps == 0 or method == "kmeans":
        return video_text_similarity(video_embeds.float(), refine_class_embeddings(video_embeds, class_embeds, steps))
    return fit_shared_covariance_classes(video_embeds, class_embeds, steps, shrinkage).log_posteriors(video_embeds)


def rematch_with_refined_classes(
    matched: Dataset,
    class_embeds: torch.Tensor,
    class_names: Sequence[str],
    steps: int,
    method: str = DEFAULT_REFINEMENT_METHOD,
    shrinkage: float = DEFAULT_COVARIANCE_SHRINKAGE,
) -> tuple[Dataset, dict[str, Any]]:
    """Match the videos of a match-stage dataset again, to class embeddings refined over its readable videos.

    Args:
        matched (`datasets.Dataset`): output of the match stage with its `video_embedding` column (see
            `match_videos_batch(return_embeddings=True)`); rows with a `decode_error` keep their empty match.
        class_embeds (`torch.Tensor` of shape `(num_classes, dim)`): the dictionary's text embeddings.
        class_names (`list[str]`): the dictionary, in the order of `class_embeds`.
        steps (`int`): refinement steps (see `refined_match_scores`).
        method (`str`): ``"gaussian"`` or ``"kmeans"`` (see the module docstring).
        shrinkage (`float`): covariance shrinkage of the ``"gaussian"`` method.

    Returns:
        The dataset with the match columns rewritten and without `video_embedding`, and a summary
        (`method`, `steps`, `videos`, `changed_matches`: how many readable videos changed class).
    """
    steps = validate_refinement_steps(steps)
    method = validate_refinement_method(method)
    shrinkage = validate_covariance_shrinkage(shrinkage)
    if EMBEDDING_COLUMN not in matched.column_names:
        raise ValueError(
            f"refinement needs the {EMBEDDING_COLUMN!r} column of the match stage; the dataset has "
            f"{matched.column_names}"
        )
    if len(class_names) != class_embeds.shape[0]:
        raise ValueError(f"{len(class_names)} class names for {class_embeds.shape[0]} class embeddings")
    errors = matched["decode_error"]
    readable = [index for index, error in enumerate(errors) if not error]
    top_k = max((len(scores) for scores in matched["top5_scores"]), default=1) or 1
    rows: dict[int, dict[str, Any]] = {}
    if readable:
        # read as one (num_readable, dim) array: a list of Python floats would take ~20x the memory at K400 scale
        embeddings = matched.select(readable).with_format("numpy", columns=[EMBEDDING_COLUMN])[EMBEDDING_COLUMN]
        videos = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        scores = refined_match_scores(videos, class_embeds, steps, method, shrinkage)
        rows = dict(zip(readable, rank_matches(scores, class_names, top_k)))
    before = matched["matched_label"]
    changed = sum(int(rows[index]["matched_label"] != before[index]) for index in readable)

    def rewrite(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        for position, index in enumerate(indices):
            for column, value in rows.get(index, {}).items():
                batch[column][position] = value
        return batch

    rematched = matched.remove_columns(EMBEDDING_COLUMN).map(
        rewrite, batched=True, with_indices=True, keep_in_memory=True, desc="Matching to refined class embeddings"
    )
    summary = {"method": method, "steps": steps, "videos": len(readable), "changed_matches": changed}
    logger.info(
        "Refined the classes (%s) in %d steps over %d videos: %d matches changed", method, steps, len(readable), changed
    )
    return rematched, summary
