# SPDX-License-Identifier: Apache-2.0
"""Processor of MAXI's video CLIP: frame sampling + CLIP image processing for videos, CLIP tokenisation for text."""

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import logging

from .video_io import SAMPLING_STRATEGIES, read_video_frames, sample_frame_indices

logger = logging.get_logger(__name__)

VideoInput = str | os.PathLike | np.ndarray | torch.Tensor


class MaxiVideoProcessor(ProcessorMixin):
    r"""
    Prepares videos and texts for [`MaxiVideoCLIPModel`]: samples `num_frames` frames from each video (from a file
    or from a decoded `(T, H, W, 3)` uint8 array), runs CLIP's image processor on every frame (resize, centre crop,
    normalise) and tokenises texts with CLIP's tokenizer.

    Args:
        image_processor ([`CLIPImageProcessor`]): CLIP's image processor, applied to every frame.
        tokenizer ([`CLIPTokenizer`]): CLIP's tokenizer.
        num_frames (`int`, *optional*, defaults to 16): Frames T sampled per video.
        sampling (`str`, *optional*, defaults to `"segment"`): Frame sampling strategy: `"segment"` (TSN sparse
            sampling: the video is cut into T equal segments; the centre frame of each is taken at evaluation and a
            random frame inside each when `training=True`) or `"uniform"` (T evenly spaced frames).
        video_backend (`str`, *optional*, defaults to `"auto"`): Decoder for video files (see
            [`~modeling_maxi.video_io.read_video_frames`]).
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_frames: int = 16,
        sampling: str = "segment",
        video_backend: str = "auto",
        **kwargs,
    ):
        _check_num_frames(num_frames)
        _check_sampling(sampling)
        self.num_frames = num_frames
        self.sampling = sampling
        self.video_backend = video_backend
        super().__init__(image_processor, tokenizer, **kwargs)

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
            num_frames: Overrides the processor's `num_frames`.
            sampling: Overrides the processor's `sampling`.
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
            frames = self.sample_videos(
                videos, num_frames=num_frames, sampling=sampling, training=training, generator=generator
            )
            data["pixel_values"] = self.preprocess_frames(frames)
        if text is not None:
            if isinstance(text, str):
                text = [text]
            if not all(isinstance(t, str) for t in text):
                raise TypeError(f"`text` must be a string or a list of strings, got {text!r}.")
            tokens = self.tokenizer(list(text), padding=padding, truncation=truncation, return_tensors="pt", **kwargs)
            data.update(tokens)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def sample_videos(
        self,
        videos: VideoInput | Sequence[VideoInput],
        num_frames: int | None = None,
        sampling: str | None = None,
        training: bool = False,
        generator: np.random.Generator | None = None,
    ) -> list[np.ndarray]:
        """
        Samples `num_frames` frames from each video.

        Returns:
            A list with one uint8 array of shape `(num_frames, H, W, 3)` per video.
        """
        num_frames = self.num_frames if num_frames is None else num_frames
        sampling = self.sampling if sampling is None else sampling
        _check_num_frames(num_frames)
        _check_sampling(sampling)
        sampled = []
        for video in _as_video_list(videos):
            if isinstance(video, (str, os.PathLike)):
                frames = read_video_frames(
                    video,
                    num_frames,
                    strategy=sampling,
                    backend=self.video_backend,
                    training=training,
                    generator=generator,
                )
            else:
                array = _frames_array(video)
                indices = sample_frame_indices(
                    len(array), num_frames, strategy=sampling, training=training, generator=generator
                )
                frames = array[np.asarray(indices)]
            sampled.append(frames)
        return sampled

    def preprocess_frames(self, videos_frames: Sequence[np.ndarray]) -> torch.Tensor:
        """
        Applies CLIP's image processing to every frame.

        Args:
            videos_frames: One `(T, H, W, 3)` uint8 array per video; all videos must have the same T.

        Returns:
            `torch.FloatTensor` of shape `(B, T, 3, crop_height, crop_width)`.
        """
        lengths = {len(frames) for frames in videos_frames}
        if len(lengths) != 1:
            raise ValueError(f"All videos of a batch must have the same number of frames, got {sorted(lengths)}.")
        num_frames = lengths.pop()
        stacked = torch.from_numpy(np.concatenate([np.asarray(f) for f in videos_frames])).permute(0, 3, 1, 2)
        pixel_values = self.image_processor(images=list(stacked), return_tensors="pt")["pixel_values"]
        return pixel_values.view(len(videos_frames), num_frames, *pixel_values.shape[1:])

    def batch_decode(self, *args, **kwargs):
        """Forwards to the tokenizer's `batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        """Forwards to the tokenizer's `decode`."""
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


def _check_num_frames(num_frames) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")


def _check_sampling(sampling) -> None:
    if sampling not in SAMPLING_STRATEGIES:
        raise ValueError(f"`sampling` must be one of {SAMPLING_STRATEGIES}, got {sampling!r}.")


def _as_video_list(videos) -> list:
    """Normalises the `videos` argument to a list of single videos."""
    if isinstance(videos, (str, os.PathLike)):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim == 5:
            return list(videos)
        raise ValueError(f"A video array must have shape (T, H, W, 3) or (B, T, H, W, 3), got {tuple(videos.shape)}.")
    if isinstance(videos, Sequence) and len(videos) > 0:
        return list(videos)
    raise TypeError(f"`videos` must be a path, a (T, H, W, 3) uint8 array or a non-empty list of them, got {videos!r}.")


def _frames_array(video) -> np.ndarray:
    """Checks a decoded video and returns it as a uint8 numpy array `(T, H, W, 3)`."""
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray):
        raise TypeError(f"A video must be a path or a (T, H, W, 3) array, got {type(video).__name__}.")
    if video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
        raise ValueError(f"A decoded video must have shape (T, H, W, 3) with T >= 1, got {tuple(video.shape)}.")
    if video.dtype != np.uint8:
        raise ValueError(f"A decoded video must be uint8 RGB, got dtype {video.dtype}.")
    return video


__all__ = ["MaxiVideoProcessor"]
