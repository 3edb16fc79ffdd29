# SPDX-License-Identifier: Apache-2.0
"""PyTorch MAXI video CLIP: CLIP applied to the frames of a video, pooled into one embedding per video.

The architecture is exactly CLIP's (no new parameters), so any CLIP checkpoint initialises it. On top of CLIP it adds
the two video options of MAXI (ICCV 2023): pooling of projected frame features (paper sec. 3.1) and the
parameter-free cross-frame attention of the supplementary material (Eq. 1, Table 10).
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import CLIPModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import CLIPAttention, image_text_contrastive_loss
from transformers.utils import ModelOutput, logging

from .configuration_maxi_video_clip import MaxiVideoCLIPConfig
from .scoring import video_text_logits

logger = logging.get_logger(__name__)


@dataclass
class MaxiVideoFeaturesOutput(BaseModelOutputWithPooling):
    """
    Output of [`MaxiVideoCLIPModel.get_video_features`]: the vision tower's output over all frames plus the projected
    video embedding.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size * num_frames, num_patches + 1, hidden_size)`):
            Last hidden states of the vision encoder for every frame (frames of a video are consecutive).
        pooler_output (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            Projected, un-normalised video embedding: the frame embeddings pooled as `config.frame_pooling` says.
            With `frame_pooling="none"` it has shape `(batch_size, num_frames, projection_dim)`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Hidden states of every vision layer, returned when `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Attention weights of every vision layer, returned when `output_attentions=True` (eager attention).
        frame_embeds (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Projected, un-normalised embedding of every frame (CLIP's image embedding of the frame).
    """

    frame_embeds: torch.FloatTensor | None = None


@dataclass
class MaxiVideoCLIPOutput(ModelOutput):
    """
    Output of [`MaxiVideoCLIPModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `return_loss=True`):
            CLIP's symmetric contrastive loss between the i-th video and the i-th text.
        logits_per_video (`torch.FloatTensor` of shape `(video_batch_size, text_batch_size)`):
            Scaled cosine similarities between video and text embeddings (`logit_scale.exp()` times the cosine).
        logits_per_text (`torch.FloatTensor` of shape `(text_batch_size, video_batch_size)`):
            Transpose of `logits_per_video`.
        text_embeds (`torch.FloatTensor` of shape `(text_batch_size, projection_dim)`):
            L2-normalised text embeddings.
        video_embeds (`torch.FloatTensor` of shape `(video_batch_size, projection_dim)`):
            L2-normalised video embeddings (`(video_batch_size, num_frames, projection_dim)` with
            `frame_pooling="none"`).
        frame_embeds (`torch.FloatTensor` of shape `(video_batch_size, num_frames, projection_dim)`):
            Projected, un-normalised embedding of every frame.
        text_model_output (`BaseModelOutputWithPooling`):
            Output of the text tower, with the projected text embedding as `pooler_output`.
        vision_model_output (`MaxiVideoFeaturesOutput`):
            Output of [`MaxiVideoCLIPModel.get_video_features`].
    """

    loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    frame_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: MaxiVideoFeaturesOutput | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(
            self[k] if k not in ("text_model_output", "vision_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


def average_keys_over_frames(keys: torch.Tensor, num_frames: int, offsets: tuple[int, ...]) -> torch.Tensor:
    """
    Temporal key averaging of the cross-frame attention (supplementary Eq. 1).

    Eq. 1 averages the scores `Q_t K_{t+i}^T` over the offsets `i`; the scores are linear in `K`, so this equals
    attention of `Q_t` against the average of the keys `K_{t+i}`. At the first and last frames only the offsets
    whose frame exists are averaged.

    Args:
        keys (`torch.Tensor` of shape `(batch_size * num_frames, seq_len, hidden_size)`):
            Projected keys, the frames of each video consecutive.
        num_frames (`int`): Number of frames T per video.
        offsets (`tuple[int, ...]`): Frame offsets I.

    Returns:
        `torch.Tensor` of the same shape: the keys of frame t replaced by the mean of the keys of frames t+i.
    """
    if keys.shape[0] % num_frames:
        raise ValueError(f"Cannot split {keys.shape[0]} frames into videos of num_frames={num_frames}.")
    per_video = keys.view(-1, num_frames, *keys.shape[1:])
    total = torch.zeros_like(per_video)
    count = keys.new_zeros(num_frames)
    for offset in offsets:
        if abs(offset) >= num_frames:
            continue
        targets = slice(max(0, -offset), num_frames - max(0, offset))
        sources = slice(max(0, offset), num_frames - max(0, -offset))
        total[:, targets] += per_video[:, sources]
        count[targets] += 1
    if bool((count == 0).any()):
        raise ValueError(f"cross_frame_offsets={offsets} leave a frame without keys for num_frames={num_frames}.")
    averaged = total / count.view(1, num_frames, *([1] * (keys.dim() - 1)))
    return averaged.view_as(keys)


class MaxiCrossFrameAttention(CLIPAttention):
    """
    CLIP attention whose keys are averaged over neighbouring frames (supplementary Eq. 1); queries and values stay
    those of the frame itself. Parameter-free: the weights are CLIP's `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    The attention itself is dispatched through the configured implementation (sdpa, eager, ...), so all of them
    give the same result.

    The frame count arrives as the `num_frames` keyword, which the vision tower passes down to every layer (and which
    gradient checkpointing replays on recomputation). During one call, a forward hook on `k_proj` replaces the
    projected keys by their frame average; CLIP's own `forward` does everything else. Do not run one model instance
    from several threads at once with different frame counts.
    """

    def __init__(self, config, offsets: tuple[int, ...]):
        super().__init__(config)
        self.offsets = tuple(offsets)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if num_frames is None or num_frames == 1:
            return super().forward(hidden_states, attention_mask, **kwargs)

        def average_projected_keys(module, args, keys):
            return average_keys_over_frames(keys, num_frames, self.offsets)

        handle = self.k_proj.register_forward_hook(average_projected_keys)
        try:
            return super().forward(hidden_states, attention_mask, **kwargs)
        finally:
            handle.remove()


class MaxiVideoCLIPModel(CLIPModel):
    r"""
    CLIP for videos (MAXI, ICCV 2023). Frames are encoded by CLIP's vision tower, projected, and pooled into one video
    embedding that is compared with CLIP text embeddings.

    `pixel_values` have shape `(batch_size, num_frames, num_channels, height, width)`; a 4-D tensor is a batch of
    single-frame videos. Every CLIP checkpoint loads into this class without missing or unexpected weights.

    Example:

    ```python
    >>> import torch
    >>> from transformers import AutoModel, AutoProcessor
    >>> import modeling_maxi  # registers the classes

    >>> model = AutoModel.from_pretrained("openai/clip-vit-base-patch16")  # or a MAXI checkpoint
    >>> processor = AutoProcessor.from_pretrained("...")
    >>> inputs = processor(videos="video.mp4", text=["a photo of a dog.", "a photo of a cat."], return_tensors="pt")
    >>> with torch.inference_mode():
    ...     probs = model(**inputs).logits_per_video.softmax(dim=-1)
    ```
    """

    config_class = MaxiVideoCLIPConfig
    config: MaxiVideoCLIPConfig
    main_input_name = "pixel_values"
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings"]

    def __init__(self, config: MaxiVideoCLIPConfig):
        super().__init__(config)
        self._install_cross_frame_attention()

    def _install_cross_frame_attention(self) -> None:
        """Swaps the attention of the last `config.cross_frame_layers` vision layers for cross-frame attention."""
        layers = self.vision_model.encoder.layers
        offsets = tuple(self.config.cross_frame_offsets)
        for layer in layers[len(layers) - self.config.cross_frame_layers :]:
            plain = layer.self_attn
            cross_frame = MaxiCrossFrameAttention(plain.config, offsets)
            cross_frame.load_state_dict(plain.state_dict())
            cross_frame.to(device=plain.q_proj.weight.device, dtype=plain.q_proj.weight.dtype)
            layer.self_attn = cross_frame

    @classmethod
    def from_clip(cls, clip_model: CLIPModel, **config_overrides) -> "MaxiVideoCLIPModel":
        """
        Converts an in-memory [`CLIPModel`] (or another `MaxiVideoCLIPModel`) into a `MaxiVideoCLIPModel` holding the
        same weights.

        Args:
            clip_model (`CLIPModel`): The model whose weights are copied.
            config_overrides: Video options to set, e.g. `frame_pooling="max", cross_frame_layers=2`.
        """
        if not isinstance(clip_model, CLIPModel):
            raise TypeError(f"`clip_model` must be a transformers CLIPModel, got {type(clip_model).__name__}.")
        config_dict = clip_model.config.to_dict()
        for key in ("model_type", "architectures", "auto_map", "transformers_version"):
            config_dict.pop(key, None)
        unknown = sorted(set(config_overrides) - set(MaxiVideoCLIPConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Unknown MaxiVideoCLIPConfig fields in config_overrides: {unknown}.")
        config_dict.update(config_overrides)
        config = MaxiVideoCLIPConfig(**config_dict)
        config._attn_implementation = clip_model.config._attn_implementation
        model = cls(config)
        model.load_state_dict(clip_model.state_dict(), strict=True)
        parameter = next(clip_model.parameters())
        return model.to(device=parameter.device, dtype=parameter.dtype).train(clip_model.training)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """
        Saves the model as [`~PreTrainedModel.save_pretrained`] does (weights, `config.json` with `auto_map`, the
        modeling files) plus the `"zero-shot-video-classification"` pipeline: a `custom_pipelines` entry in
        `config.json` and its code, so that `pipeline(task, model=folder, trust_remote_code=True)` works where
        `modeling_maxi` is not installed.
        """
        # Imported here because the pipeline module imports this one. transformers copies the files this module
        # imports relatively (this import included) next to the weights, so the pipeline's code travels with them.
        from .pipelines import custom_pipelines_entry

        # Written to the saved config only: in this process the registered pipeline stays the one in use.
        previous = self.config.__dict__.get("custom_pipelines")
        self.config.custom_pipelines = custom_pipelines_entry()
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if previous is None:
                del self.config.custom_pipelines
            else:
                self.config.custom_pipelines = previous

    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> MaxiVideoFeaturesOutput:
        r"""
        Encodes videos into projected, un-normalised embeddings.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Frames as prepared by [`MaxiVideoProcessor`]. A 4-D tensor `(batch_size, num_channels, height,
                width)` is treated as videos of one frame.

        Returns:
            [`MaxiVideoFeaturesOutput`]: `pooler_output` of shape `(batch_size, projection_dim)` (the pooled video
            embedding; `(batch_size, num_frames, projection_dim)` with `frame_pooling="none"`) and `frame_embeds` of
            shape `(batch_size, num_frames, projection_dim)`.
        """
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(1)
        if pixel_values.dim() != 5:
            raise ValueError(
                "`pixel_values` must have shape (batch_size, num_frames, channels, height, width) or "
                f"(batch_size, channels, height, width), got {tuple(pixel_values.shape)}."
            )
        batch_size, num_frames = pixel_values.shape[:2]
        if self.config.cross_frame_layers > 0:
            kwargs["num_frames"] = num_frames
        vision_outputs = self.vision_model(
            pixel_values=pixel_values.flatten(0, 1),
            interpolate_pos_encoding=interpolate_pos_encoding,
            return_dict=True,
            **kwargs,
        )
        frame_embeds = self.visual_projection(vision_outputs.pooler_output).view(batch_size, num_frames, -1)
        return MaxiVideoFeaturesOutput(
            last_hidden_state=vision_outputs.last_hidden_state,
            pooler_output=pool_frame_embeddings(frame_embeds, self.config.frame_pooling),
            hidden_states=vision_outputs.hidden_states,
            attentions=vision_outputs.attentions,
            frame_embeds=frame_embeds,
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> MaxiVideoCLIPOutput:
        r"""
        Scores every video against every text.

        Args:
            input_ids (`torch.LongTensor` of shape `(text_batch_size, sequence_length)`): Token ids of the texts.
            pixel_values (`torch.FloatTensor` of shape `(video_batch_size, num_frames, num_channels, height, width)`):
                The videos' frames.
            attention_mask (`torch.Tensor` of shape `(text_batch_size, sequence_length)`, *optional*):
                Mask of the text padding.
            return_loss (`bool`, *optional*):
                Whether to return CLIP's symmetric contrastive loss (needs `video_batch_size == text_batch_size`).

        Returns:
            [`MaxiVideoCLIPOutput`]
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("MaxiVideoCLIPModel.forward needs both `input_ids` and `pixel_values`.")
        video_outputs = self.get_video_features(
            pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs
        )
        text_outputs = self.get_text_features(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )
        video_embeds = nn.functional.normalize(video_outputs.pooler_output, dim=-1)
        text_embeds = nn.functional.normalize(text_outputs.pooler_output, dim=-1)
        # Paper Eq. 1 scaled by the learnt temperature; per-frame scores are averaged with frame_pooling="none".
        logits_per_video = video_text_logits(video_outputs.pooler_output, text_outputs.pooler_output, self.logit_scale)
        loss = None
        if return_loss:
            if logits_per_video.shape[0] != logits_per_video.shape[1]:
                raise ValueError(
                    f"return_loss needs one text per video, got {logits_per_video.shape[0]} videos and "
                    f"{logits_per_video.shape[1]} texts."
                )
            loss = image_text_contrastive_loss(logits_per_video)
        return MaxiVideoCLIPOutput(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t(),
            text_embeds=text_embeds,
            video_embeds=video_embeds,
            frame_embeds=video_outputs.frame_embeds,
            text_model_output=text_outputs,
            vision_model_output=video_outputs,
        )


def pool_frame_embeddings(frame_embeds: torch.Tensor, mode: str) -> torch.Tensor:
    """
    Pools projected frame embeddings `(batch_size, num_frames, dim)` into video embeddings.

    `"mean"` and `"max"` give `(batch_size, dim)`; `"none"` returns the frame embeddings unchanged.
    """
    if mode == "mean":
        return frame_embeds.mean(dim=1)
    if mode == "max":
        return frame_embeds.amax(dim=1)
    if mode == "none":
        return frame_embeds
    raise ValueError(f"Unknown frame pooling {mode!r}; expected 'mean', 'max' or 'none'.")


__all__ = [
    "MaxiCrossFrameAttention",
    "MaxiVideoCLIPModel",
    "MaxiVideoCLIPOutput",
    "MaxiVideoFeaturesOutput",
    "average_keys_over_frames",
    "pool_frame_embeddings",
]
