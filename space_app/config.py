# SPDX-License-Identifier: Apache-2.0
"""Settings of the MAXI Space, read from environment variables so one app serves the Hub and a local folder."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_ID = "maxi-release/maxi-vitb16"
DEFAULT_BASE_MODEL_ID = "openai/clip-vit-base-patch16"

BUILTIN_LABEL_SETS: dict[str, str] = {
    "Kinetics-400": "k400",
    "UCF101": "ucf101",
    "HMDB51": "hmdb51",
}
CUSTOM_LABEL_SET = "Custom"

# The example clips shown under the inputs (drawn by scripts/make_space_examples.py, CC0, see examples/LICENSE).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


@dataclass(frozen=True)
class SpaceExample:
    """One clickable example: a clip of `EXAMPLES_DIR` and the label set (or custom labels) it is classified among."""

    file: str
    label_set: str
    custom_labels: str = ""
    heatmap_label: str = ""

    def inputs(self, examples_dir: Path = EXAMPLES_DIR) -> list[str]:
        """The values of the Space's inputs (video, label set, custom labels, heatmap label)."""
        return [str(examples_dir / self.file), self.label_set, self.custom_labels, self.heatmap_label]


EXAMPLE_CUSTOM_LABELS = "pushing cart, dribbling basketball, spinning poi, inflating balloons, juggling balls, bowling"
SPACE_EXAMPLES = (
    SpaceExample("bouncing_ball.mp4", "Kinetics-400", heatmap_label="dribbling basketball"),
    SpaceExample("sliding_square.mp4", CUSTOM_LABEL_SET, EXAMPLE_CUSTOM_LABELS),
    SpaceExample("spinning_bar.mp4", CUSTOM_LABEL_SET, EXAMPLE_CUSTOM_LABELS),
    SpaceExample("growing_disc.mp4", "Kinetics-400"),
)


@dataclass(frozen=True)
class SpaceConfig:
    """
    Everything the Space needs to know before it serves a request.

    Args:
        model_id (`str`):
            Hub id or local folder of the MAXI checkpoint (env `MAXI_MODEL_ID`).
        base_model_id (`str`):
            Hub id or local folder of the zero-shot CLIP baseline shown side by side (env `MAXI_BASE_MODEL_ID`).
            Loaded with `MaxiVideoCLIPModel.from_pretrained`, so any CLIP checkpoint works.
        max_file_size_mb (`float`):
            Largest accepted upload in megabytes (env `MAXI_MAX_FILE_SIZE_MB`).
        max_duration_s (`float`):
            Longest accepted video in seconds (env `MAXI_MAX_DURATION_S`).
        max_labels (`int`):
            Most candidate labels one request may score (env `MAXI_MAX_LABELS`); must cover the built-in sets.
        top_k (`int`):
            Number of labels shown per model (env `MAXI_TOP_K`).
        num_frames (`int`, *optional*):
            Frames sampled per video; `None` uses the MAXI checkpoint's processor setting (env `MAXI_NUM_FRAMES`).
        template (`str`):
            Prompt template with one `{}` for the class name (env `MAXI_TEMPLATE`).
        heatmap_alpha (`float`):
            Opacity of the heatmap over each frame, in [0, 1] (env `MAXI_HEATMAP_ALPHA`).
        heatmap_size (`int`):
            Side in pixels of each frame shown in the heatmap gallery (env `MAXI_HEATMAP_SIZE`).
        device (`str`, *optional*):
            Torch device; `None` picks CUDA when available, else CPU (env `MAXI_DEVICE`).
    """

    model_id: str = DEFAULT_MODEL_ID
    base_model_id: str = DEFAULT_BASE_MODEL_ID
    max_file_size_mb: float = 50.0
    max_duration_s: float = 60.0
    max_labels: int = 600
    top_k: int = 5
    num_frames: int | None = None
    template: str = "a photo of a {}."
    heatmap_alpha: float = 0.5
    heatmap_size: int = 224
    device: str | None = None

    def __post_init__(self):
        if not isinstance(self.model_id, str) or not self.model_id.strip():
            raise ValueError(f"model_id must be a non-empty string, got {self.model_id!r}")
        if not isinstance(self.base_model_id, str) or not self.base_model_id.strip():
            raise ValueError(f"base_model_id must be a non-empty string, got {self.base_model_id!r}")
        if not self.max_file_size_mb > 0:
            raise ValueError(f"max_file_size_mb must be > 0, got {self.max_file_size_mb!r}")
        if not self.max_duration_s > 0:
            raise ValueError(f"max_duration_s must be > 0, got {self.max_duration_s!r}")
        if not isinstance(self.max_labels, int) or self.max_labels < 1:
            raise ValueError(f"max_labels must be a positive integer, got {self.max_labels!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}")
        if self.num_frames is not None and (not isinstance(self.num_frames, int) or self.num_frames < 1):
            raise ValueError(f"num_frames must be a positive integer or None, got {self.num_frames!r}")
        if not isinstance(self.template, str) or self.template.count("{}") != 1:
            raise ValueError(f"template must contain exactly one '{{}}' placeholder, got {self.template!r}")
        if not 0.0 <= self.heatmap_alpha <= 1.0:
            raise ValueError(f"heatmap_alpha must be in [0, 1], got {self.heatmap_alpha!r}")
        if not isinstance(self.heatmap_size, int) or self.heatmap_size < 16:
            raise ValueError(f"heatmap_size must be an integer >= 16, got {self.heatmap_size!r}")

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> SpaceConfig:
        """Builds a config from `MAXI_*` environment variables; keyword `overrides` win over the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            key = f"MAXI_{f.name.upper()}"
            raw = environ.get(key)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse_env_value(key, raw.strip(), f.type)
        values.update(overrides)
        return cls(**values)


def _parse_env_value(key: str, raw: str, annotation: str) -> object:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {key}={raw!r} is not a valid {kind.split(' ')[0]}") from err
    return raw
