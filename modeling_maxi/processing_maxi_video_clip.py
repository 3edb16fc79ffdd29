# SPDX-License-Identifier: Apache-2.0
"""Processor of MAXI's video CLIP: the video processor (frame sampling + CLIP's image processing of every frame) and
CLIP's tokenizer."""

import json
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoTokenizer, BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import PROCESSOR_NAME, VIDEO_PROCESSOR_NAME, cached_file

from .video_processing_maxi import (
    MaxiVideoCLIPVideoProcessor,
    VideoInput,
    check_sampling_settings,
    copy_with_settings,
)

HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
SAMPLING_SETTINGS = ("num_frames", "sampling", "video_backend")
_MISSING_OK = {"_raise_exceptions_for_missing_entries": False, "_raise_exceptions_for_connection_errors": False}


def _saved_processor_config(pretrained_model_name_or_path, hub_kwargs: dict) -> dict:
    """The checkpoint's `processor_config.json` (empty when it has none, as a plain CLIP checkpoint)."""
    path = cached_file(pretrained_model_name_or_path, PROCESSOR_NAME, **hub_kwargs, **_MISSING_OK)
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _has_video_processor(pretrained_model_name_or_path, hub_kwargs: dict, processor_config: dict) -> bool:
    """Whether the checkpoint saved a video processor (its own file, or an entry of `processor_config.json`)."""
    if "video_processor" in processor_config:
        return True
    return cached_file(pretrained_model_name_or_path, VIDEO_PROCESSOR_NAME, **hub_kwargs, **_MISSING_OK) is not None


