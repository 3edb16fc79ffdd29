# SPDX-License-Identifier: Apache-2.0
"""Model loading, caching and one request's work for the MAXI Space, free of any Gradio code so tests can call it.

A request decodes the video once and runs one vision pass per model: MAXI's pass gives both its labels and the patch
tokens of the heatmaps. Label embeddings are computed once per model and label set and reused across requests.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor, VideoDecodeError, load_class_names, read_video_frames
from modeling_maxi.zero_shot import (
    LabelEmbeddingCache,
    VideoEmbeddings,
    embed_videos,
    label_embeddings,
    patch_similarity_maps,
    rank_video_labels,
)

from .config import BUILTIN_LABEL_SETS, CUSTOM_LABEL_SET, SpaceConfig
from .heatmaps import overlay_heatmaps
from .inputs import MAX_LABEL_CHARS, SpaceInputError, VideoInfo, check_labels, check_video, parse_custom_labels

logger = logging.getLogger(__name__)

LABEL_SET_CHOICES = (*BUILTIN_LABEL_SETS, CUSTOM_LABEL_SET)


class ModelLoadError(RuntimeError):
    """A checkpoint could not be loaded; the message names the model id."""


@dataclass
class LoadedModel:
    """A model in eval mode with its processor."""

    model_id: str
    model: MaxiVideoCLIPModel
    processor: MaxiVideoProcessor

    def encode(self, frames: np.ndarray, with_patches: bool = False) -> VideoEmbeddings:
        """One vision pass over already sampled frames `(T, H, W, 3)` (the model sees exactly these frames)."""
        return embed_videos(self.model, self.processor.preprocess_frames([frames]), with_patches=with_patches)

    def rank(self, encoded: VideoEmbeddings, labels: list[str], template: str, top_k: int) -> list[dict]:
        """The top-k labels of an encoded video (label embeddings from the model's cache)."""
        text_embeds = label_embeddings(self.model, self.processor, labels, template)
        return rank_video_labels(self.model, encoded.video_embeds, text_embeds, labels, top_k)[0]

    def text_embedding(self, text: str, labels: list[str], template: str) -> torch.Tensor:
        """The embedding of one text: a row of the label set's cached embeddings, else encoded for this request only
        (a one-off heatmap text takes no cache slot from the label sets)."""
        if text in labels:
            return label_embeddings(self.model, self.processor, labels, template)[labels.index(text)]
        return LabelEmbeddingCache(max_label_sets=1).text_embeddings(self.model, self.processor, [text], template)[0]


class ModelCache:
    """
    Loads each checkpoint once, on first use, and keeps it (cache keyed by model id, shared by all requests).

    Args:
        device (`str`, *optional*): Torch device; `None` picks CUDA when available, else CPU.
        max_models (`int`): How many checkpoints stay loaded at once (least recently used leaves first).
    """

    def __init__(self, device: str | None = None, max_models: int = 4):
        if not isinstance(max_models, int) or max_models < 1:
            raise ValueError(f"max_models must be a positive integer, got {max_models!r}")
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self._lock = threading.Lock()
        self._cached_load = functools.lru_cache(maxsize=max_models)(self._load)

    def get(self, model_id: str) -> LoadedModel:
        """Returns the loaded `model_id` (a Hub id or a local folder), loading it on the first call."""
        if not isinstance(model_id, str) or not model_id.strip():
            raise ValueError(f"model_id must be a non-empty string, got {model_id!r}")
        with self._lock:
            return self._cached_load(model_id)

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of the cache (misses = number of loads)."""
        return self._cached_load.cache_info()

    def _load(self, model_id: str) -> LoadedModel:
        logger.info("Loading %s on %s", model_id, self.device)
        try:
            model = MaxiVideoCLIPModel.from_pretrained(model_id)
            processor = MaxiVideoProcessor.from_pretrained(model_id)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load the model {model_id!r}: {err}") from err
        model.to(self.device).eval()
        return LoadedModel(model_id=model_id, model=model, processor=processor)


@dataclass
class Prediction:
    """What one request returns: both models' top labels and the heatmap gallery."""

    maxi_scores: dict[str, float]
    base_scores: dict[str, float]
    heatmap_label: str
    heatmaps: list[tuple[Image.Image, str]]
    video: VideoInfo
    num_labels: int
    num_frames: int


class SpacePredictor:
    """
    Runs a Space request: checks the input, classifies the video with MAXI and with the base CLIP, and draws MAXI's
    patch-to-text similarity of one label over the sampled frames.

    Args:
        config (`SpaceConfig`): Model ids, limits and display settings.
        models (`ModelCache`, *optional*): Where models come from; a new cache on `config.device` by default.
    """

    def __init__(self, config: SpaceConfig, models: ModelCache | None = None):
        if not isinstance(config, SpaceConfig):
            raise TypeError(f"config must be a SpaceConfig, got {type(config).__name__}")
        self.config = config
        self.models = models if models is not None else ModelCache(device=config.device)
        self._label_sets = functools.lru_cache(maxsize=len(BUILTIN_LABEL_SETS))(self._read_label_set)

    def resolve_labels(self, label_set: str | None, custom_labels: str | None) -> list[str]:
        """The candidate labels of a built-in set, or the custom ones when `label_set` is "Custom"; checked."""
        if label_set is not None and not isinstance(label_set, str):
            raise SpaceInputError(f"The label set must be one of {', '.join(LABEL_SET_CHOICES)}, got {label_set!r}.")
        if label_set in (None, ""):
            label_set = CUSTOM_LABEL_SET if custom_labels and custom_labels.strip() else next(iter(BUILTIN_LABEL_SETS))
        if label_set == CUSTOM_LABEL_SET:
            labels = parse_custom_labels(custom_labels)
        elif label_set in BUILTIN_LABEL_SETS:
            labels = list(self._label_sets(label_set))
        else:
            raise SpaceInputError(f"Unknown label set {label_set!r}; choose one of: {', '.join(LABEL_SET_CHOICES)}.")
        return check_labels(labels, self.config.max_labels)

    def _read_label_set(self, label_set: str) -> tuple[str, ...]:
        return tuple(load_class_names(BUILTIN_LABEL_SETS[label_set]))

    def num_frames(self) -> int:
        """Frames sampled per video: the configured number, else the MAXI processor's."""
        if self.config.num_frames is not None:
            return self.config.num_frames
        return self.models.get(self.config.model_id).processor.num_frames

    def predict(
        self,
        video_path: str | None,
        label_set: str | None,
        custom_labels: str | None = None,
        heatmap_label: str | None = None,
    ) -> Prediction:
        """
        Args:
            video_path: The uploaded or recorded video file.
            label_set: One of `LABEL_SET_CHOICES`.
            custom_labels: Labels one per line or comma-separated (used with the "Custom" set).
            heatmap_label: Text whose similarity map is drawn; empty means MAXI's top prediction.

        Raises:
            SpaceInputError: for anything wrong with the input (message meant for the user).
            ModelLoadError: when a checkpoint cannot be loaded.
        """
        info = check_video(video_path, self.config.max_file_size_bytes, self.config.max_duration_s)
        labels = self.resolve_labels(label_set, custom_labels)
        if heatmap_label is not None and not isinstance(heatmap_label, str):
            raise SpaceInputError(f"The heatmap label must be text, got {type(heatmap_label).__name__}.")
        heatmap_label = " ".join((heatmap_label or "").split())
        if len(heatmap_label) > MAX_LABEL_CHARS:
            raise SpaceInputError(
                f"The heatmap label is {len(heatmap_label)} characters long; the limit is {MAX_LABEL_CHARS}."
            )
        maxi = self.models.get(self.config.model_id)
        base = self.models.get(self.config.base_model_id)
        num_frames = self.num_frames()
        frames = self._read_frames(info, num_frames)
        template = self.config.template
        top_k = min(self.config.top_k, len(labels))
        maxi_encoded = maxi.encode(frames, with_patches=True)  # MAXI's one vision pass: labels and heatmaps
        maxi_ranked = maxi.rank(maxi_encoded, labels, template, top_k)
        base_ranked = base.rank(base.encode(frames), labels, template, top_k)
        chosen = heatmap_label or maxi_ranked[0]["label"]
        similarity = patch_similarity_maps(maxi_encoded.patch_embeds[0], maxi.text_embedding(chosen, labels, template))
        images = overlay_heatmaps(
            frames, similarity.numpy(), size=self.config.heatmap_size, alpha=self.config.heatmap_alpha
        )
        captions = [f"{chosen} · frame {index + 1}/{num_frames}" for index in range(num_frames)]
        return Prediction(
            maxi_scores={item["label"]: float(item["score"]) for item in maxi_ranked},
            base_scores={item["label"]: float(item["score"]) for item in base_ranked},
            heatmap_label=chosen,
            heatmaps=list(zip(images, captions)),
            video=info,
            num_labels=len(labels),
            num_frames=num_frames,
        )

    @staticmethod
    def _read_frames(info: VideoInfo, num_frames: int) -> np.ndarray:
        try:
            return read_video_frames(info.path, num_frames, strategy="segment")
        except (VideoDecodeError, FileNotFoundError) as err:
            reason = getattr(err, "reason", None) or "the file could not be decoded"
            name = os.path.basename(info.path)
            raise SpaceInputError(f"Could not read the video {name!r}: {reason}.") from err
