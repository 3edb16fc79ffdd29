# SPDX-License-Identifier: Apache-2.0
"""Configuration of MAXI's video CLIP (`MaxiVideoCLIPConfig`)."""

import math

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

FRAME_POOLING_MODES = ("mean", "max", "none")

# Paper (sec. 4.1): the temperature sigma of the MIL-NCE loss is 0.02, i.e. a logit scale of 1 / 0.02 = 50.
PAPER_LOGIT_SCALE_INIT = math.log(1 / 0.02)


@strict
class MaxiVideoCLIPConfig(CLIPConfig):
    r"""
    Configuration of [`MaxiVideoCLIPModel`]: a CLIP configuration (text and vision sub-configurations stay CLIP's
    own, so every CLIP checkpoint initialises the model) plus the video options of MAXI (ICCV 2023).

    Args:
        text_config (`dict` or `CLIPTextConfig`, *optional*):
            Configuration of the text tower, as for [`CLIPConfig`].
        vision_config (`dict` or `CLIPVisionConfig`, *optional*):
            Configuration of the vision tower, as for [`CLIPConfig`].
        projection_dim (`int`, *optional*, defaults to 512):
            Dimension of the joint video-text embedding space.
        logit_scale_init_value (`float`, *optional*, defaults to `log(1 / 0.02)` = 3.912):
            Initial value of the learnable log logit scale. The paper trains with a temperature sigma = 0.02.
            Checkpoints loaded with `from_pretrained` keep their trained value.
        initializer_factor (`float`, *optional*, defaults to 1.0):
            Factor applied to all weight initialisations, as for [`CLIPConfig`].
        frame_pooling (`str`, *optional*, defaults to `"mean"`):
            How projected frame embeddings `(B, T, D)` become one video embedding: `"mean"` (paper sec. 3.1, as
            ViFi-CLIP), `"max"` (element-wise max over frames) or `"none"` (no pooling: the video embedding stays
            per frame, shape `(B, T, D)`; contrastive logits then use the mean over frames).
        cross_frame_layers (`int`, *optional*, defaults to 0):
            Apply the parameter-free cross-frame attention of the supplementary (Eq. 1, Table 10) in the last N
            layers of the vision encoder. 0 turns it off; the paper tries 2 and 6.
        cross_frame_offsets (`list[int]`, *optional*, defaults to `(-1, 0, 1)`):
            Frame offsets I whose keys are averaged for the attention of frame t (Eq. 1). Must contain distinct
            integers; `(0,)` reduces to plain per-frame attention.

    Example:

    ```python
    >>> from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel

    >>> config = MaxiVideoCLIPConfig(cross_frame_layers=2)
    >>> model = MaxiVideoCLIPModel(config)
    ```"""

    model_type = "maxi_video_clip"

    logit_scale_init_value: float | int | None = PAPER_LOGIT_SCALE_INIT
    frame_pooling: str = "mean"
    cross_frame_layers: int = 0
    cross_frame_offsets: list[int] | tuple[int, ...] = (-1, 0, 1)

    def __post_init__(self, **kwargs):
        # Configs saved before the processor alone owned frame sampling hold `num_frames`; nothing reads it.
        if kwargs.pop("num_frames", None) is not None:
            logger.warning_once(
                "Ignoring `num_frames` in the MaxiVideoCLIPConfig: it is no longer a model setting. The frames per "
                "video are the video processor's (`num_frames`, saved in video_preprocessor_config.json)."
            )
        super().__post_init__(**kwargs)
        # A checkpoint's `custom_pipelines` (the pipeline code saved with it) serves processes without the package.
        # Where the package registered the same pipeline, that one is used: transformers likewise prefers registered
        # local code to a checkpoint's `auto_map`, and would otherwise insist on `trust_remote_code=True`.
        if getattr(self, "custom_pipelines", None):
            self.custom_pipelines = _pipelines_not_registered_here(self.custom_pipelines)
            if not self.custom_pipelines:
                del self.custom_pipelines

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """
        The config dict of a checkpoint, a plain CLIP one read as a MAXI config with the default video options.

        `MaxiVideoCLIPModel` is CLIP's architecture, so a `model_type: clip` config (e.g.
        `openai/clip-vit-base-patch16`) is converted on purpose, without transformers' warning about instantiating
        one model type from another; configs of any other type keep that warning.
        """
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == CLIPConfig.model_type:
            converted = {key: value for key, value in config_dict.items() if key != "architectures"}
            config_dict = {**converted, "model_type": cls.model_type}
        return config_dict, kwargs

    def validate_architecture(self):
        """Checks the video options; called by `@strict` after the typed fields were validated."""
        super().validate_architecture()
        if self.frame_pooling not in FRAME_POOLING_MODES:
            raise ValueError(f"`frame_pooling` must be one of {FRAME_POOLING_MODES}, got {self.frame_pooling!r}.")
        num_vision_layers = self.vision_config.num_hidden_layers
        if isinstance(self.cross_frame_layers, bool) or not 0 <= self.cross_frame_layers <= num_vision_layers:
            raise ValueError(
                f"`cross_frame_layers` must be between 0 and the number of vision layers ({num_vision_layers}), "
                f"got {self.cross_frame_layers!r}."
            )
        offsets = list(self.cross_frame_offsets)
        if not offsets or any(isinstance(o, bool) or not isinstance(o, int) for o in offsets):
            raise ValueError(f"`cross_frame_offsets` must be a non-empty list of integers, got {offsets!r}.")
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"`cross_frame_offsets` must not repeat an offset, got {offsets!r}.")


def _pipelines_not_registered_here(custom_pipelines: dict) -> dict:
    """The entries of a `custom_pipelines` mapping whose task is not registered in this process with a pipeline class
    of the same name."""
    from transformers.pipelines import PIPELINE_REGISTRY

    registered = PIPELINE_REGISTRY.get_supported_tasks()
    kept = {}
    for task, info in custom_pipelines.items():
        class_name = str(info.get("impl", "")).rsplit(".", 1)[-1] if isinstance(info, dict) else None
        if task in registered and PIPELINE_REGISTRY.check_task(task)[1]["impl"].__name__ == class_name:
            continue
        kept[task] = info
    return kept


__all__ = ["MaxiVideoCLIPConfig"]
