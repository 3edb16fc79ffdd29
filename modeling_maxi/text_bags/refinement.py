"""Optional refine step after matching: transductive refinement of the dictionary's class embeddings (not in the paper).

MAXI matches every video once, to the prompt-ensembled text embeddings of the dictionary (paper eq. 1). This module
can then move each class embedding towards the videos matched to it, without labels. Each step assigns every readable
video to its most similar class, then sets each class embedding to the L2-normalised mean of its videos. This is
k-means on the video embeddings, started from the text embeddings, as in the prototype rectification of transductive
zero-shot CLIP methods. A class that no video is assigned to keeps its embedding. Zero steps is the paper's matching.

The videos are then matched again to the refined embeddings. `matched_label`, `matched_text`, `match_score` and the
top-k columns are rewritten, so the filter and the bags downstream use the refined matches. Only the pseudo-labels
change: the model, the dictionary and the prompts are untouched.

The refinement helps when the base model's video embeddings group by action and only the text side is off: then the
k-means steps pull each class embedding into the group of its action. It hurts when the embeddings group by something
else, such as the objects or the scene: then the classes drift into those groups. `benchmarks/toy_refined_matching.py`
measures both cases on the toy world.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from .matching import EMBEDDING_COLUMN, rank_matches

logger = logging.getLogger(__name__)


def validate_refinement_steps(steps: int) -> int:
    """Return `steps` or raise a `ValueError` naming it unless it is an integer >= 0."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"match refinement steps must be an integer >= 0, got {steps!r}")
    return steps


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
    if video_embeds.ndim != 2 or class_embeds.ndim != 2 or video_embeds.shape[1] != class_embeds.shape[1]:
        raise ValueError(
            f"video_embeds (num_videos, dim) and class_embeds (num_classes, dim) must share dim, got shapes "
            f"{tuple(video_embeds.shape)} and {tuple(class_embeds.shape)}"
        )
    videos = video_embeds.float()
    refined = class_embeds.float().clone()
    for _ in range(steps):
        assigned = (videos @ refined.T).argmax(dim=1)
        sums = torch.zeros_like(refined).index_add_(0, assigned, videos)
        counts = torch.bincount(assigned, minlength=refined.shape[0])
        populated = counts > 0
        refined[populated] = torch.nn.functional.normalize(sums[populated], dim=-1)
    return refined


def rematch_with_refined_classes(
    matched: Dataset, class_embeds: torch.Tensor, class_names: Sequence[str], steps: int
) -> tuple[Dataset, dict[str, Any]]:
    """Match the videos of a match-stage dataset again, to class embeddings refined over its readable videos.

    Args:
        matched (`datasets.Dataset`): output of the match stage with its `video_embedding` column (see
            `match_videos_batch(return_embeddings=True)`); rows with a `decode_error` keep their empty match.
        class_embeds (`torch.Tensor` of shape `(num_classes, dim)`): the dictionary's text embeddings.
        class_names (`list[str]`): the dictionary, in the order of `class_embeds`.
        steps (`int`): refinement steps (see `refine_class_embeddings`).

    Returns:
        The dataset with the match columns rewritten and without `video_embedding`, and a summary
        (`steps`, `videos`, `changed_matches`: how many readable videos changed class).
    """
    steps = validate_refinement_steps(steps)
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
        refined = refine_class_embeddings(videos, class_embeds, steps)
        rows = dict(zip(readable, rank_matches(videos @ refined.T, class_names, top_k)))
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
    summary = {"steps": steps, "videos": len(readable), "changed_matches": changed}
    logger.info("Refined the class embeddings in %d steps over %d videos: %d matches changed", steps, len(readable),
                changed)
    return rematched, summary
