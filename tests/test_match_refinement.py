# SPDX-License-Identifier: Apache-2.0
"""Transductive refinement of the class embeddings after matching (`modeling_maxi.text_bags.refinement`)."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from modeling_maxi.text_bags import refinement
from modeling_maxi.text_bags.refinement import (
    EMBEDDING_COLUMN,
    fit_shared_covariance_classes,
    refine_class_embeddings,
    refined_match_scores,
    rematch_with_refined_classes,
    validate_covariance_shrinkage,
    validate_refinement_method,
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

    rematched, summary = rematch_with_refined_classes(matched, text, names, steps=5, method="kmeans")

    assert EMBEDDING_COLUMN not in rematched.column_names
    assert rematched["video_id"] == matched["video_id"]
    after = np.array(rematched["matched_label"][:-1])
    assert (after == labels.numpy()).all()
    assert summary == {"method": "kmeans", "steps": 5, "videos": 30, "changed_matches": int((before != after).sum())}
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


def videos_with_shared_nuisance(per_class: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes whose videos differ a little along their own axis (0-2) and a lot along the axis of one of three
    "objects" (3-5) that every class shows: as the toy world's actions, each performed by every object."""
    rng = np.random.default_rng(seed)
    eye = np.eye(DIM)
    videos, labels = [], []
    for label in range(3):
        objects = rng.integers(0, 3, size=per_class)
        shown = 2.0 * eye[7] + 0.4 * eye[label] + 1.5 * eye[3 + objects]
        videos.append(shown + rng.normal(0.0, 0.08, size=(per_class, DIM)))
        labels += [label] * per_class
    return _unit(np.concatenate(videos)), torch.tensor(labels)


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return (scores.argmax(dim=1) == labels).float().mean().item()


def test_gaussian_refinement_discounts_what_varies_inside_every_class():
    videos, labels = videos_with_shared_nuisance()
    eye = np.eye(DIM)
    text = _unit([eye[0] + 0.8 * eye[1], eye[1] + 0.8 * eye[2], eye[2] + 0.8 * eye[0], eye[6]])
    by_text = _accuracy(videos @ text.T, labels)
    by_kmeans = _accuracy(refined_match_scores(videos, text, 10, "kmeans"), labels)
    by_gaussian = _accuracy(refined_match_scores(videos, text, 10, "gaussian"), labels)
    assert 0.6 < by_text < 0.85
    assert by_kmeans < 0.5  # the nearest-mean rule drifts into the object groups
    assert by_gaussian == 1.0  # the shared covariance learns that the object axes vary inside every class
    assert _accuracy(refined_match_scores(videos, text, 0, "gaussian"), labels) == by_text  # 0 steps: the paper's


def test_one_gaussian_step_is_shrunk_lda_fitted_on_the_text_matches():
    videos, _ = videos_with_shared_nuisance(per_class=20, seed=1)
    eye = np.eye(DIM)
    text = _unit([eye[0] + 0.5 * eye[1], eye[1] + 0.5 * eye[2], eye[2] + 0.5 * eye[0]])
    text_matches = (videos @ text.T).argmax(dim=1).numpy()
    assert len(set(text_matches)) == 3
    classes = fit_shared_covariance_classes(videos, text, steps=1, shrinkage=0.3)
    reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3).fit(videos.double().numpy(), text_matches)
    np.testing.assert_allclose(classes.means.numpy(), reference.means_, atol=1e-9)
    np.testing.assert_allclose(classes.log_priors.exp().numpy(), reference.priors_, atol=1e-12)
    log_posteriors = classes.log_posteriors(videos)
    assert log_posteriors.dtype == torch.float64 and log_posteriors.shape == (60, 3)
    np.testing.assert_allclose(log_posteriors.numpy(), reference.predict_log_proba(videos.double().numpy()), atol=1e-6)
    np.testing.assert_allclose(torch.logsumexp(log_posteriors, dim=1).numpy(), 0.0, atol=1e-9)


