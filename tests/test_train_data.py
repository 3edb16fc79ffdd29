# SPDX-License-Identifier: Apache-2.0
"""Tests of training/data.py: bag sampling rules, dataset preparation, augmentation, skipping, collation."""

import logging

import numpy as np
import pytest
import torch

from modeling_maxi.training.data import (
    MultiScaleCrop,
    TextBagCollator,
    TextBagVideoDataset,
    build_prompt,
    build_train_transform,
    prepare_text_bag_dataset,
    sample_bag,
    validate_augmentations,
    validate_text_bag_columns,
)
from tests.test_train_fixtures import CLASS_WORDS, build_text_bag_dataset

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def bags_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    return root, build_text_bag_dataset(root, videos_per_class=2, corrupt=2)


def test_prompt_format():
    assert build_prompt("playing guitar", "strumming") == "a photo of a playing guitar. strumming"


def test_large_bag_sampled_without_replacement_never_matched_text():
    bag = [f"verb{i}" for i in range(40)] + ["Play  Guitar", "play guitar"]
    for seed in range(20):
        prompts = sample_bag(bag, "play guitar", 16, np.random.default_rng(seed))
        assert len(prompts) == 16 and len(set(prompts)) == 16
        assert all(p.startswith("a photo of a play guitar. verb") for p in prompts)


def test_small_bag_repeats_every_text_evenly():
    prompts = sample_bag(["a", "b", "c"], "x", 16, np.random.default_rng(0))
    assert len(prompts) == 16
    counts = {t: prompts.count(f"a photo of a x. {t}") for t in "abc"}
    assert sorted(counts.values()) == [5, 5, 6], counts


def test_empty_bag_gives_class_prompt_copies():
    for bag in ([], ["  "], ["x", "X "]):
        assert sample_bag(bag, "x", 4, np.random.default_rng(0)) == ["a photo of a x."] * 4


def test_bag_sampling_is_deterministic_per_generator_seed():
    bag = [f"w{i}" for i in range(30)]
    first = sample_bag(bag, "m", 8, np.random.default_rng([1, 2, 3]))
    assert first == sample_bag(bag, "m", 8, np.random.default_rng([1, 2, 3]))
    assert first != sample_bag(bag, "m", 8, np.random.default_rng([1, 3, 3]))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bag_size_validation(bad):
    with pytest.raises(ValueError, match=f"bag_size must be a positive integer, got {bad!r}"):
        sample_bag(["a"], "m", bad, np.random.default_rng(0))


def test_missing_columns_fail_fast_naming_them():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text_bag'\]"):
        validate_text_bag_columns(["video_path", "matched_label", "matched_text"], None)
    with pytest.raises(ValueError, match=r"\['caption_verbs'\]"):
        validate_text_bag_columns(
            ["video_path", "matched_label", "matched_text", "llm_verbs"], ["dictionary", "llm", "captions"]
        )
    with pytest.raises(ValueError, match="Unknown text source"):
        validate_text_bag_columns(["video_path", "matched_label", "matched_text"], ["dictionary", "blip"])
    with pytest.raises(ValueError, match="lacks 'dictionary'"):
        validate_text_bag_columns(["video_path", "matched_label", "matched_text", "llm_verbs"], ["llm"])


def test_prepare_filters_unmatched_and_by_ratio_and_rebuilds_sources(bags_dir):
    _, dataset = bags_dir
    dataset = dataset.map(lambda row, i: {"matched_label": -1 if i == 0 else row["matched_label"]}, with_indices=True)
    kept = prepare_text_bag_dataset(dataset, None, 1.0)
    assert len(kept) == len(dataset) - 1 and "swim_0" not in kept["video_id"]
    top = prepare_text_bag_dataset(dataset, None, 0.5)
    assert len(top) == 5  # ceil(0.5 * 9) of the 9 matched rows, highest match_score first
    assert min(top["match_score"]) >= sorted(kept["match_score"], reverse=True)[4]
    llm_only = prepare_text_bag_dataset(dataset, ["dictionary", "llm"], 1.0)
    row = llm_only[1]
    assert row["text_bag"] == CLASS_WORDS[row["matched_label"]][:3]  # the matched text was dropped from llm_verbs
    dictionary_only = prepare_text_bag_dataset(dataset, ["dictionary"], 1.0)
    assert all(bag == [] for bag in dictionary_only["text_bag"])


