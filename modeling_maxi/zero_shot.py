# SPDX-License-Identifier: Apache-2.0
"""Zero-shot video classification and patch-to-text similarity maps with a [`MaxiVideoCLIPModel`]."""

from collections.abc import Sequence

import torch
from torch import nn

from .modeling_maxi_video_clip import MaxiVideoCLIPModel
from .processing_maxi_video_clip import MaxiVideoProcessor
from .scoring import video_text_similarity

DEFAULT_TEMPLATE = "a photo of a {}."


def build_prompts(candidate_labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """
    Checks the labels and the template and returns one prompt per label.

    Raises:
        ValueError: on an empty label list, an empty or repeated label, or a template without exactly one `{}`.
    """
    if isinstance(candidate_labels, str):
        raise ValueError(f"`candidate_labels` must be a list of labels, not the single string {candidate_labels!r}.")
    labels = list(candidate_labels)
    if not labels:
        raise ValueError("`candidate_labels` is empty: give at least one label.")
    bad = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if bad:
        raise ValueError(f"Every candidate label must be a non-empty string, got {bad[:3]!r}.")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"Candidate labels must be distinct, these repeat: {repeated[:5]!r}.")
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"`template` must contain exactly one '{{}}', got {template!r}.")
    return [template.format(label) for label in labels]


def rank_labels(logits: torch.Tensor, candidate_labels: Sequence[str], top_k: int | None = None) -> list[dict]:
    """Softmax over one video's logits `(num_labels,)`; returns `[{"label", "score"}]` sorted by decreasing score."""
    probabilities = logits.float().softmax(dim=-1).tolist()
    ranked = sorted(zip(candidate_labels, probabilities), key=lambda pair: -pair[1])
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
        ranked = ranked[:top_k]
    return [{"label": label, "score": score} for label, score in ranked]


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def zero_shot_classify(
    model: MaxiVideoCLIPModel,
    processor: MaxiVideoProcessor,
    video,
    candidate_labels: Sequence[str],
    template: str = DEFAULT_TEMPLATE,
    top_k: int | None = None,
) -> list[dict]:
    """
    Classifies one video among free-text labels (single prompt, single view, as the paper's evaluation protocol).

    Args:
        model: A [`MaxiVideoCLIPModel`].
        processor: Its [`MaxiVideoProcessor`].
        video: A video file path or a `(T, H, W, 3)` uint8 array of frames.
        candidate_labels: The label set, e.g. `["archery", "juggling balls"]`.
        template: Prompt template with one `{}` for the label.
        top_k: Keep only the k best labels.

    Returns:
        `[{"label": str, "score": float}, ...]` sorted by decreasing probability (softmax over the labels).
    """
    prompts = build_prompts(candidate_labels, template)
    inputs = processor(videos=video, text=prompts, return_tensors="pt")
    device = _model_device(model)
    with torch.inference_mode():
        outputs = model(**{key: value.to(device) for key, value in inputs.items()})
    return rank_labels(outputs.logits_per_video[0], candidate_labels, top_k)


def patch_text_similarity(
    model: MaxiVideoCLIPModel,
    processor: MaxiVideoProcessor,
    video,
    text: str,
    template: str | None = DEFAULT_TEMPLATE,
) -> torch.Tensor:
    """
    Cosine similarity between every patch token of every sampled frame and a text (supplementary sec. 3.1): the
    patch tokens of the last vision layer go through CLIP's post-layernorm and visual projection, like the class token.

    Args:
        model: A [`MaxiVideoCLIPModel`].
        processor: Its [`MaxiVideoProcessor`].
        video: A video file path or a `(T, H, W, 3)` uint8 array.
        text: A label (put into `template`) or, with `template=None`, the full text.
        template: Prompt template with one `{}`, or `None` to use `text` as is.

    Returns:
        `torch.FloatTensor` of shape `(num_frames, grid_height, grid_width)` with values in [-1, 1].
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty string, got {text!r}.")
    prompt = text if template is None else build_prompts([text], template)[0]
    inputs = processor(videos=video, text=[prompt], return_tensors="pt")
    device = _model_device(model)
    with torch.inference_mode():
        video_outputs = model.get_video_features(pixel_values=inputs["pixel_values"].to(device))
        text_embeds = model.get_text_features(
            input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
        ).pooler_output
        patch_tokens = video_outputs.last_hidden_state[:, 1:, :]
        patch_embeds = model.visual_projection(model.vision_model.post_layernorm(patch_tokens))
        num_frames, num_patches, _ = patch_embeds.shape
        similarity = video_text_similarity(patch_embeds.flatten(0, 1), text_embeds)  # (T * P, 1)
    grid = int(round(num_patches**0.5))
    if grid * grid != num_patches:
        raise ValueError(f"Cannot arrange {num_patches} patch tokens in a square grid.")
    return similarity.view(num_frames, grid, grid).float().cpu()


__all__ = [
    "DEFAULT_TEMPLATE",
    "build_prompts",
    "patch_text_similarity",
    "rank_labels",
    "zero_shot_classify",
]
