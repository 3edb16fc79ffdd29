# SPDX-License-Identifier: Apache-2.0
"""Tests of the toy action world, its phrase table and the toy base-model pretraining."""

import dataclasses
import os
import re
from collections import Counter

import av
import numpy as np
import pytest

from toy_world.phrase_table import (
    TOY_COMPOUND_HELDOUT_PHRASINGS,
    TOY_COMPOUND_PHRASE_TABLE,
    TOY_HELDOUT_PHRASINGS,
    TOY_PHRASE_TABLE,
    describe_action,
    heldout_class_names,
    phrases_for_action,
)
from toy_world.rendering import (
    TOY_BACKGROUNDS,
    TOY_COLORS,
    TOY_MARK_DESCRIPTIONS,
    TOY_MARK_INKS,
    TOY_NOVEL_INKS,
    frame_attributes,
    object_state,
    render_background,
    render_clip,
)
from toy_world.world import (
    TOY_ACTION_DICTIONARY,
    TOY_COMPOUND_ACTIONS,
    TOY_COMPOUND_DICTIONARY,
    TOY_MANNERS,
    TOY_NOVEL_ACTIONS,
    TOY_NOVEL_COMPOUND_ACTIONS,
    ClipSpec,
    ToyWorldConfig,
    compound_training_actions,
    generate_toy_world,
    load_world_specs,
    sample_clip_spec,
    sample_split_specs,
    settings_for_cache_key,
    split_compound_action,
    world_splits,
)

SMALL = {"num_train": 10, "num_test": 10, "num_test_novel": 6, "num_frames": 6, "frame_size": 32}


def _decode(path):
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_world")
    config = ToyWorldConfig(seed=3, **SMALL)
    manifest = generate_toy_world(directory, config)
    return directory, config, manifest


# ----------------------------------------------------------------------------- generator


def test_specs_and_frames_are_deterministic_and_seed_dependent():
    config = ToyWorldConfig(seed=1, **SMALL)
    first, again = sample_split_specs(config, "train"), sample_split_specs(config, "train")
    assert first == again
    np.testing.assert_array_equal(render_clip(first[0], config), render_clip(again[0], config))
    other_seed = sample_split_specs(dataclasses.replace(config, seed=2), "train")
    assert [dataclasses.asdict(s) for s in other_seed] != [dataclasses.asdict(s) for s in first]
    # Train and test use independent streams of the same seed.
    assert sample_split_specs(config, "test") != first


def test_classes_are_balanced_and_shuffled():
    config = ToyWorldConfig(seed=0, num_train=40, num_test=0, num_frames=4, frame_size=32)
    actions = [spec.action for spec in sample_split_specs(config, "train")]
    assert {action: actions.count(action) for action in TOY_ACTION_DICTIONARY} == dict.fromkeys(
        TOY_ACTION_DICTIONARY, 4
    )
    assert actions != [TOY_ACTION_DICTIONARY[i % 10] for i in range(40)]