def test_prepare_filters_by_margin_when_asked(bags_dir):
    _, dataset = bags_dir

    def scores(row, index):
        # Row 0 is the most similar video but barely prefers its match; row n > 0 leads its runner-up by 0.05 * n.
        best, margin = (0.99, 0.001) if index == 0 else (0.5, 0.05 * index)
        return {"match_score": best, "top5_scores": [best, best - margin]}

    dataset = dataset.map(scores, with_indices=True)
    matched = prepare_text_bag_dataset(dataset, None, 1.0)
    assert matched["video_id"][0] in prepare_text_bag_dataset(dataset, None, 0.5)["video_id"]  # by similarity
    by_margin = prepare_text_bag_dataset(dataset, None, 0.5, "margin")
    largest_margins = matched.select(range(len(matched) - len(by_margin), len(matched)))["video_id"]
    assert sorted(by_margin["video_id"]) == sorted(largest_margins)
    assert matched["video_id"][0] not in by_margin["video_id"]
    with pytest.raises(ValueError, match="'top5_scores' column"):
        prepare_text_bag_dataset(dataset.remove_columns("top5_scores"), None, 0.5, "margin")
    with pytest.raises(ValueError, match="'rank'"):
        prepare_text_bag_dataset(dataset, None, 0.5, "rank")


def test_multiscale_crop_same_params_for_all_frames():
    video = torch.randint(0, 255, (4, 3, 40, 60), dtype=torch.uint8)
    video[:] = video[0]  # identical frames must stay identical after augmentation
    torch.manual_seed(0)
    out = build_train_transform(32, MEAN, STD, augment=True)(video)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
    assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
    torch.manual_seed(1)
    crop = MultiScaleCrop(32)
    params = crop.make_params([video])
    assert params["height"] in {40, 35, 30, 26} and params["width"] in {40, 35, 30, 26}
    assert abs([40, 35, 30, 26].index(params["height"]) - [40, 35, 30, 26].index(params["width"])) <= 1


