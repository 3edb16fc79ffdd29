# SPDX-License-Identifier: Apache-2.0
"""Paper Eq. 1 (`modeling_maxi.scoring`) against a loop-form float64 reference, and its callers against it."""

import math

import pytest
import torch

from modeling_maxi.evaluation.zero_shot_eval import video_class_logits
from modeling_maxi.scoring import video_text_logits, video_text_similarity
from modeling_maxi.text_bags.refinement import refined_match_scores
from tests.helpers.tiny_models import tiny_model


def _cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    """sim(u, v) = u^T v / (|u| |v|), written out element by element."""
    dot = sum(float(a) * float(b) for a, b in zip(u, v))
    return dot / (math.sqrt(sum(float(a) ** 2 for a in u)) * math.sqrt(sum(float(b) ** 2 for b in v)))


def _embeddings(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_similarity_is_the_cosine_of_every_video_and_text():
    videos, texts = _embeddings(3, 5, seed=0) * 4.0, _embeddings(4, 5, seed=1) * 0.25
    similarity = video_text_similarity(videos, texts)
    expected = torch.tensor([[_cosine(v, t) for t in texts] for v in videos], dtype=torch.float64)
    assert similarity.shape == (3, 4) and similarity.dtype == torch.float64
    torch.testing.assert_close(similarity, expected, rtol=0, atol=1e-12)


def test_per_frame_embeddings_are_scored_by_the_mean_of_their_frame_cosines():
    frames, texts = _embeddings(2, 3, 5, seed=2), _embeddings(4, 5, seed=3)
    expected = torch.tensor(
        [[sum(_cosine(frames[b, f], t) for f in range(3)) / 3 for t in texts] for b in range(2)], dtype=torch.float64
    )
    torch.testing.assert_close(video_text_similarity(frames, texts), expected, rtol=0, atol=1e-12)
    # Not the cosine of the mean-pooled video (the paper's matching pools first, then scores).
    pooled = video_text_similarity(frames.mean(dim=1), texts)
    assert not torch.allclose(pooled, expected)


def test_logits_scale_the_cosine_by_the_exponentiated_log_scale():
    videos, texts = _embeddings(3, 5, seed=4), _embeddings(2, 5, seed=5)
    log_scale = torch.tensor(math.log(50.0), dtype=torch.float64, requires_grad=True)
    logits = video_text_logits(videos, texts, log_scale)
    torch.testing.assert_close(logits, 50.0 * video_text_similarity(videos, texts))
    logits.sum().backward()
    assert log_scale.grad is not None and float(log_scale.grad) != 0.0
    with pytest.raises(ValueError, match="logit_scale"):  # a plain number would be taken for the scale, not its log
        video_text_logits(videos, texts, 50.0)


@pytest.mark.parametrize(
    ("videos", "texts", "message"),
    [
        (torch.zeros(5), torch.zeros(2, 5), r"video_embeds.*got \(5,\)"),
        (torch.zeros(1, 2, 3, 5), torch.zeros(2, 5), r"video_embeds.*got \(1, 2, 3, 5\)"),
        (torch.zeros(3, 5), torch.zeros(2, 3, 5), r"text_embeds.*got \(2, 3, 5\)"),
        (torch.zeros(3, 5), torch.zeros(2, 4), "video_embeds has dim=5, text_embeds has dim=4"),
        ([[0.0] * 5], torch.zeros(2, 5), "got list"),
    ],
)
def test_bad_shapes_are_refused_with_their_shape(videos, texts, message):
    with pytest.raises(ValueError, match=message):
        video_text_similarity(videos, texts)


@pytest.mark.parametrize("frame_pooling", ["mean", "none"])
def test_model_forward_and_evaluation_logits_are_eq1_scaled(clip_tokenizer, frame_pooling):
    model = tiny_model(frame_pooling=frame_pooling)
    texts = clip_tokenizer(["a photo of a dog.", "a photo of juggling balls."], padding=True, return_tensors="pt")
    videos = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = model(**texts, pixel_values=videos)
        video_embeds = model.get_video_features(videos).pooler_output
        text_embeds = model.get_text_features(**texts).pooler_output
        from_eval = video_class_logits(model, videos, torch.nn.functional.normalize(text_embeds, dim=-1))
    expected = torch.tensor(
        [
            [
                50.0 * (_cosine(v, t) if v.dim() == 1 else sum(_cosine(f, t) for f in v) / len(v))
                for t in text_embeds.double()
            ]
            for v in video_embeds.double()
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(outputs.logits_per_video.double(), expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(from_eval.double(), expected, rtol=0, atol=1e-4)


def test_refinement_without_steps_keeps_the_eq1_scores():
    videos = torch.nn.functional.normalize(_embeddings(6, 5, seed=6).float(), dim=-1)
    classes = torch.nn.functional.normalize(_embeddings(3, 5, seed=7).float(), dim=-1)
    expected = torch.tensor([[_cosine(v, c) for c in classes] for v in videos])
    torch.testing.assert_close(refined_match_scores(videos, classes, 0, "kmeans"), expected, rtol=0, atol=1e-6)
