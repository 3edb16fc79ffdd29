# SPDX-License-Identifier: Apache-2.0
"""Zero-shot API: zero_shot_classify, the registered pipeline task and patch-to-text similarity maps."""

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoProcessor, pipeline

from modeling_maxi import patch_text_similarity, zero_shot_classify
from modeling_maxi.pipelines import ZeroShotVideoClassificationPipeline

LABELS = ["archery", "juggling balls", "riding a bike", "playing chess", "cooking egg"]


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    return AutoModel.from_pretrained(tiny_model_dir).eval(), AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def video():
    return np.random.default_rng(0).integers(0, 256, (9, 40, 40, 3), dtype=np.uint8)


def test_zero_shot_classify_ranks_labels_by_softmax_probability(model_and_processor, video):
    model, processor = model_and_processor
    ranked = zero_shot_classify(model, processor, video, LABELS)
    assert sorted(r["label"] for r in ranked) == sorted(LABELS)
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    inputs = processor(videos=video, text=[f"a photo of a {label}." for label in LABELS])
    with torch.no_grad():
        expected = model(**inputs).logits_per_video[0].softmax(-1)
    assert ranked[0]["label"] == LABELS[int(expected.argmax())]
    assert ranked[0]["score"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert len(zero_shot_classify(model, processor, video, LABELS, top_k=2)) == 2


def test_template_changes_the_prompt(model_and_processor, video):
    model, processor = model_and_processor
    default = zero_shot_classify(model, processor, video, LABELS)
    other = zero_shot_classify(model, processor, video, LABELS, template="a video of someone {} outdoors")
    assert {r["label"]: r["score"] for r in default} != pytest.approx({r["label"]: r["score"] for r in other})


@pytest.mark.parametrize(
    ("labels", "template", "message"),
    [
        ([], "a photo of a {}.", "empty"),
        (["a", "a"], "a photo of a {}.", "distinct"),
        ("archery", "{}", "list"),
        (["a", ""], "{}", "non-empty"),
        (["a"], "no placeholder", "exactly one"),
    ],
)
def test_bad_labels_and_templates_are_refused(model_and_processor, video, labels, template, message):
    with pytest.raises(ValueError, match=message):
        zero_shot_classify(*model_and_processor, video, labels, template=template)


def test_pipeline_task_gives_the_same_ranking(model_and_processor, video):
    model, processor = model_and_processor
    classifier = pipeline("zero-shot-video-classification", model=model, processor=processor)
    assert type(classifier) is ZeroShotVideoClassificationPipeline
    from_pipeline = classifier(video, candidate_labels=LABELS)
    direct = zero_shot_classify(model, processor, video, LABELS)
    assert [r["label"] for r in from_pipeline] == [r["label"] for r in direct]
    assert [r["score"] for r in from_pipeline] == pytest.approx([r["score"] for r in direct], abs=1e-6)
    batched = classifier([video, video[::-1].copy()], candidate_labels=LABELS, top_k=1)
    assert len(batched) == 2 and len(batched[0]) == 1
    assert batched[0][0]["label"] == direct[0]["label"]


def test_pipeline_loads_from_a_folder(tiny_model_dir, moving_square_video):
    classifier = pipeline("zero-shot-video-classification", model=str(tiny_model_dir))
    result = classifier(str(moving_square_video), candidate_labels=LABELS[:3])
    assert len(result) == 3 and sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)


def test_patch_text_similarity_is_the_cosine_of_projected_patch_tokens(model_and_processor, video):
    model, processor = model_and_processor
    maps = patch_text_similarity(model, processor, video, "archery")
    assert maps.shape == (4, 4, 4)  # 4 frames, 32 px / patch 8
    assert maps.abs().max() <= 1.0 + 1e-6
    inputs = processor(videos=video, text=["a photo of a archery."])
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=inputs["pixel_values"][0]).last_hidden_state
        patch = model.visual_projection(model.vision_model.post_layernorm(hidden[2, 1 + 5]))  # frame 2, row 1, col 1
        text = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output[0]
    assert float(maps[2, 1, 1]) == pytest.approx(float(nn.functional.cosine_similarity(patch, text, dim=0)), abs=1e-5)
    with pytest.raises(ValueError, match="text"):
        patch_text_similarity(model, processor, video, "  ")