def test_gaussian_steps_in_chunks_give_the_same_fit(monkeypatch):
    videos, _ = videos_with_shared_nuisance(per_class=20)
    text = _unit(np.eye(DIM)[:3] + 0.3)
    whole = fit_shared_covariance_classes(videos, text, steps=4)
    monkeypatch.setattr(refinement, "_ROWS_PER_CHUNK", 7)
    chunked = fit_shared_covariance_classes(videos, text, steps=4)
    for name in ("means", "precision", "log_priors"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name))
    torch.testing.assert_close(chunked.log_posteriors(videos), whole.log_posteriors(videos))


def test_gaussian_class_without_videos_keeps_its_text_mean_and_never_wins():
    videos, labels = videos_with_shared_nuisance(per_class=20)
    eye = np.eye(DIM)
    text = _unit([eye[0] + 2.0 * eye[7], eye[1] + 2.0 * eye[7], eye[2] + 2.0 * eye[7], eye[6]])
    classes = fit_shared_covariance_classes(videos, text, steps=5)
    torch.testing.assert_close(classes.means[3], text[3].double())
    assert classes.log_priors[3] < -20
    assert (classes.log_posteriors(videos).argmax(dim=1) != 3).all()


def test_gaussian_rematch_scores_are_log_posteriors():
    videos, labels = videos_with_shared_nuisance(per_class=10)
    eye = np.eye(DIM)
    text = _unit([eye[0] + 0.8 * eye[1], eye[1] + 0.8 * eye[2], eye[2] + 0.8 * eye[0], eye[6]])
    names = ["zero", "one", "two", "three"]
    matched = _matched_dataset(videos, text, names)
    rematched, summary = rematch_with_refined_classes(matched, text, names, steps=10)
    assert summary["method"] == "gaussian" and summary["videos"] == 30
    expected = fit_shared_covariance_classes(videos, text, 10).log_posteriors(videos).topk(3, dim=-1)
    assert rematched["top5_labels"][:-1] == expected.indices.tolist()
    np.testing.assert_allclose(rematched["top5_scores"][:-1], expected.values.numpy(), atol=1e-9)
    scores = np.array(rematched["top5_scores"][:-1])
    assert (scores <= 0).all() and (np.diff(scores, axis=1) <= 0).all()
    assert rematched[-1]["matched_label"] == -1  # the unreadable video stays unmatched


@pytest.mark.parametrize("method", ["lda", "", None, "KMEANS"])
def test_refinement_method_is_validated(method):
    with pytest.raises(ValueError, match=f"got {method!r}"):
        validate_refinement_method(method)


@pytest.mark.parametrize("shrinkage", [0, -0.1, 1.5, True, "0.1"])
def test_covariance_shrinkage_is_validated(shrinkage):
    with pytest.raises(ValueError, match=f"got {shrinkage!r}"):
        validate_covariance_shrinkage(shrinkage)


def test_gaussian_fit_rejects_bad_input():
    videos, _ = videos_with_shared_nuisance(per_class=4)
    text = _unit(np.eye(DIM)[:3])
    with pytest.raises(ValueError, match="at least 1 step, got 0"):
        fit_shared_covariance_classes(videos, text, steps=0)
    with pytest.raises(ValueError, match="empty video_embeds"):
        fit_shared_covariance_classes(videos[:0], text, steps=1)
    with pytest.raises(ValueError, match=r"\(12, 8\) and \(3, 6\)"):
        fit_shared_covariance_classes(videos, torch.zeros(3, 6), steps=1)
    classes = fit_shared_covariance_classes(videos, text, steps=1)
    with pytest.raises(ValueError, match=r"\(num_videos, 8\), got \(2, 5\)"):
        classes.log_posteriors(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="'lda'"):
        refined_match_scores(videos, text, 1, "lda")
