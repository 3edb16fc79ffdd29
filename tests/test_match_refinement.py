"""Transductive refinement of the class embeddings after matching (`modeling_maxi.text_bags.refinement`)."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset

from modeling_maxi.text_bags.refinement import (
    EMBEDDING_COLUMN,
    refine_class_embeddings,
    rematch_with_refined_classes,
    validate_refinement_steps,
)

DIM = 8


def _unit(rows) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(np.asarray(rows), dtype=torch.float32), dim=-1)


def clustered_videos(per_class: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three tight groups of videos around the first three axes (their true classes 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    videos, labels = [], []
    for label in range(3):
        centre = np.eye(DIM)[label]
        noise = rng.normal(0.0, 0.25, size=(per_class, DIM)) * np.r_[np.ones(3), np.zeros(DIM - 3)]
        videos.append(centre + noise)
        labels += [label] * per_class
    return _unit(np.concatenate(videos)), torch.tensor(labels)


def off_target_text() -> torch.Tensor:
    """Text embeddings of classes 0-2 that sit between the groups (classes 1 and 2 lean towards groups 0 and 1) and a
    class 3 in a direction no video occupies."""
    eye = np.eye(DIM)
    return _unit([eye[0] + 0.3 * eye[2], eye[0] + eye[1], eye[2] + eye[1], eye[5]])


def test_refinement_moves_off_target_classes_onto_their_groups():
    videos, labels = clustered_videos()
    text = off_target_text()
    before = ((videos @ text.T).argmax(dim=1) == labels).float().mean().item()
    refined = refine_class_embeddings(videos, text, steps=5)
    after = ((videos @ refined.T).argmax(dim=1) == labels).float().mean().item()
    assert before < 0.75  # the text alone mislabels parts of groups 0 and 1
    assert after == 1.0
    assert torch.allclose(refined.norm(dim=-1), torch.ones(4))
    for label in range(3):  # each refined class is the normalised mean of its group
        mean = torch.nn.functional.normalize(videos[labels == label].mean(dim=0), dim=0)
        assert torch.allclose(refined[label], mean, atol=1e-5)
    assert torch.equal(refined[3], text[3])  # no video was ever assigned to it: it keeps its embedding


def test_zero_steps_is_the_text_matching_and_inputs_are_not_modified():
    videos, _ = clustered_videos(per_class=5)
    text = off_target_text()
    original = text.clone()
    refined = refine_class_embeddings(videos, text, steps=0)
    assert torch.equal(refined, text) and refined is not text
    refine_class_embeddings(videos, text, steps=3)
    assert torch.equal(text, original)


@pytest.mark.parametrize("steps", [-1, 1.5, True, "3", None])
def test_refinement_steps_are_validated(steps):
    with pytest.raises(ValueError, match=repr(steps).replace("(", r"\(").replace(".", r"\.")):
        validate_refinement_steps(steps)


def test_refinement_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(4, 8\) and \(3, 6\)"):
        refine_class_embeddings(torch.zeros(4, 8), torch.zeros(3, 6), steps=1)


def _matched_dataset(videos: torch.Tensor, text: torch.Tensor, names: list[str]) -> Dataset:
    """A match-stage dataset as `match_videos_batch(return_embeddings=True)` writes it, plus one unreadable video."""
    scores, top = (videos @ text.T).topk(3, dim=-1)
    rows = {
        "video_id": [f"v{index}" for index in range(len(videos))] + ["broken"],
        EMBEDDING_COLUMN: videos.tolist() + [[]],
        "matched_label": top[:, 0].tolist() + [-1],
        "matched_text": [names[label] for label in top[:, 0].tolist()] + [""],
        "match_score": scores[:, 0].tolist() + [math.nan],
        "top5_labels": top.tolist() + [[]],
        "top5_scores": scores.tolist() + [[]],
        "decode_error": [""] * len(videos) + ["VideoDecodeError: corrupt"],
    }
    return Dataset.from_dict(rows)


def test_rematch_rewrites_the_match_columns_and_keeps_unreadable_videos_unmatched():
    videos, labels = clustered_videos(per_class=10)
    text = off_target_text()
    names = ["zero", "one", "two", "three"]
    matched = _matched_dataset(videos, text, names)
    before = np.array(matched["matched_label"][:-1])

    rematched, summary = rematch_with_refined_classes(matched, text, names, steps=5)

    assert EMBEDDING_COLUMN not in rematched.column_names
    assert rematched["video_id"] == matched["video_id"]
    after = np.array(rematched["matched_label"][:-1])
    assert (after == labels.numpy()).all()
    assert summary == {"steps": 5, "videos": 30, "changed_matches": int((before != after).sum())}
    assert summary["changed_matches"] > 0
    assert rematched["matched_text"][:-1] == [names[label] for label in after]
    refined = refine_class_embeddings(videos, text, steps=5)
    expected = (videos @ refined.T).topk(3, dim=-1)
    assert rematched["top5_labels"][:-1] == expected.indices.tolist()
    np.testing.assert_allclose(rematched["top5_scores"][:-1], expected.values.numpy(), atol=1e-6)
    np.testing.assert_allclose(rematched["match_score"][:-1], expected.values[:, 0].numpy(), atol=1e-6)
    assert rematched[-1]["matched_label"] == -1 and rematched[-1]["top5_labels"] == []
    assert rematched[-1]["decode_error"].startswith("VideoDecodeError")


def test_rematch_needs_the_embedding_column_and_matching_names():
    videos, _ = clustered_videos(per_class=2)
    text = off_target_text()
    matched = _matched_dataset(videos, text, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=EMBEDDING_COLUMN):
        rematch_with_refined_classes(matched.remove_columns(EMBEDDING_COLUMN), text, ["a", "b", "c", "d"], 1)
    with pytest.raises(ValueError, match="3 class names for 4 class embeddings"):
        rematch_with_refined_classes(matched, text, ["a", "b", "c"], 1)