@pytest.mark.parametrize("object_scale", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("action", TOY_ACTION_DICTIONARY)
def test_motion_follows_the_action_and_stays_in_frame(action, object_scale):
    rng = np.random.default_rng(0)
    for _ in range(20):
        spec = sample_clip_spec(rng, action, frame_size=64, num_frames=16, object_scale=object_scale)
        states = [object_state(spec, t, 16) for t in range(16)]
        xs = np.array([s.x for s in states])
        ys = np.array([s.y for s in states])
        radii = np.array([s.radius for s in states])
        visible = np.array([s.visible for s in states])
        # The whole object (shapes reach 1.26 radii) stays inside the 64 px frame.
        assert (xs - 1.26 * radii >= 0).all() and (xs + 1.26 * radii <= 64).all(), action
        assert (ys - 1.26 * radii >= 0).all() and (ys + 1.26 * radii <= 64).all(), action
        if action == "moving left":
            assert xs[-1] < xs[0] - 12 and np.ptp(ys) == 0
        elif action == "moving right":
            assert xs[-1] > xs[0] + 12 and np.ptp(ys) == 0
        elif action == "moving up":  # image rows grow downwards
            assert ys[-1] < ys[0] - 12 and np.ptp(xs) == 0
        elif action == "moving down":
            assert ys[-1] > ys[0] + 12 and np.ptp(xs) == 0
        elif action == "growing":
            assert (np.diff(radii) > 0).all() and radii[-1] > 1.8 * radii[0]
        elif action == "shrinking":
            assert (np.diff(radii) < 0).all() and radii[0] > 1.8 * radii[-1]
        elif action == "spinning":
            assert abs(states[-1].rotation - states[0].rotation) > 3.0 and np.ptp(xs) == 0 and np.ptp(radii) == 0
        elif action == "blinking":
            assert 0 < visible.sum() < 16 and np.ptp(xs) == 0
        elif action == "bouncing":
            assert np.ptp(ys) > 10 and (ys <= spec.start_y + 1e-6).all()
        elif action == "shaking":
            assert 2 < np.ptp(xs) < 12 and np.ptp(ys) == 0
        if action != "blinking":
            assert visible.all()


def test_spinning_never_uses_an_invisible_rotation():
    rng = np.random.default_rng(5)
    specs = [sample_clip_spec(rng, "spinning", 64, 16) for _ in range(300)]
    assert not any(spec.shape == "circle" and spec.texture == "plain" for spec in specs)


def test_motion_trail_points_back_along_the_motion():
    config = ToyWorldConfig(noise_std=0.0, trail_length=3, trail_opacity=0.6, num_frames=16, motion_marks=False)
    spec = ClipSpec(
        action="moving right",
        shape="square",
        color="yellow",
        texture="plain",
        background="grass",
        start_x=20.0,
        start_y=32.0,
        radius=7.0,
        velocity_x=2.0,
    )
    frame = render_clip(spec, config)[8].astype(float)
    row = frame[32, :, 0]
    center = int(object_state(spec, 8, 16).x)
    behind, ahead = row[center - 16 : center - 8], row[center + 9 : center + 17]
    assert behind.mean() > 90 > ahead.mean()  # ghosts on the left (where it came from), background (R ~45) ahead
    without_trail = render_clip(spec, dataclasses.replace(config, trail_length=0))[8].astype(float)
    assert without_trail[32, center - 16 : center - 8, 0].mean() < 70


def test_mark_inks_are_far_from_every_scene_colour_and_from_each_other():
    # A white object looked like blinking's white rays, a black background like bouncing's black floor line: errors
    # driven by the scene. Every ink must stay >= 80 (RGB distance) from object colours, mean backgrounds, other inks.
    scene = {f"object {name}": np.asarray(rgb, dtype=float) for name, rgb in TOY_COLORS.items()}
    for name in TOY_BACKGROUNDS:
        scene[f"background {name}"] = render_background(name, 64, 0).reshape(-1, 3).mean(0)
    for action, ink in TOY_MARK_INKS.items():
        ink = np.asarray(ink, dtype=float)
        others = {f"ink of {other}": np.asarray(rgb, float) for other, rgb in TOY_MARK_INKS.items() if other != action}
        for name, colour in {**scene, **others}.items():
            assert np.linalg.norm(ink - colour) >= 80, (action, name)
    assert len(set(TOY_MARK_INKS.values())) == len(TOY_MARK_INKS)


@pytest.mark.parametrize("action", TOY_ACTION_DICTIONARY)
def test_motion_marks_use_the_actions_ink_and_can_be_switched_off(action):
    spec = sample_clip_spec(np.random.default_rng(7), action, 64, 16)
    ink = np.clip(np.asarray(TOY_MARK_INKS[action], dtype=float) * spec.brightness, 0, 255)
    marked = ToyWorldConfig(noise_std=0.0, trail_length=0)
    with_marks = render_clip(spec, marked).astype(float)
    without_marks = render_clip(spec, dataclasses.replace(marked, motion_marks=False)).astype(float)
    changed = np.abs(with_marks - without_marks).max(axis=-1) > 30
    assert changed.sum() > 16 * 8, changed.sum()  # at least ~8 marked pixels per frame
    inked = (np.abs(with_marks - ink).max(axis=-1) < 12) & changed
    assert inked.sum() > 0.5 * changed.sum()  # most of what the marks change is drawn in the action's ink
    attributes = frame_attributes(spec, 3.0, marked)
    assert attributes["marks"] == TOY_MARK_DESCRIPTIONS[action]
    assert action not in attributes["marks"]  # described by appearance, never by the action's name
    assert frame_attributes(spec, 3.0, dataclasses.replace(marked, motion_marks=False))["marks"] == ""


def test_frame_attributes_describe_position_and_size():
    config = ToyWorldConfig()
    spec = ClipSpec(
        action="moving left",
        shape="star",
        color="red",
        texture="dotted",
        background="sky",
        start_x=54.0,
        start_y=10.0,
        radius=8.0,
        velocity_x=-3.0,
    )
    first, last = frame_attributes(spec, 0, config), frame_attributes(spec, 15, config)
    assert (first["horizontal"], first["vertical"]) == ("right", "top")
    assert last["horizontal"] == "left"
    assert first["color"] == "red" and first["shape"] == "star" and first["action"] == "moving left"


def test_config_and_spec_validation_name_the_bad_value():
    with pytest.raises(ValueError, match="frame_size"):
        ToyWorldConfig(frame_size=31)
    with pytest.raises(ValueError, match="num_frames"):
        ToyWorldConfig(num_frames=1)
    with pytest.raises(ValueError, match="trail_opacity"):
        ToyWorldConfig(trail_opacity=1.5)
    with pytest.raises(ValueError, match="num_train"):
        ToyWorldConfig(num_train=-1)
    with pytest.raises(ValueError, match="'jumping'"):
        sample_clip_spec(np.random.default_rng(0), "jumping", 64, 16)
    with pytest.raises(ValueError, match="'hexagon'"):
        ClipSpec(
            action="growing",
            shape="hexagon",
            color="red",
            texture="plain",
            background="sky",
            start_x=1,
            start_y=1,
            radius=3,
        )


# ----------------------------------------------------------------------------- written world


def test_split_files_follow_the_protocol_and_match_the_specs(small_world):
    directory, config, manifest = small_world
    for split in ("train", "test"):
        lines = (directory / "splits" / f"{split}.txt").read_text().splitlines()
        assert len(lines) == 10
        specs = load_world_specs(directory, split)
        for line, (path, label, spec) in zip(lines, specs):
            assert re.fullmatch(rf"videos/{split}/{split}_\d{{5}}\.mp4 \d+", line)
            assert line == f"{path} {label}"
            assert TOY_ACTION_DICTIONARY[label] == spec.action
            assert (directory / path).is_file()
        assert sorted(label for _, label, _ in specs) == list(range(10))
    names = (directory / "labels" / "actions.csv").read_text().splitlines()
    assert names[0] == "id,name" and names[1:] == [f"{i},{a}" for i, a in enumerate(TOY_ACTION_DICTIONARY)]
    heldout = (directory / "labels" / "actions_heldout.csv").read_text().splitlines()[1:]
    assert heldout == [f"{i},{TOY_HELDOUT_PHRASINGS[a]}" for i, a in enumerate(TOY_ACTION_DICTIONARY)]
    assert manifest["settings_hash"] == config.settings_hash()


def test_novel_action_clips_are_labelled_by_the_novel_actions_only(small_world):
    directory, config, _ = small_world
    novel = load_world_specs(directory, "test_novel")
    assert len(novel) == config.num_test_novel
    assert sorted(label for _, label, _ in novel) == [0, 0, 1, 1, 2, 2]  # balanced over the novel actions
    for path, label, spec in novel:
        assert path.startswith("videos/test_novel/") and TOY_NOVEL_ACTIONS[label] == spec.novel_action
        assert spec.action in TOY_ACTION_DICTIONARY  # beside a dictionary action, as in the training clips
    names = (directory / "labels" / "novel_actions.csv").read_text().splitlines()[1:]
    assert names == [f"{i},{a}" for i, a in enumerate(TOY_NOVEL_ACTIONS)]
    assert not set(TOY_NOVEL_ACTIONS) & set(TOY_ACTION_DICTIONARY)
    # the training clips' labels (used for evaluation only) never name a novel action
    assert all(TOY_ACTION_DICTIONARY[label] == spec.action for _, label, spec in load_world_specs(directory, "train"))


def test_training_clips_show_novel_actions_unlabelled_at_the_set_rate():
    config = ToyWorldConfig(seed=0, num_train=600, num_test=0, num_test_novel=0, num_frames=4, frame_size=32)
    specs = sample_split_specs(config, "train")
    shown = [spec.novel_action for spec in specs if spec.novel_action]
    assert 0.33 < len(shown) / len(specs) < 0.47  # novel_action_prob 0.4
    assert set(shown) == set(TOY_NOVEL_ACTIONS)
    none = sample_split_specs(dataclasses.replace(config, novel_action_prob=0.0), "train")
    assert not any(spec.novel_action for spec in none)
    # the secondary action has a stream of its own: the scenes themselves are those of the world without it
    assert [dataclasses.replace(s, novel_action="", novel_phase=0.0) for s in specs] == none
    with pytest.raises(ValueError, match="novel_action_prob"):
        ToyWorldConfig(novel_action_prob=1.5)
    with pytest.raises(ValueError, match="'juggling'"):
        dataclasses.replace(specs[0], novel_action="juggling")


@pytest.mark.parametrize("novel_action", TOY_NOVEL_ACTIONS)
def test_novel_actions_are_drawn_in_their_ink_and_move(novel_action):
    config = ToyWorldConfig(noise_std=0.0, trail_length=0)
    spec = sample_clip_spec(np.random.default_rng(1), "spinning", 64, 16, novel_action=novel_action)
    bare = render_clip(dataclasses.replace(spec, novel_action=""), config).astype(float)
    shown = render_clip(spec, config).astype(float)
    drawn = np.abs(shown - bare).max(axis=-1) > 40  # (T, H, W)
    assert drawn.sum(axis=(1, 2)).min() > 10  # in every frame
    ink = np.asarray(TOY_NOVEL_INKS[novel_action])
    assert np.abs(shown[drawn] - ink * spec.brightness).max(axis=-1).mean() < 30
    assert (drawn[0] != drawn[3]).sum() > 5  # it moves over the clip


def test_mp4_files_decode_to_the_rendered_frames(small_world):
    directory, config, _ = small_world
    path, _, spec = load_world_specs(directory, "test")[0]
    decoded = _decode(os.path.join(directory, path))
    assert decoded.shape == (config.num_frames, 32, 32, 3) and decoded.dtype == np.uint8
    with av.open(os.path.join(directory, path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    rendered = render_clip(spec, config).astype(float)
    assert np.abs(decoded.astype(float) - rendered).mean() < 8.0  # lossy H.264, same content


def test_cached_world_is_reused_and_conflicting_settings_are_refused(small_world):
    directory, config, manifest = small_world
    stamp = os.path.getmtime(directory / "splits" / "train.txt")
    assert generate_toy_world(directory, config) == manifest
    assert os.path.getmtime(directory / "splits" / "train.txt") == stamp
    with pytest.raises(FileExistsError, match="settings hash"):
        generate_toy_world(directory, dataclasses.replace(config, seed=4))


# ----------------------------------------------------------------------------- phrase table


def test_phrase_table_covers_the_dictionary_with_five_new_phrases_each():
    assert set(TOY_PHRASE_TABLE) == set(TOY_ACTION_DICTIONARY) == set(TOY_HELDOUT_PHRASINGS)
    dictionary_verbs = {action.split()[0] for action in TOY_ACTION_DICTIONARY}
    for action in TOY_ACTION_DICTIONARY:
        phrases = phrases_for_action(action)
        assert len(phrases) == 5 and len(set(phrases)) == 5
        for phrase in phrases:
            assert phrase not in TOY_ACTION_DICTIONARY
            assert not set(phrase.split()) & dictionary_verbs, phrase  # synonyms the dictionary lacks


def test_heldout_phrasings_are_in_neither_the_dictionary_nor_the_bags():
    bag_texts = {phrase for phrases in TOY_PHRASE_TABLE.values() for phrase in phrases}
    heldout = heldout_class_names()
    assert len(set(heldout)) == len(TOY_ACTION_DICTIONARY)
    for phrasing in heldout:
        assert phrasing not in TOY_ACTION_DICTIONARY and phrasing not in bag_texts
        assert not any(phrasing in text or text in phrasing for text in bag_texts | set(TOY_ACTION_DICTIONARY))


def test_describe_action_is_an_llm_style_answer_containing_every_phrase():
    answer = describe_action("Growing")
    assert all(phrase in answer for phrase in TOY_PHRASE_TABLE["growing"])
    assert answer.count(".") == 5
    with pytest.raises(KeyError, match="'flying'"):
        describe_action("flying")
    with pytest.raises(TypeError, match="3"):
        phrases_for_action(3)


# ----------------------------------------------------------------------------- base-model pretraining


def _mentions_any(caption, phrasings):
    return any(re.search(rf"\b{re.escape(p)}\b", caption) for p in phrasings)


def test_captions_mention_actions_only_as_often_as_asked():
    from toy_world.base_pretraining import action_phrasings, caption_frame

    config = ToyWorldConfig()
    rng = np.random.default_rng(0)
    specs = [sample_clip_spec(rng, TOY_ACTION_DICTIONARY[i % 10], 64, 16) for i in range(60)]
    attributes = [frame_attributes(spec, 3, config) for spec in specs]
    every_phrasing = {p for action in TOY_ACTION_DICTIONARY for p in action_phrasings(action)}
    never = [caption_frame(a, np.random.default_rng(i), 0.0) for i, a in enumerate(attributes)]
    assert not any(_mentions_any(c, every_phrasing) for c in never)
    always = [caption_frame(a, np.random.default_rng(i), 1.0) for i, a in enumerate(attributes)]
    assert all(_mentions_any(c, action_phrasings(a["action"])) for c, a in zip(always, attributes))
    # Objects are always described: the colour in most captions, the shape (or "shape") in all of them.
    assert sum(a["color"] in c for c, a in zip(never, attributes)) >= 45
    assert all(a["shape"] in c or "shape" in c for c, a in zip(never, attributes))


def test_second_fragments_follow_the_sentence_and_carry_the_action_phrase():
    from toy_world.base_pretraining import action_phrasings, caption_frame

    config = ToyWorldConfig()
    rng = np.random.default_rng(1)
    specs = [sample_clip_spec(rng, TOY_ACTION_DICTIONARY[i % 10], 64, 16) for i in range(40)]
    attributes = [frame_attributes(spec, 3, config) for spec in specs]
    # Off (the default of caption_frame): one sentence ending in its full stop, and the same random stream as before.
    plain = [caption_frame(a, np.random.default_rng(i), 0.3, 0.6) for i, a in enumerate(attributes)]
    assert plain == [caption_frame(a, np.random.default_rng(i), 0.3, 0.6, 0.0) for i, a in enumerate(attributes)]
    assert all(c.endswith(".") for c in plain)
    # Always on, with the action always named: the sentence ends at its full stop and the action phrase follows it.
    tailed = [caption_frame(a, np.random.default_rng(i), 1.0, 0.6, 1.0) for i, a in enumerate(attributes)]
    for caption, attrs in zip(tailed, attributes):
        sentence, tail = caption.rsplit(". ", 1)
        assert tail in action_phrasings(attrs["action"]), caption
        assert not _mentions_any(sentence, action_phrasings(attrs["action"])), caption
    # Always on, action never named: the fragment is one of the frame's own attribute words.
    tags = [caption_frame(a, np.random.default_rng(i), 0.0, 0.6, 1.0) for i, a in enumerate(attributes)]
    for caption, attrs in zip(tags, attributes):
        tail = caption.rsplit(". ", 1)[1]
        assert tail in (attrs["color"], attrs["shape"], f"{attrs['background']} background"), caption


def test_pretraining_saves_a_loadable_base_model_and_reuses_the_cache(tmp_path):
    import json

    import torch

    from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
    from toy_world.base_pretraining import SETTINGS_FILE, ToyBaseArguments, pretrain_toy_base

    args = ToyBaseArguments(
        cache_dir=str(tmp_path),
        num_images=24,
        num_probe_images=12,
        num_steps=2,
        batch_size=8,
        vision_layers=1,
        text_layers=1,
        vision_width=64,
        text_width=64,
        projection_dim=16,
        num_frames=4,
    )
    world = ToyWorldConfig(num_frames=8)
    directory = pretrain_toy_base(args, world)
    summary = json.loads((tmp_path / os.path.basename(directory) / SETTINGS_FILE).read_text())
    assert {"still_color_top1", "still_shape_top1", "still_action_top1", "final_loss"} <= set(summary)
    model = MaxiVideoCLIPModel.from_pretrained(directory).eval()
    processor = MaxiVideoProcessor.from_pretrained(directory)
    assert model.config.vision_config.image_size == args.image_size and processor.num_frames == 4
    frames = render_clip(sample_split_specs(ToyWorldConfig(num_train=1, num_test=0), "train")[0], ToyWorldConfig())
    inputs = processor(videos=[frames], text=["a photo of a growing."], return_tensors="pt")
    with torch.no_grad():
        assert model(**inputs).logits_per_video.shape == (1, 1)
    stamp = os.path.getmtime(os.path.join(directory, SETTINGS_FILE))
    assert pretrain_toy_base(args, world) == directory  # cached: nothing retrained
    assert os.path.getmtime(os.path.join(directory, SETTINGS_FILE)) == stamp
    other = pretrain_toy_base(dataclasses.replace(args, action_caption_prob=0.5), world)
    assert other != directory


def test_pretraining_arguments_are_validated():
    from toy_world.base_pretraining import ToyBaseArguments

    with pytest.raises(ValueError, match="action_caption_prob"):
        ToyBaseArguments(action_caption_prob=1.5)
    with pytest.raises(ValueError, match="second_fragment_prob"):
        ToyBaseArguments(second_fragment_prob=-0.1)
    with pytest.raises(ValueError, match="image_size"):
        ToyBaseArguments(image_size=36, patch_size=8)
    with pytest.raises(ValueError, match="vision_width"):
        ToyBaseArguments(vision_width=100)


def test_context_bias_ties_scenes_to_actions_only_when_asked():
    from toy_world.world import TOY_ACTION_CONTEXT

    biased = sample_split_specs(ToyWorldConfig(num_train=50, num_test=0, context_bias=1.0), "train")
    assert all((s.background, s.color) == TOY_ACTION_CONTEXT[s.action] for s in biased)
    assert len(set(TOY_ACTION_CONTEXT.values())) == len(TOY_ACTION_DICTIONARY)  # each action has its own scene
    unbiased = sample_split_specs(ToyWorldConfig(num_train=200, num_test=0), "train")
    typical = sum((s.background, s.color) == TOY_ACTION_CONTEXT[s.action] for s in unbiased)
    assert typical < 20  # about 200 / 42 by chance
    with pytest.raises(ValueError, match="context_bias"):
        ToyWorldConfig(context_bias=1.2)


def test_action_visibility_fades_only_the_marks_and_trail_of_otherwise_identical_scenes():
    full = ToyWorldConfig(num_train=40, num_test=0, noise_std=0.0)
    faded = dataclasses.replace(full, min_action_visibility=0.3)
    full_specs, faded_specs = sample_split_specs(full, "train"), sample_split_specs(faded, "train")
    visibility = np.array([s.action_visibility for s in faded_specs])
    assert all(s.action_visibility == 1.0 for s in full_specs)
    assert visibility.min() >= 0.3 and visibility.max() <= 1.0 and visibility.std() > 0.1
    # Drawn last: every other property of every scene is the one of the world without fading.
    assert [dataclasses.replace(s, action_visibility=1.0) for s in faded_specs] == full_specs

    spec = dataclasses.replace(sample_clip_spec(np.random.default_rng(3), "moving left", 64, 16), action_visibility=0.0)
    invisible = render_clip(spec, full)
    bare = render_clip(spec, dataclasses.replace(full, motion_marks=False, trail_length=0))
    np.testing.assert_array_equal(invisible, bare)  # visibility 0: neither marks nor trail are drawn
    clear = render_clip(dataclasses.replace(spec, action_visibility=1.0), full).astype(float)
    half = render_clip(dataclasses.replace(spec, action_visibility=0.5), full).astype(float)
    marked = np.abs(clear - bare).max(axis=-1) > 60
    assert marked.sum() > 16 * 8
    # Half visibility moves the marked pixels about half-way from the bare scene towards the full marks.
    ratio = np.abs(half - bare)[marked].sum() / np.abs(clear - bare)[marked].sum()
    assert 0.4 < ratio < 0.6, ratio


def test_action_visibility_is_validated_and_keys_the_world_hash_only_when_used():
    with pytest.raises(ValueError, match="min_action_visibility"):
        ToyWorldConfig(min_action_visibility=1.5)
    with pytest.raises(ValueError, match="action_visibility"):
        dataclasses.replace(sample_clip_spec(np.random.default_rng(0), "growing", 64, 16), action_visibility=-0.1)
    default = ToyWorldConfig()
    # The default leaves the hash of worlds made before the setting existed (and their cached base models) intact:
    # this is the hash of the demo's seed-1 world of format 5 (novel actions; format 4's was b26be031b3d2a9d2).
    assert ToyWorldConfig(seed=1, num_train=1500, num_test=300).settings_hash() == "cf7dd1ac4b1e61e0"
    assert dataclasses.replace(default, min_action_visibility=0.5).settings_hash() != default.settings_hash()


def test_clear_stills_render_the_pretraining_corpus_of_a_fully_visible_world():
    from toy_world.base_pretraining import ToyBaseArguments, render_caption_corpus, settings_hash

    args = ToyBaseArguments(seed=1, num_images=8, batch_size=8)
    clear_world = ToyWorldConfig(seed=1, num_train=1500, num_test=300, num_frames=8)
    faded_world = dataclasses.replace(clear_world, min_action_visibility=0.2)
    clear_frames, clear_captions, _ = render_caption_corpus(args, clear_world, 8)
    faded_frames, faded_captions, _ = render_caption_corpus(args, faded_world, 8)
    kept_frames, kept_captions, _ = render_caption_corpus(dataclasses.replace(args, clear_stills=True), faded_world, 8)
    assert faded_captions == clear_captions == kept_captions  # the same scenes and captions, only the ink differs
    assert not np.array_equal(faded_frames, clear_frames)
    np.testing.assert_array_equal(kept_frames, clear_frames)
    # Cache keys: the new settings enter only when used, so base models cached before they existed stay valid
    # (these are the keys of the demo's seed-1 base models of world format 5: captions describing the marks in 90%
    # of the stills, the default since 2026-12-01, and in 60%, the earlier default).
    demo_world = dataclasses.replace(clear_world, num_frames=16)
    assert settings_hash(ToyBaseArguments(seed=1), demo_world) == "86c662e9af06cd14"
    assert settings_hash(ToyBaseArguments(seed=1, mark_caption_prob=0.6), demo_world) == "abaeb920593233ca"
    faded_demo_world = dataclasses.replace(demo_world, min_action_visibility=0.2)
    keys = {
        settings_hash(ToyBaseArguments(seed=1), faded_demo_world),
        settings_hash(ToyBaseArguments(seed=1, clear_stills=True), faded_demo_world),
    }
    assert len(keys) == 2 and "86c662e9af06cd14" not in keys


# ----------------------------------------------------------------------------- novel actions in captions


def test_base_captions_name_novel_actions_as_often_as_dictionary_actions():
    from toy_world.base_pretraining import ToyBaseArguments, render_caption_corpus

    args = ToyBaseArguments(seed=0, num_images=400, batch_size=8)
    _, captions, attributes = render_caption_corpus(args, ToyWorldConfig(num_frames=8), 400)
    shown = [(c, a["novel_action"]) for c, a in zip(captions, attributes) if a["novel_action"]]
    assert 0.3 < len(shown) / len(captions) < 0.5
    named = np.mean([caption.split(".")[0].endswith(novel) or f" {novel} " in caption for caption, novel in shown])
    assert 0.15 < named < 0.45  # action_caption_prob 0.3: the base knows the names, weakly, as it knows the others
    for caption, attrs in zip(captions, attributes):
        for novel in TOY_NOVEL_ACTIONS:
            if novel != attrs["novel_action"]:
                assert novel not in caption


def test_captioner_targets_name_only_the_novel_action_and_fit_its_vocabulary():
    from toy_world.captioner import NOVEL_CAPTION_PHRASES, ToyCaptionerArguments, build_captioner, describe_still

    _, processor = build_captioner(ToyCaptionerArguments(width=64, vision_layers=1, text_layers=1), ToyWorldConfig())
    assert not {"is", *TOY_MANNERS} & set(processor.tokenizer.vocab)  # the single world's captions name no motion
    rng = np.random.default_rng(0)
    for novel in ("", *TOY_NOVEL_ACTIONS):
        spec = sample_clip_spec(rng, "moving left", 64, 16, novel_action=novel or None)
        caption = describe_still(frame_attributes(spec, 3, ToyWorldConfig()))
        assert (NOVEL_CAPTION_PHRASES.get(novel, "@") in caption) == bool(novel)
        assert "moving" not in caption and "left" not in caption  # the dictionary's motions are never described
        ids = processor.tokenizer(caption)["input_ids"]
        assert processor.tokenizer.unk_token_id not in ids
        assert processor.tokenizer.decode(ids, skip_special_tokens=True).replace(" .", ".") == caption


def test_compound_captioner_targets_name_the_manner_not_the_direction_and_spacy_reads_its_verb():
    """In the compound world a still's caption names the manner its marks show ("a red star is spinning ..."), never
    the translation; every such caption fits the vocabulary, and the real spaCy pipeline parses the manner's verb
    from it (without the "is", it reads "a red star spinning" as a noun phrase)."""
    from modeling_maxi.text_bags.verb_parsing import extract_verbs, load_spacy_pipeline
    from toy_world.captioner import ToyCaptionerArguments, build_captioner, describe_still

    world = ToyWorldConfig(compound_actions=True)
    _, processor = build_captioner(ToyCaptionerArguments(width=64, vision_layers=1, text_layers=1), world)
    nlp = load_spacy_pipeline()
    rng = np.random.default_rng(0)
    for action in TOY_COMPOUND_ACTIONS:
        translation, manner = split_compound_action(action)
        for novel in ("", "waving"):
            spec = sample_clip_spec(rng, action, 64, 16, novel_action=novel or None)
            caption = describe_still(frame_attributes(spec, 3, world))
            assert f"{spec.shape} is {manner} " in caption, caption
            assert not set(translation.split()) & set(caption.split()), caption  # the direction is never named
            assert [m for m in TOY_MANNERS if m in caption] == [manner]
            ids = processor.tokenizer(caption)["input_ids"]
            assert processor.tokenizer.unk_token_id not in ids
            assert processor.tokenizer.decode(ids, skip_special_tokens=True).replace(" .", ".") == caption
            verbs = extract_verbs([caption], nlp=nlp)
            assert manner in verbs, (caption, verbs)
            assert ("wave" in verbs) == bool(novel), (caption, verbs)


def test_toy_captioner_trains_caches_and_runs_in_the_real_caption_stage(tmp_path):
    """A few steps only: it must save a BLIP checkpoint that the build's caption stage loads and runs on an mp4."""
    from modeling_maxi.text_bags.captioning import caption_videos_batch
    from toy_world.captioner import SETTINGS_FILE, ToyCaptionerArguments, train_toy_captioner

    args = ToyCaptionerArguments(
        cache_dir=str(tmp_path), num_images=32, num_steps=3, batch_size=8, width=64, vision_layers=1, text_layers=1
    )
    world = ToyWorldConfig(seed=3, **SMALL)
    model_dir = train_toy_captioner(args, world)
    assert os.path.isfile(os.path.join(model_dir, SETTINGS_FILE))
    stamp = os.path.getmtime(os.path.join(model_dir, SETTINGS_FILE))
    assert train_toy_captioner(args, world) == model_dir  # cached
    assert os.path.getmtime(os.path.join(model_dir, SETTINGS_FILE)) == stamp
    directory = tmp_path / "world"
    generate_toy_world(directory, world)
    path = str(directory / load_world_specs(directory, "train")[0][0])
    captioned = caption_videos_batch(
        {"video_path": [path]}, captioner=model_dir, num_frames=2, image_size=64, max_new_tokens=5, decode_workers=1
    )
    assert len(captioned["captions"][0]) == 2 and all(isinstance(c, str) for c in captioned["captions"][0])


# ----------------------------------------------------------------------------- compound world


def test_compound_dictionary_lacks_six_pairs_whose_parts_it_names():
    assert len(TOY_COMPOUND_DICTIONARY) == 18 and len(TOY_NOVEL_COMPOUND_ACTIONS) == 6
    assert TOY_COMPOUND_ACTIONS == TOY_COMPOUND_DICTIONARY + TOY_NOVEL_COMPOUND_ACTIONS
    assert not set(TOY_COMPOUND_DICTIONARY) & set(TOY_NOVEL_COMPOUND_ACTIONS)
    listed_parts = [part for name in TOY_COMPOUND_DICTIONARY for part in split_compound_action(name)]
    for name in TOY_NOVEL_COMPOUND_ACTIONS:
        for part in split_compound_action(name):
            assert listed_parts.count(part) >= 2, (name, part)  # every part of a novel pair is in the dictionary
    # telling the novel pairs apart takes both parts: each shares its translation with one and its manner with another
    for name in TOY_NOVEL_COMPOUND_ACTIONS:
        translation, manner = split_compound_action(name)
        others = [split_compound_action(other) for other in TOY_NOVEL_COMPOUND_ACTIONS if other != name]
        assert [t for t, _ in others].count(translation) == 1 and [m for _, m in others].count(manner) == 1
    assert {split_compound_action(n)[1] for n in TOY_COMPOUND_DICTIONARY} == set(TOY_MANNERS)
    with pytest.raises(ValueError, match="'moving left while moving up'"):
        split_compound_action("moving left while moving up")


@pytest.mark.parametrize("action", TOY_COMPOUND_ACTIONS)
def test_compound_motion_shows_both_parts_and_stays_in_frame(action):
    translation, manner = split_compound_action(action)
    rng = np.random.default_rng(1)
    for _ in range(10):
        spec = sample_clip_spec(rng, action, frame_size=64, num_frames=16)
        assert (spec.action, spec.manner, spec.action_name) == (translation, manner, action)
        states = [object_state(spec, t, 16) for t in range(16)]
        xs, ys = np.array([s.x for s in states]), np.array([s.y for s in states])
        radii = np.array([s.radius for s in states])
        assert (xs - 1.26 * radii >= 0).all() and (xs + 1.26 * radii <= 64).all()
        assert (ys - 1.26 * radii >= 0).all() and (ys + 1.26 * radii <= 64).all()
        # the translation's path without the manner's oscillation
        path_x, path_y = spec.start_x + spec.velocity_x * np.arange(16), spec.start_y + spec.velocity_y * np.arange(16)
        direction = {"moving left": (path_x, -1), "moving right": (path_x, 1), "moving up": (path_y, -1)}
        path, sign = direction.get(translation, (path_y, 1))
        assert sign * (path[-1] - path[0]) > 12
        if manner == "growing":
            assert (np.diff(radii) > 0).all() and radii[-1] > 2 * radii[0]
        elif manner == "shrinking":
            assert (np.diff(radii) < 0).all() and radii[0] > 2 * radii[-1]
        elif manner == "spinning":
            assert abs(states[-1].rotation - states[0].rotation) > 3.0
        elif manner == "blinking":
            assert 0 < sum(s.visible for s in states) < 16
        elif manner == "bouncing":
            assert (ys <= path_y + 1e-6).all() and (path_y - ys).max() > 6
        else:  # shaking
            assert 2 < np.abs(xs - path_x).max() * 2 < 12


def test_compound_clips_carry_the_marks_of_both_parts():
    config = ToyWorldConfig(noise_std=0.0, trail_length=0)
    spec = sample_clip_spec(np.random.default_rng(2), "moving up while spinning", 64, 16)
    frame = render_clip(spec, config)[4].astype(float)
    for part in ("moving up", "spinning"):
        ink = np.asarray(TOY_MARK_INKS[part]) * spec.brightness
        assert (np.abs(frame - ink).max(axis=-1) < 20).sum() > 15, part
    marks = frame_attributes(spec, 4, config)["marks"]
    assert marks == f"{TOY_MARK_DESCRIPTIONS['moving up']} and {TOY_MARK_DESCRIPTIONS['spinning']}"


def test_compound_world_lists_the_novel_pairs_apart(tmp_path):
    config = ToyWorldConfig(seed=3, compound_actions=True, **{**SMALL, "num_train": 48, "num_test": 18})
    generate_toy_world(tmp_path, config)

    def read(name):
        return [line.split(",", 1)[1] for line in (tmp_path / "labels" / name).read_text().splitlines()[1:]]

    assert read("actions.csv") == list(TOY_COMPOUND_DICTIONARY)
    assert read("novel_compound_actions.csv") == list(TOY_NOVEL_COMPOUND_ACTIONS)
    assert read("all_compound_actions.csv") == list(TOY_COMPOUND_ACTIONS)
    assert read("actions_heldout.csv") == heldout_class_names(TOY_COMPOUND_DICTIONARY)
    train = load_world_specs(tmp_path, "train")
    assert all(TOY_COMPOUND_ACTIONS[label] == spec.action_name for _, label, spec in train)
    assert sorted(label for _, label, _ in train) == sorted(list(range(24)) * 2)  # the novel pairs shown, unlisted
    test = load_world_specs(tmp_path, "test")
    assert sorted(label for _, label, _ in test) == list(range(18))
    novel = load_world_specs(tmp_path, "test_novel_compound")
    assert sorted(label for _, label, _ in novel) == list(range(6))
    assert all(TOY_NOVEL_COMPOUND_ACTIONS[label] == spec.action_name for _, label, spec in novel)
    assert all(spec.action_name in TOY_COMPOUND_DICTIONARY for _, _, spec in load_world_specs(tmp_path, "test_novel"))
    # the world of single actions has no such split, and its cache key does not know the setting
    assert world_splits(ToyWorldConfig()) == ("train", "test", "test_novel")
    assert "compound_actions" not in settings_for_cache_key(dataclasses.asdict(ToyWorldConfig()))
    assert config.settings_hash() != dataclasses.replace(config, compound_actions=False).settings_hash()
    with pytest.raises(ValueError, match="'growing' with 'spinning'"):
        ClipSpec(**{**dataclasses.asdict(train[0][2]), "action": "growing", "manner": "spinning"})


def test_novel_pair_weight_sets_how_often_the_training_clips_show_the_novel_pairs(tmp_path):
    counts = Counter(compound_training_actions(1500, 1 / 3))
    assert {counts[name] for name in TOY_COMPOUND_DICTIONARY} == {75}  # 18 x 75 + 6 x 25 = 1500: a tenth novel
    assert {counts[name] for name in TOY_NOVEL_COMPOUND_ACTIONS} == {25}
    assert set(compound_training_actions(40, 0.0)) == set(TOY_COMPOUND_DICTIONARY)
    with pytest.raises(ValueError, match="count"):
        compound_training_actions(-1, 0.5)
    config = ToyWorldConfig(seed=3, compound_actions=True, novel_pair_weight=0.5, **{**SMALL, "num_train": 42})
    generate_toy_world(tmp_path, config)
    train = Counter(label for _, label, _ in load_world_specs(tmp_path, "train"))
    assert sum(train[label] for label in range(18, 24)) == 6 and set(train) == set(range(24))
    # 1 is the world as before the setting (every pair as often: the test above), with the same cache key
    old = ToyWorldConfig(seed=3, compound_actions=True, **{**SMALL, "num_train": 48})
    assert "novel_pair_weight" not in settings_for_cache_key(dataclasses.asdict(old))
    assert old.settings_hash() != dataclasses.replace(old, novel_pair_weight=0.5).settings_hash()
    with pytest.raises(ValueError, match="novel_pair_weight"):
        ToyWorldConfig(compound_actions=True, novel_pair_weight=1.5)
    with pytest.raises(ValueError, match="needs `compound_actions`"):
        ToyWorldConfig(novel_pair_weight=0.5)  # the world of single actions has no pairs


def test_compound_phrases_join_their_parts_phrases_and_stay_out_of_the_bags():
    name = "moving left while spinning"
    assert TOY_COMPOUND_PHRASE_TABLE[name][0] == f"{TOY_PHRASE_TABLE['moving left'][0]} while rotating"
    assert phrases_for_action(name) == TOY_COMPOUND_PHRASE_TABLE[name] and len(set(phrases_for_action(name))) == 5
    assert TOY_COMPOUND_HELDOUT_PHRASINGS[name] == "shifting toward the left while turning in circles"
    bag_phrases = {phrase for phrases in TOY_COMPOUND_PHRASE_TABLE.values() for phrase in phrases}
    assert not bag_phrases & set(TOY_COMPOUND_HELDOUT_PHRASINGS.values())
    assert all(phrase in describe_action(name) for phrase in TOY_COMPOUND_PHRASE_TABLE[name])


def test_compound_world_pretraining_captions_word_every_pair():
    from toy_world.base_pretraining import ToyBaseArguments, action_phrasings, render_caption_corpus

    assert "sliding left while rotating" in action_phrasings("moving left while spinning")
    assert len(action_phrasings("moving up while shaking")) == 7 * 7
    args = ToyBaseArguments(num_images=240, batch_size=2, action_caption_prob=1.0)
    world = ToyWorldConfig(num_frames=4, frame_size=32, compound_actions=True)
    _, captions, attributes = render_caption_corpus(args, world, 240)
    assert {a["action"] for a in attributes} == set(TOY_COMPOUND_ACTIONS)  # the novel pairs too, as on the web
    for caption, attrs in zip(captions, attributes):
        assert any(phrase in caption for phrase in action_phrasings(attrs["action"])), caption
