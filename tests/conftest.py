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
def moving_square_video(tmp_path_factory):
    """A real 16-frame H.264 mp4 (96x48) whose frames are distinguishable by index."""
    from tests.helpers.videos import make_moving_square_frames, write_video

    frames = make_moving_square_frames(16, (48, 96), seed=0)
    return write_video(tmp_path_factory.mktemp("videos") / "square.mp4", frames)