def test_augmentation_varies_between_draws_and_eval_is_center_crop():
    video = torch.arange(3 * 40 * 60, dtype=torch.int64).reshape(1, 3, 40, 60).remainder(251).to(torch.uint8)
    outs = []
    for seed in range(4):
        torch.manual_seed(seed)
        outs.append(build_train_transform(32, MEAN, STD, augment=True)(video))
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    # Without augmentation: resize + centre crop + normalisation; a flat colour maps to its normalised value.
    flat = torch.zeros(2, 3, 40, 60, dtype=torch.uint8)
    flat[:, 0], flat[:, 1], flat[:, 2] = 255, 128, 0
    plain = build_train_transform(32, MEAN, STD, augment=False)(flat)
    assert plain.shape == (2, 3, 32, 32)
    expected = (torch.tensor([1.0, 128 / 255, 0.0]) - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(plain[1, :, 16, 16], expected, atol=1e-5, rtol=0)


def test_augmentation_selection_keeps_only_the_chosen_steps():
    video = torch.arange(3 * 40 * 60, dtype=torch.int64).reshape(1, 3, 40, 60).remainder(251).to(torch.uint8)
    plain = build_train_transform(32, MEAN, STD, augment=False)(video)
    # No augmentation selected: exactly the inference transform, whatever the seed.
    torch.manual_seed(0)
    assert torch.equal(build_train_transform(32, MEAN, STD, augment=True, augmentations=())(video), plain)
    # Flip only: every draw is the centre crop or its mirror image (no crop, no colour change), and both occur.
    flipped = []
    for seed in range(8):
        torch.manual_seed(seed)
        out = build_train_transform(32, MEAN, STD, augment=True, augmentations=["flip"])(video)
        assert torch.equal(out, plain) or torch.equal(out, plain.flip(-1))
        flipped.append(torch.equal(out, plain.flip(-1)))
    assert any(flipped) and not all(flipped)
    # Colour steps only: geometry untouched, so a pixel keeps its place; greyscale makes the channels equal.
    torch.manual_seed(3)
    outs = [build_train_transform(32, MEAN, STD, True, ["grayscale"])(video) for _ in range(20)]
    grey = [o for o in outs if not torch.equal(o, plain)]
    assert grey, "greyscale (p=0.2) never fired in 20 draws"
    unnormalised = grey[0] * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
    torch.testing.assert_close(unnormalised[:, 0], unnormalised[:, 1], atol=1e-5, rtol=0)


def test_unknown_augmentation_is_named():
    with pytest.raises(ValueError, match="'mixup'"):
        validate_augmentations(["flip", "mixup"])
    with pytest.raises(TypeError, match="'flip'"):
        validate_augmentations("flip")
    with pytest.raises(ValueError, match="'mixup'"):
        build_train_transform(32, MEAN, STD, augment=True, augmentations=["mixup"])


def _dataset(bags_dir, **kwargs):
    root, dataset = bags_dir
    args = {"num_frames": 3, "bag_size": 5, "image_size": 32, "image_mean": MEAN, "image_std": STD, "seed": 7}
    return TextBagVideoDataset(dataset, str(root), **{**args, **kwargs})


def test_items_deterministic_per_seed_epoch_index(bags_dir):
    dataset = _dataset(bags_dir)
    first = dataset[1]
    assert first["pixel_values"].shape == (3, 3, 32, 32)
    assert len(first["prompts"]) == 5 and first["pseudo_label"] == 1
    again = _dataset(bags_dir)[1]
    torch.testing.assert_close(first["pixel_values"], again["pixel_values"])
    assert first["prompts"] == again["prompts"]
    dataset.set_epoch(1)
    other_epoch = dataset[1]
    assert not torch.equal(first["pixel_values"], other_epoch["pixel_values"])
    assert _dataset(bags_dir, seed=8)[1]["prompts"] != first["prompts"] or not torch.equal(
        _dataset(bags_dir, seed=8)[1]["pixel_values"], first["pixel_values"]
    )
    # Global RNG state is not consumed by items (augmentation runs in a forked RNG).
    torch.manual_seed(3)
    state = torch.get_rng_state()
    _dataset(bags_dir)[2]
    assert torch.equal(state, torch.get_rng_state())


def test_unreadable_videos_are_skipped_counted_and_batches_stay_aligned(bags_dir, clip_tokenizer, caplog):
    dataset = _dataset(bags_dir)
    broken = [i for i, vid in enumerate(dataset.dataset["video_id"]) if vid.startswith("broken")]
    assert len(broken) == 2
    collator = TextBagCollator(clip_tokenizer, 5, dataset.frame_shape)
    with caplog.at_level(logging.WARNING, logger="modeling_maxi.training.data"):
        items = [dataset[i] for i in [0, broken[0], 2, broken[1], 5]]
    assert sum("Skipping unreadable video" in r.message for r in caplog.records) == 2
    batch = collator(items)
    assert batch["pixel_values"].shape == (3, 3, 3, 32, 32)
    assert batch["input_ids"].shape[0] == 15 and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["pseudo_labels"].tolist() == [dataset.dataset[i]["matched_label"] for i in (0, 2, 5)]
    assert int(batch["num_skipped"]) == 2
    # Rows i*bag_size .. (i+1)*bag_size-1 are video i's prompts.
    decoded = clip_tokenizer.batch_decode(batch["input_ids"][5:10], skip_special_tokens=True)
    assert all(text.startswith(f"a photo of a {dataset.dataset[2]['matched_text']} .") for text in decoded), decoded
    empty = collator([dataset[broken[0]]])
    assert empty["pixel_values"].shape == (0, 3, 3, 32, 32) and int(empty["num_skipped"]) == 1


def test_dataset_argument_validation(bags_dir):
    with pytest.raises(ValueError, match="bag_size must be a positive integer, got 0"):
        _dataset(bags_dir, bag_size=0)
    with pytest.raises(ValueError, match="num_frames must be a positive integer, got 0"):
        _dataset(bags_dir, num_frames=0)
    root, dataset = bags_dir
    with pytest.raises(ValueError, match="video_root '/nonexistent/dir' is not a directory"):
        TextBagVideoDataset(dataset, "/nonexistent/dir", 2, 2, 32, MEAN, STD)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text_bag'\]"):
        TextBagVideoDataset(dataset.remove_columns("text_bag"), str(root), 2, 2, 32, MEAN, STD)
