# SPDX-License-Identifier: Apache-2.0
"""Video processor of MAXI's video CLIP (`MaxiVideoCLIPVideoProcessor`, registered with `AutoVideoProcessor`).

Frames are chosen and decoded by `video_io` (TSN segment sampling, keyframe-seeking backends), then every frame goes
through CLIP's image preprocessing (shortest side resized with bicubic filtering, centre crop, rescale, normalisation
with OpenAI CLIP's mean and std), which `BaseVideoProcessor` applies to all frames of a video at once.
"""

import copy
import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import CLIPImageProcessor
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .video_io import BACKENDS, SAMPLING_STRATEGIES, read_video_frames, sample_frame_indices

VideoInput = str | os.PathLike | np.ndarray | torch.Tensor

# The image settings a CLIP image processor and this video processor share (`from_image_processor`).
CLIP_IMAGE_SETTINGS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)


class MaxiVideosKwargs(VideosKwargs, total=False):
    """
    `VideosKwargs` plus MAXI's frame-sampling settings (saved in `video_preprocessor_config.json`).

    Attributes:
        sampling (`str`): `"segment"` (TSN sparse sampling) or `"uniform"`; see `video_io.sample_frame_indices`.
        video_backend (`str`): Decoder of video files: `"auto"`, `"decord"`, `"torchcodec"` or `"pyav"`.
    """

    sampling: str | None
    video_backend: str | None


class MaxiVideoCLIPVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into the `pixel_values` of [`MaxiVideoCLIPModel`]: `num_frames` frames per video chosen by TSN
    segment sampling (decoded from the file at those frames only), each processed as CLIP processes an image.

    Args:
        num_frames (`int`, *optional*, defaults to 16): Frames T sampled per video.
        sampling (`str`, *optional*, defaults to `"segment"`): `"segment"` (the video is cut into T equal segments;
            the centre frame of each is taken, a random frame inside each with `training=True`) or `"uniform"`
            (T evenly spaced frames).
        video_backend (`str`, *optional*, defaults to `"auto"`): Decoder of video files (see
            [`~modeling_maxi.video_io.read_video_frames`]).
        do_sample_frames (`bool`, *optional*, defaults to `True`): Sample `num_frames` frames; `False` processes
            every frame of the given decoded arrays.
        **kwargs: CLIP's image settings (`size`, `crop_size`, `image_mean`, `image_std`, `resample`, ...), as for
            [`CLIPImageProcessor`].

    Example:

    ```python
    >>> import modeling_maxi  # or trust_remote_code=True
    >>> from transformers import AutoVideoProcessor

    >>> video_processor = AutoVideoProcessor.from_pretrained("path/to/maxi-checkpoint")
    >>> video_processor("video.mp4")["pixel_values"].shape
    torch.Size([1, 16, 3, 224, 224])
    ```
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 16
    sampling = "segment"
    video_backend = "auto"
    valid_kwargs = MaxiVideosKwargs
    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs):
        check_sampling_settings(kwargs)
        super().__init__(**kwargs)

    @classmethod
    def from_image_processor(cls, image_processor, **settings) -> "MaxiVideoCLIPVideoProcessor":
        """
        A video processor with the image settings of a CLIP image processor (size, crop, mean, std, ...), e.g. the
        one of a plain CLIP checkpoint.

        Args:
            image_processor ([`CLIPImageProcessor`]): The image processor whose settings are taken.
            **settings: Other settings of the video processor, e.g. `num_frames=8`.
        """
        if not hasattr(image_processor, "to_dict"):
            raise TypeError(f"`image_processor` must be an image processor, got {type(image_processor).__name__}.")
        image_settings = {
            key: value
            for key, value in image_processor.to_dict().items()
            if key in CLIP_IMAGE_SETTINGS and value is not None
        }
        return cls(**{**image_settings, **settings})

    def to_image_processor(self) -> CLIPImageProcessor:
        """A [`CLIPImageProcessor`] that prepares single frames exactly as this video processor does."""
        settings = {key: value for key, value in self.to_dict().items() if key in CLIP_IMAGE_SETTINGS}
        return CLIPImageProcessor(**settings)

    def sample_videos(
        self,
        videos: VideoInput | Sequence[VideoInput],
        num_frames: int | None = None,
        sampling: str | None = None,
        training: bool = False,
        generator: np.random.Generator | torch.Generator | None = None,
        video_backend: str | None = None,
    ) -> list[np.ndarray]:
        """
        Samples `num_frames` frames from each video: a file is decoded at the sampled frames only, a decoded
        `(T, H, W, 3)` uint8 array is indexed.

        Args:
            videos: A video file path, a `(T, H, W, 3)` uint8 array or tensor of RGB frames, a `(B, T, H, W, 3)` batch,
                or a list of them.
            num_frames, sampling, video_backend: Override the processor's settings.
            training: Random frame offsets inside the segments (training-time sampling) instead of segment centres.
            generator: `numpy.random.Generator` or `torch.Generator` drawing the training-time offsets.

        Returns:
            A list with one uint8 array of shape `(num_frames, H, W, 3)` per video.
        """
        num_frames = check_num_frames(self.num_frames if num_frames is None else num_frames)
        sampling = check_sampling(self.sampling if sampling is None else sampling)
        video_backend = check_video_backend(self.video_backend if video_backend is None else video_backend)
        sampled = []
        for video in as_video_list(videos):
            if isinstance(video, (str, os.PathLike)):
                frames = read_video_frames(
                    video, num_frames, strategy=sampling, backend=video_backend, training=training, generator=generator
                )
            else:
                array = frames_array(video)
                indices = sample_frame_indices(
                    len(array), num_frames, strategy=sampling, training=training, generator=generator
                )
                frames = array[np.asarray(indices)]
            sampled.append(frames)
        return sampled

    def preprocess(
        self,
        videos: VideoInput | Sequence[VideoInput],
        training: bool = False,
        generator: np.random.Generator | torch.Generator | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            videos: As for [`~MaxiVideoCLIPVideoProcessor.sample_videos`].
            training: Random frame offsets inside the segments instead of segment centres.
            generator: Source of the training-time offsets (for reproducible sampling).
            **kwargs: Overrides of the processor's settings (`num_frames`, `sampling`, `video_backend`,
                `do_sample_frames`, CLIP's image settings, `device`) and `return_tensors` (default `"pt"`).

        Returns:
            [`BatchFeature`] with `pixel_values`: a `(num_videos, num_frames, 3, crop_height, crop_width)` tensor
            (with `return_tensors=None`, one `(num_frames, 3, crop_height, crop_width)` tensor per video).
        """
        kwargs.setdefault("return_tensors", "pt")
        sampling_settings = {name: kwargs.pop(name, None) for name in ("num_frames", "sampling", "video_backend")}
        do_sample_frames = kwargs.pop("do_sample_frames", None)
        if do_sample_frames is None:
            do_sample_frames = self.do_sample_frames
        if do_sample_frames:
            frames = self.sample_videos(videos, training=training, generator=generator, **sampling_settings)
        else:
            frames = [_decoded_video(video) for video in as_video_list(videos)]
        if kwargs.get("return_tensors") is not None and len({len(video) for video in frames}) > 1:
            raise ValueError(
                "All videos of a batch must have the same number of frames, got "
                f"{sorted({len(video) for video in frames})}."
            )
        kwargs.setdefault("input_data_format", "channels_last")
        batch = super().preprocess(frames, do_sample_frames=False, **kwargs)
        return BatchFeature(data={"pixel_values": batch["pixel_values_videos"]})


def check_num_frames(num_frames) -> int:
    """`num_frames` as an int; `ValueError` naming the value when it is not a positive integer."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
    return int(num_frames)


def check_sampling(sampling) -> str:
    """`sampling` itself; `ValueError` naming the value when it is not a sampling strategy."""
    if sampling not in SAMPLING_STRATEGIES:
        raise ValueError(f"`sampling` must be one of {SAMPLING_STRATEGIES}, got {sampling!r}.")
    return sampling


def check_video_backend(video_backend) -> str:
    """`video_backend` itself; `ValueError` naming the value when it is no decoder name."""
    if video_backend != "auto" and video_backend not in BACKENDS:
        raise ValueError(f"`video_backend` must be 'auto' or one of {BACKENDS}, got {video_backend!r}.")
    return video_backend


def check_sampling_settings(settings) -> None:
    """Checks the `num_frames`, `sampling` and `video_backend` entries of a mapping (absent or `None` ones pass)."""
    for name, check in (
        ("num_frames", check_num_frames),
        ("sampling", check_sampling),
        ("video_backend", check_video_backend),
    ):
        if settings.get(name) is not None:
            check(settings[name])


def as_video_list(videos) -> list:
    """Normalises the `videos` argument to a list of single videos (paths or `(T, H, W, 3)` arrays)."""
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


def frames_array(video) -> np.ndarray:
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


def _decoded_video(video) -> np.ndarray:
    if isinstance(video, (str, os.PathLike)):
        raise ValueError(
            f"do_sample_frames=False needs decoded frames, got the file {os.fspath(video)!r}: files are decoded at "
            "the sampled frames only."
        )
    return frames_array(video)


def copy_with_settings(video_processor: MaxiVideoCLIPVideoProcessor, **settings) -> MaxiVideoCLIPVideoProcessor:
    """A copy of `video_processor` with some settings changed (`None` values leave a setting as it is)."""
    changed = {name: value for name, value in settings.items() if value is not None}
    if not changed:
        return video_processor
    check_sampling_settings(changed)
    variant = copy.deepcopy(video_processor)
    for name, value in changed.items():
        setattr(variant, name, value)
    return variant


__all__ = ["MaxiVideoCLIPVideoProcessor"]
