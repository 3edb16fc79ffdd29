# SPDX-License-Identifier: Apache-2.0
"""The score of a video for a text (paper Eq. 1): the cosine similarity of their embeddings in CLIP's joint space.

`video_text_similarity` is the one place this score is computed: the model's forward, the match stage of the
text-bag build, its refinement, the zero-shot evaluation, the few-shot classifier and the pipeline all call it.
`video_text_logits` multiplies it by the learnt logit scale, as CLIP does before a softmax.
"""

import torch
from torch import nn


def video_text_similarity(video_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    r"""
    Cosine similarity `sim(u, v) = u^T v / (|u| |v|)` of every video with every text (paper Eq. 1).

    Both inputs are L2-normalised here, so raw projected embeddings can be passed. A video given as one embedding per
    frame (`frame_pooling="none"`) is scored by the mean of its per-frame cosines, as [`MaxiVideoCLIPModel`] does;
    the paper's video embedding ϕv is the mean-pooled one, so pool first (`frame_embeds.mean(dim=1)`) to score a
    video as the paper's matching does.

    Args:
        video_embeds (`torch.Tensor` of shape `(num_videos, dim)` or `(num_videos, num_frames, dim)`):
            Video embeddings (any rows of visual embeddings in the joint space, e.g. patch tokens, work the same).
        text_embeds (`torch.Tensor` of shape `(num_texts, dim)`):
            Text (class, prompt) embeddings; moved to the videos' device.

    Returns:
        `torch.Tensor` of shape `(num_videos, num_texts)` with values in [-1, 1], in the videos' dtype.
    """
    if not isinstance(video_embeds, torch.Tensor) or video_embeds.dim() not in (2, 3):
        shape = tuple(video_embeds.shape) if isinstance(video_embeds, torch.Tensor) else type(video_embeds).__name__
        raise ValueError(
            f"`video_embeds` must be a (num_videos, dim) or (num_videos, num_frames, dim) tensor, got {shape}."
        )
    if not isinstance(text_embeds, torch.Tensor) or text_embeds.dim() != 2:
        shape = tuple(text_embeds.shape) if isinstance(text_embeds, torch.Tensor) else type(text_embeds).__name__
        raise ValueError(f"`text_embeds` must be a (num_texts, dim) tensor, got {shape}.")
    if video_embeds.shape[-1] != text_embeds.shape[-1]:
        raise ValueError(
            f"Embedding sizes differ: video_embeds has dim={video_embeds.shape[-1]}, "
            f"text_embeds has dim={text_embeds.shape[-1]}."
        )
    videos = nn.functional.normalize(video_embeds, dim=-1)
    texts = nn.functional.normalize(text_embeds, dim=-1).to(videos.device)
    similarity = videos @ texts.t()
    if similarity.dim() == 3:  # (num_videos, num_frames, num_texts): average the per-frame scores
        similarity = similarity.mean(dim=1)
    return similarity


def video_text_logits(video_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    r"""
    Logits of every video for every text: `logit_scale.exp() * video_text_similarity(video_embeds, text_embeds)`.

    Args:
        video_embeds, text_embeds: As for [`video_text_similarity`].
        logit_scale (`torch.Tensor`): The model's learnt *log* scale (`model.logit_scale`, a scalar).

    Returns:
        `torch.Tensor` of shape `(num_videos, num_texts)`, in the videos' dtype.
    """
    if not isinstance(logit_scale, torch.Tensor) or logit_scale.numel() != 1:
        raise ValueError(f"`logit_scale` must be a scalar tensor (the model's log scale), got {logit_scale!r}.")
    similarity = video_text_similarity(video_embeds, text_embeds)
    return similarity * logit_scale.exp().to(device=similarity.device, dtype=similarity.dtype)


__all__ = ["video_text_logits", "video_text_similarity"]