class _VideoProcessorSetting:
    """A processor attribute that reads and writes the video processor's setting of the same name."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, processor, owner=None):
        return self if processor is None else getattr(processor.video_processor, self.name)

    def __set__(self, processor, value) -> None:
        check_sampling_settings({self.name: value})
        setattr(processor.video_processor, self.name, value)


class MaxiVideoProcessor(ProcessorMixin):
    r"""
    Prepares videos and texts for [`MaxiVideoCLIPModel`]: its [`MaxiVideoCLIPVideoProcessor`] samples `num_frames`
    frames from each video (from a file or from a decoded `(T, H, W, 3)` uint8 array) and processes every frame as
    CLIP processes an image (resize, centre crop, normalise); CLIP's tokenizer tokenises texts.

    Args:
        video_processor ([`MaxiVideoCLIPVideoProcessor`], *optional*): The video processor; made from
            `image_processor` (or with CLIP's defaults) when not given.
        tokenizer ([`CLIPTokenizer`]): CLIP's tokenizer.
        num_frames (`int`, *optional*): Frames T sampled per video (a setting of the video processor, default 16).
        sampling (`str`, *optional*): Frame sampling strategy of the video processor: `"segment"` (TSN sparse
            sampling, the default) or `"uniform"`.
        video_backend (`str`, *optional*): Decoder of video files (see [`~modeling_maxi.video_io.read_video_frames`]).
        image_processor ([`CLIPImageProcessor`], *optional*): CLIP's image processor, whose settings the video
            processor takes when `video_processor` is not given.

    A checkpoint without a video processor (a plain CLIP checkpoint such as `openai/clip-vit-base-patch16`, or a MAXI
    folder saved before MAXI had one) loads too: the video processor takes the settings of its image processor.
    """

    def __init__(
        self,
        video_processor: MaxiVideoCLIPVideoProcessor | None = None,
        tokenizer=None,
        num_frames: int | None = None,
        sampling: str | None = None,
        video_backend: str | None = None,
        **kwargs,
    ):
        settings = {"num_frames": num_frames, "sampling": sampling, "video_backend": video_backend}
        check_sampling_settings(settings)
        image_processor = kwargs.pop("image_processor", None)
        if video_processor is None:
            video_processor = (
                MaxiVideoCLIPVideoProcessor()
                if image_processor is None
                else MaxiVideoCLIPVideoProcessor.from_image_processor(image_processor)
            )
        super().__init__(copy_with_settings(video_processor, **settings), tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads the processor of a MAXI checkpoint, or of a checkpoint without a video processor (a plain CLIP
        checkpoint such as `openai/clip-vit-base-patch16`, a MAXI folder saved before MAXI had one), whose video
        processor then takes the settings of its image processor. Keyword arguments are those of
        [`~transformers.ProcessorMixin.from_pretrained`], plus the sampling settings (`num_frames`, `sampling`,
        `video_backend`), which override the saved ones."""
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        processor_config = _saved_processor_config(pretrained_model_name_or_path, hub_kwargs)
        if kwargs.get("video_processor") is not None or _has_video_processor(
            pretrained_model_name_or_path, hub_kwargs, processor_config
        ):
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        image_processor = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        tokenizer = kwargs.get("tokenizer") or AutoTokenizer.from_pretrained(
            pretrained_model_name_or_path, **hub_kwargs
        )
        settings = {key: kwargs.get(key, processor_config.get(key)) for key in SAMPLING_SETTINGS}
        video_processor = MaxiVideoCLIPVideoProcessor.from_image_processor(image_processor)
        return cls(video_processor=video_processor, tokenizer=tokenizer, **settings)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> list[str]:
        """Saves the processor (`processor_config.json`, the tokenizer files) and the video processor on its own
        (`video_preprocessor_config.json`), where `AutoVideoProcessor` and tools reading the folder look for it."""
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        return files + self.video_processor.save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    # The video processor's sampling settings, read and set (checked) through the processor.
    num_frames = _VideoProcessorSetting()
    sampling = _VideoProcessorSetting()
    video_backend = _VideoProcessorSetting()

    @property
    def image_processor(self):
        """A [`CLIPImageProcessor`] preparing single frames (or images) exactly as the video processor does."""
        return self.video_processor.to_image_processor()

    def __call__(
        self,
        videos: VideoInput | Sequence[VideoInput] | None = None,
        text: str | Sequence[str] | None = None,
        return_tensors: str | None = "pt",
        num_frames: int | None = None,
        sampling: str | None = None,
        training: bool = False,
        generator: np.random.Generator | None = None,
        padding: bool | str = True,
        truncation: bool = True,
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            videos: One video or a list of videos. A video is a file path or a `(T, H, W, 3)` uint8 array/tensor of
                decoded RGB frames (a `(B, T, H, W, 3)` array is a batch).
            text: One text or a list of texts.
            return_tensors: `"pt"` (default) for torch tensors.
            num_frames: Overrides the video processor's `num_frames`.
            sampling: Overrides the video processor's `sampling`.
            training: Random frame offsets inside segments (training-time sampling) instead of segment centres.
            generator: `numpy.random.Generator` used for training-time offsets (for reproducibility).
            padding, truncation: Passed to the tokenizer (CLIP's context is 77 tokens).

        Returns:
            [`BatchFeature`] with `pixel_values` of shape `(B, T, 3, H, W)` when videos are given, and `input_ids`,
            `attention_mask` when texts are given.
        """
        if videos is None and text is None:
            raise ValueError("MaxiVideoProcessor needs `videos`, `text` or both.")
        data = {}
        if videos is not None:
            data["pixel_values"] = self.video_processor(
                videos,
                num_frames=num_frames,
                sampling=sampling,
                training=training,
                generator=generator,
                return_tensors="pt",
            )["pixel_values"]
        if text is not None:
            if isinstance(text, str):
                text = [text]
            if not all(isinstance(t, str) for t in text):
                raise TypeError(f"`text` must be a string or a list of strings, got {text!r}.")
            tokens = self.tokenizer(list(text), padding=padding, truncation=truncation, return_tensors="pt", **kwargs)
            data.update(tokens)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def sample_videos(self, videos: VideoInput | Sequence[VideoInput], **settings) -> list[np.ndarray]:
        """
        Samples `num_frames` frames from each video: [`MaxiVideoCLIPVideoProcessor.sample_videos`] (`num_frames`,
        `sampling`, `training`, `generator`, `video_backend` as there).

        Returns:
            A list with one uint8 array of shape `(num_frames, H, W, 3)` per video.
        """
        return self.video_processor.sample_videos(videos, **settings)

    def preprocess_frames(self, videos_frames: Sequence[np.ndarray]) -> torch.Tensor:
        """
        Applies CLIP's image processing to every frame of already sampled videos.

        Args:
            videos_frames: One `(T, H, W, 3)` uint8 array per video; all videos must have the same T.

        Returns:
            `torch.FloatTensor` of shape `(B, T, 3, crop_height, crop_width)`.
        """
        return self.video_processor(list(videos_frames), do_sample_frames=False, return_tensors="pt")["pixel_values"]

    def batch_decode(self, *args, **kwargs):
        """Forwards to the tokenizer's `batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        """Forwards to the tokenizer's `decode`."""
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


__all__ = ["MaxiVideoProcessor"]
