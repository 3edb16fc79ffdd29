# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures: CLIP's real tokenizer, a tiny saved MAXI model, generated videos."""

import os

import numpy as np
import pytest
import torch

# Tests are deterministic and must not reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def clip_tokenizer():
    from tests.helpers.tiny_models import build_clip_tokenizer

    return build_clip_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny MaxiVideoCLIPModel + MaxiVideoProcessor saved with save_pretrained (shared, read-only)."""
    from tests.helpers.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_maxi"))


@pytest.fixture(scope="session")
def tiny_blip_dir(tmp_path_factory):
    """A tiny BLIP captioner (random weights) with a BERT word-piece tokenizer built from a small vocab file."""
    from tests.helpers.tiny_models import save_tiny_blip

    return save_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="session")
def moving_square_video(tmp_path_factory):
    """A real 16-frame H.264 mp4 (96x48) whose frames are distinguishable by index."""
    from tests.helpers.videos import make_moving_square_frames, write_video

    frames = make_moving_square_frames(16, (48, 96), seed=0)
    return write_video(tmp_path_factory.mktemp("videos") / "square.mp4", frames)


@pytest.fixture(scope="session")
def video_tree(tmp_path_factory):
    """7 readable videos (different content and lengths) in sub-folders, plus a corrupt and an empty file."""
    from tests.helpers.videos import write_video_tree

    return write_video_tree(tmp_path_factory.mktemp("video_tree"))


@pytest.fixture(scope="session")
def dictionary_file(tiny_model_dir, video_tree, tmp_path_factory):
    """A dictionary on which the tiny CLIP matches the `video_tree` videos to at least 3 different classes.

    A random tiny CLIP sends every video to one dominant class; removing dominant classes from a K400 slice until the
    videos' best classes differ gives a deterministic dictionary with several matched classes. Unmatched classes are
    kept as distractors (they cannot change any video's best class).
    """
    from modeling_maxi.dictionaries import load_class_names, load_prompt_templates
    from modeling_maxi.text_bags.matching import decode_videos, encode_dictionary, load_match_model

    model, processor = load_match_model(str(tiny_model_dir), "cpu", "float32")
    candidates = load_class_names("k400")[:120]
    text = encode_dictionary(model, processor, candidates, load_prompt_templates())
    paths = sorted(str(p) for p in video_tree.rglob("video_*.mp4"))
    frames, _ = decode_videos(paths, processor.num_frames, "segment")
    with torch.no_grad():
        pixel_values = processor.preprocess_frames(frames)
        video = torch.nn.functional.normalize(model.get_video_features(pixel_values=pixel_values).frame_embeds.mean(1))
    similarity = video @ text.T
    allowed = torch.ones(len(candidates), dtype=torch.bool)
    best = similarity.argmax(dim=1)
    while len(set(best.tolist())) < 3:
        allowed[torch.mode(best).values] = False
        assert allowed.sum() > 3, "the tiny CLIP cannot tell the test videos apart"
        best = similarity.masked_fill(~allowed, -2).argmax(dim=1)
    matched = sorted(set(best.tolist()))
    distractors = [index for index in range(len(candidates)) if allowed[index] and index not in matched][:4]
    path = tmp_path_factory.mktemp("dictionary") / "dictionary.txt"
    path.write_text("\n".join(candidates[index] for index in sorted(matched + distractors)) + "\n", encoding="utf-8")
    return path
