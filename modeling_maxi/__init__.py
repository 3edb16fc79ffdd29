# SPDX-License-Identifier: Apache-2.0
"""MAXI (MAtch, eXpand and Improve, ICCV 2023) for the Hugging Face ecosystem.

Importing this package registers `MaxiVideoCLIPConfig`, `MaxiVideoCLIPModel`, `MaxiVideoCLIPVideoProcessor` and
`MaxiVideoProcessor` with transformers' Auto classes and the `"zero-shot-video-classification"` pipeline task.
"""

from transformers import AutoConfig, AutoModel, AutoProcessor, AutoVideoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_maxi_video_clip import MaxiVideoCLIPConfig
from .dictionaries import builtin_class_list_names, load_class_names, load_prompt_templates
from .ensembling import weight_space_ensemble
from .loss import (  # the other Table-7 objectives: modeling_maxi.loss and TEXT_BAG_LOSSES
    LOSS_VARIANTS,
    TEXT_BAG_LOSSES,
    class_prompt_cross_entropy,
    distributed_text_bag_loss,
    gather_features,
    mil_nce_loss,
    text_bag_loss,
)
from .modeling_maxi_video_clip import (
    MaxiVideoCLIPModel,
    MaxiVideoCLIPOutput,
    MaxiVideoFeaturesOutput,
    average_keys_over_frames,
    pool_frame_embeddings,
)
from .pipelines import ZERO_SHOT_VIDEO_TASK, ZeroShotVideoClassificationPipeline
from .processing_maxi_video_clip import MaxiVideoProcessor
from .scoring import video_text_logits, video_text_similarity
from .video_io import VideoDecodeError, available_backends, read_video_frames, sample_frame_indices
from .video_processing_maxi import MaxiVideoCLIPVideoProcessor
from .zero_shot import LabelEmbeddingCache, label_embeddings, patch_text_similarity, zero_shot_classify

__version__ = "0.1.0"


def _register_with_transformers() -> None:
    """Registers the classes with the Auto factories, and for `save_pretrained` to write `auto_map` + code files."""
    AutoConfig.register(MaxiVideoCLIPConfig.model_type, MaxiVideoCLIPConfig, exist_ok=True)
    AutoModel.register(MaxiVideoCLIPConfig, MaxiVideoCLIPModel, exist_ok=True)
    AutoVideoProcessor.register(MaxiVideoCLIPConfig, MaxiVideoCLIPVideoProcessor, exist_ok=True)
    AutoProcessor.register(MaxiVideoCLIPConfig, MaxiVideoProcessor, exist_ok=True)
    MaxiVideoCLIPConfig.register_for_auto_class()
    MaxiVideoCLIPModel.register_for_auto_class("AutoModel")
    MaxiVideoCLIPVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    MaxiVideoProcessor.register_for_auto_class("AutoProcessor")
    if ZERO_SHOT_VIDEO_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            ZERO_SHOT_VIDEO_TASK,
            pipeline_class=ZeroShotVideoClassificationPipeline,
            pt_model=AutoModel,
            type="multimodal",
        )


_register_with_transformers()

__all__ = [
    "LOSS_VARIANTS",
    "LabelEmbeddingCache",
    "TEXT_BAG_LOSSES",
    "ZERO_SHOT_VIDEO_TASK",
    "MaxiVideoCLIPConfig",
    "MaxiVideoCLIPModel",
    "MaxiVideoCLIPOutput",
    "MaxiVideoCLIPVideoProcessor",
    "MaxiVideoFeaturesOutput",
    "MaxiVideoProcessor",
    "VideoDecodeError",
    "ZeroShotVideoClassificationPipeline",
    "available_backends",
    "average_keys_over_frames",
    "builtin_class_list_names",
    "class_prompt_cross_entropy",
    "distributed_text_bag_loss",
    "gather_features",
    "label_embeddings",
    "load_class_names",
    "load_prompt_templates",
    "mil_nce_loss",
    "patch_text_similarity",
    "pool_frame_embeddings",
    "read_video_frames",
    "sample_frame_indices",
    "text_bag_loss",
    "video_text_logits",
    "video_text_similarity",
    "weight_space_ensemble",
    "zero_shot_classify",
]
