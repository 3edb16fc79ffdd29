# SPDX-License-Identifier: Apache-2.0
"""Zero-shot API: zero_shot_classify, the registered pipeline task and patch-to-text similarity maps."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoProcessor, pipeline

from modeling_maxi import patch_text_similarity, zero_shot_classify
from modeling_maxi.pipelines import ZeroShotVideoClassificationPipeline
from modeling_maxi.zero_shot import (
    LabelEmbeddingCache,
    embed_videos,
    label_embedding_cache,
    label_embeddings,
    patch_similarity_maps,
    rank_video_labels,
)
from tests.helpers.remote_code import run_without_the_package
from tests.helpers.tiny_models import tiny_model

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


def test_a_saved_model_keeps_its_registered_pipeline_in_this_process(fresh_model, video, tmp_path):
    model, processor = fresh_model
    model.save_pretrained(tmp_path)
    assert "custom_pipelines" in json.loads((tmp_path / "config.json").read_text())
    assert "custom_pipelines" not in model.config.to_dict()  # only the saved config carries the code's entry
    classifier = pipeline("zero-shot-video-classification", model=model, processor=processor)
    assert (
        type(classifier) is ZeroShotVideoClassificationPipeline and len(classifier(video, candidate_labels=LABELS)) == 5
    )


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


# ---------------------------------------------------------------- label embeddings reused, never stale


@pytest.fixture
def fresh_model(tiny_model_dir):
    """A model of its own (its label cache starts empty and the test may change its weights)."""
    return AutoModel.from_pretrained(tiny_model_dir).eval(), AutoProcessor.from_pretrained(tiny_model_dir)


def _text_features(model, processor, labels, template="a photo of a {}."):
    inputs = processor(text=[template.format(label) for label in labels])
    with torch.no_grad():
        return model.get_text_features(**inputs).pooler_output


def test_label_embeddings_are_encoded_once_per_labels_and_template(fresh_model, video):
    model, processor = fresh_model
    cache = label_embedding_cache(model)
    first = zero_shot_classify(model, processor, video, LABELS)
    again = zero_shot_classify(model, processor, video[::-1].copy(), LABELS, top_k=2)
    assert cache.num_encoded == 1 and len(again) == 2
    assert zero_shot_classify(model, processor, video, LABELS) == first
    zero_shot_classify(model, processor, video, LABELS, template="a video of {}.")
    zero_shot_classify(model, processor, video, LABELS[:2])
    assert cache.num_encoded == 3 and len(cache) == 3
    torch.testing.assert_close(label_embeddings(model, processor, LABELS), _text_features(model, processor, LABELS))
    assert cache.num_encoded == 3


@pytest.mark.parametrize(
    "change",
    [
        "in_place_edit",
        "optimizer_step",
        "load_state_dict",
        "swapped_parameter",
        "dtype",
        "train_mode",
    ],
)
def test_a_changed_text_tower_never_gets_stale_label_embeddings(fresh_model, tiny_model_dir, change):
    model, processor = fresh_model
    before = label_embeddings(model, processor, LABELS).clone()
    if change == "in_place_edit":
        with torch.no_grad():
            model.text_model.encoder.layers[0].mlp.fc1.weight.mul_(1.5)
    elif change == "optimizer_step":
        optimizer = torch.optim.SGD(model.text_projection.parameters(), lr=1.0)
        model.get_text_features(**processor(text=["a photo of a dog."])).pooler_output.sum().backward()
        optimizer.step()
    elif change == "load_state_dict":
        model.load_state_dict(tiny_model(seed=7).state_dict())
    elif change == "swapped_parameter":
        model.text_projection.weight = nn.Parameter(model.text_projection.weight.detach() * 2)
    elif change == "dtype":
        model.to(torch.float64)
    else:
        model.train()
    after = label_embeddings(model, processor, LABELS)
    assert label_embedding_cache(model).num_encoded == 2
    if change == "dtype":
        assert before.dtype == torch.float32 and after.dtype == torch.float64
    elif change != "train_mode":  # CLIP has no text dropout: train mode changes no value, only what is cached
        assert not torch.allclose(after, before)
    torch.testing.assert_close(after, _text_features(model, processor, LABELS))


def test_another_tokenizer_and_clear_recompute(fresh_model, tiny_model_dir):
    model, processor = fresh_model
    cache = label_embedding_cache(model)
    label_embeddings(model, processor, LABELS)
    other = AutoProcessor.from_pretrained(tiny_model_dir)
    label_embeddings(model, other, LABELS)
    assert cache.num_encoded == 2
    cache.clear()  # e.g. after writes through `tensor.data`, which bypass PyTorch's version counters
    label_embeddings(model, other, LABELS)
    assert cache.num_encoded == 3
    copied = copy.deepcopy(model)  # a copy starts with an empty cache of its own
    assert len(label_embedding_cache(copied)) == 0 and label_embedding_cache(copied) is not cache
    with pytest.raises(ValueError, match="max_label_sets"):
        LabelEmbeddingCache(max_label_sets=0)


def test_pipeline_takes_a_list_and_batch_size_and_encodes_the_labels_once(fresh_model, video):
    model, processor = fresh_model
    classifier = pipeline("zero-shot-video-classification", model=model, processor=processor)
    videos = [video, video[::-1].copy(), video[:, ::-1].copy()]
    singles = [classifier(v, candidate_labels=LABELS) for v in videos]
    batched = classifier(videos, candidate_labels=LABELS, batch_size=2)
    assert len(batched) == 3 and label_embedding_cache(model).num_encoded == 1
    for single, in_batch in zip(singles, batched):
        assert [r["label"] for r in in_batch] == [r["label"] for r in single]
        assert [r["score"] for r in in_batch] == pytest.approx([r["score"] for r in single], abs=1e-6)
    preset = pipeline("zero-shot-video-classification", model=model, processor=processor, candidate_labels=LABELS)
    assert preset(video, top_k=1)[0]["label"] == singles[0][0]["label"]
    with pytest.raises(ValueError, match="candidate_labels"):
        classifier(video)
    with pytest.raises(ValueError, match="distinct"):
        classifier(video, candidate_labels=["a", "a"])


def test_the_remote_code_pipeline_scores_an_mp4_like_the_package(tiny_model_dir, moving_square_video, tmp_path):
    """No `modeling_maxi` in the process: the pipeline, model and processor come from the files of the folder."""
    labels = LABELS[:4]
    remote = run_without_the_package(
        f"""
        import json
        from transformers import pipeline
        classifier = pipeline("zero-shot-video-classification", model={str(tiny_model_dir)!r}, trust_remote_code=True)
        assert type(classifier).__module__.startswith("transformers_modules"), type(classifier).__module__
        single = classifier({str(moving_square_video)!r}, candidate_labels={labels!r})
        batch = classifier([{str(moving_square_video)!r}] * 3, candidate_labels={labels!r}, batch_size=2, top_k=2)
        print(json.dumps({{"single": single, "batch": batch}}))
        """,
        tmp_path,
    )
    classifier = pipeline("zero-shot-video-classification", model=str(tiny_model_dir))
    assert type(classifier) is ZeroShotVideoClassificationPipeline
    local = classifier(str(moving_square_video), candidate_labels=labels)
    assert [r["label"] for r in remote["single"]] == [r["label"] for r in local]
    assert [r["score"] for r in remote["single"]] == pytest.approx([r["score"] for r in local], abs=1e-6)
    assert len(remote["batch"]) == 3
    for item in remote["batch"]:  # batched vision passes agree with the single one up to float rounding
        assert [r["label"] for r in item] == [r["label"] for r in remote["single"][:2]]
        assert [r["score"] for r in item] == pytest.approx([r["score"] for r in remote["single"][:2]], abs=1e-6)


def test_one_vision_pass_gives_the_labels_and_the_similarity_maps(model_and_processor, video):
    model, processor = model_and_processor
    encoded = embed_videos(model, processor(videos=video)["pixel_values"], with_patches=True)
    assert encoded.video_embeds.shape == (1, 16) and encoded.patch_embeds.shape == (1, 4, 4, 4, 16)
    ranked = rank_video_labels(model, encoded.video_embeds, label_embeddings(model, processor, LABELS), LABELS)[0]
    direct = zero_shot_classify(model, processor, video, LABELS)
    assert [r["label"] for r in ranked] == [r["label"] for r in direct]
    assert [r["score"] for r in ranked] == pytest.approx([r["score"] for r in direct], abs=1e-6)
    maps = patch_similarity_maps(encoded.patch_embeds[0], label_embeddings(model, processor, ["archery"])[0])
    torch.testing.assert_close(maps, patch_text_similarity(model, processor, video, "archery"))
