# SPDX-License-Identifier: Apache-2.0
"""Builders shared by the training tests: a small text-bag dataset of generated videos, and a runner that checks how a
script of `training/` ends on a user error (no tests in this module).

Four visual classes with distinct stripe patterns (orientation / frequency survive crops, flips, colour jitter and
greyscale); each class has its own informative bag words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from datasets import Dataset

from tests.helpers.videos import write_corrupt_video, write_video

REPO = Path(__file__).resolve().parents[1]

CLASS_NAMES = ("swim", "run", "cook", "sing")
CLASS_WORDS = {
    0: ["swimming", "diving", "splashing", "floating"],
    1: ["running", "jogging", "sprinting", "racing"],
    2: ["cooking", "baking", "frying", "stirring"],
    3: ["singing", "humming", "chanting", "whistling"],
}
TEXT_BAG_COLUMNS = (
    "video_id",
    "video_path",
    "matched_label",
    "matched_text",
    "match_score",
    "llm_phrases",
    "llm_verbs",
    "captions",
    "caption_verbs",
    "text_bag",
)


def pattern_frames(label: int, num_frames: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    """Moving stripes: horizontal (0), vertical (1), diagonal (2) or a checkerboard (3), random tint per video."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    tint = rng.integers(90, 256, size=3)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        shift = 2 * t + int(rng.integers(0, 8))
        if label == 0:
            mask = ((yy + shift) // 4) % 2
        elif label == 1:
            mask = ((xx + shift) // 4) % 2
        elif label == 2:
            mask = ((xx + yy + shift) // 4) % 2
        else:
            mask = (((xx + shift) // 8) + (yy // 8)) % 2
        frames[t] = (mask[..., None] * tint + (1 - mask[..., None]) * 20).astype(np.uint8)
    return frames


def build_text_bag_dataset(
    root: str | Path, videos_per_class: int = 4, num_frames: int = 8, corrupt: int = 0
) -> Dataset:
    """Writes the videos under ``root/videos`` and returns a text-bag dataset with every published column.

    ``corrupt`` extra rows point at unreadable files (garbage bytes / a missing file).
    """
    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rows = {column: [] for column in TEXT_BAG_COLUMNS}
    index = 0
    for repeat in range(videos_per_class):
        for label, name in enumerate(CLASS_NAMES):
            relative = f"videos/{name}_{repeat}.mp4"
            write_video(root / relative, pattern_frames(label, num_frames, seed=index))
            words = CLASS_WORDS[label]
            llm = words[:3] + [name]  # the matched text itself must never be drawn into a bag
            captions = words[2:]
            rows["video_id"].append(f"{name}_{repeat}")
            rows["video_path"].append(relative)
            rows["matched_label"].append(label)
            rows["matched_text"].append(name)
            rows["match_score"].append(0.2 + 0.01 * index)
            rows["llm_phrases"].append([f"a person is {w}" for w in words[:2]])
            rows["llm_verbs"].append(llm)
            rows["captions"].append([f"a picture of {w}" for w in captions])
            rows["caption_verbs"].append(captions)
            rows["text_bag"].append(list(dict.fromkeys(words[:3] + captions)))
            index += 1
    for broken in range(corrupt):
        relative = f"videos/broken_{broken}.mp4"
        if broken % 2 == 0:
            write_corrupt_video(root / relative)
        else:
            relative = f"videos/missing_{broken}.mp4"
        rows["video_id"].append(f"broken_{broken}")
        rows["video_path"].append(relative)
        rows["matched_label"].append(broken % len(CLASS_NAMES))
        rows["matched_text"].append(CLASS_NAMES[broken % len(CLASS_NAMES)])
        rows["match_score"].append(0.9)
        for column in ("llm_phrases", "llm_verbs", "captions", "caption_verbs", "text_bag"):
            rows[column].append(["broken"])
    return Dataset.from_dict(rows)


def save_text_bag_dataset(root: str | Path, **kwargs) -> Path:
    """`build_text_bag_dataset` written as parquet under ``root/bags`` (the published layout); returns that dir."""
    dataset = build_text_bag_dataset(root, **kwargs)
    target = Path(root) / "bags"
    target.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(target / "train-00000-of-00001.parquet"))
    return target


def assert_script_fails_with_one_line(script: str, argv: list[str], *expected: str, cwd: Path | None = None) -> str:
    """Runs `python training/<script> argv` and checks a user error ends it as `run_script` promises: a non-zero exit
    status, a last stderr line `error: ...` holding every `expected` text, and no traceback. Returns that line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MAXI_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, str(REPO / "training" / script), *argv]
    result = subprocess.run(command, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for text in expected:
        assert text in lines[-1], (text, lines[-1])
    return lines[-1]


def tiny_train_args(root: Path, bags: Path, model_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """train.py flags for a CPU run of a tiny model (2 frames, bags of 3, batches of 4) on the dataset of `root`."""
    return [
        "--model_name_or_path", str(model_dir),
        "--dataset_name", str(bags),
        "--video_root", str(root),
        "--num_frames", "2",
        "--bag_size", "3",
        "--per_device_train_batch_size", "4",
        "--learning_rate", "1e-3",
        "--logging_steps", "1",
        "--report_to", "none",
        "--use_cpu", "true",
        "--disable_tqdm", "true",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip
