# SPDX-License-Identifier: Apache-2.0
"""Zero-shot video classification and patch-to-text similarity maps with a [`MaxiVideoCLIPModel`].

The label prompts of a label set are encoded once per model and reused ([`LabelEmbeddingCache`]): classifying a
video then costs one vision pass, whatever the number of labels.
"""

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .modeling_maxi_video_clip import MaxiVideoCLIPModel
from .processing_maxi_video_clip import MaxiVideoProcessor
from .scoring import video_text_logits, video_text_similarity

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
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
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


# --------------------------------------------------------------------------------------------------------------------
# Label embeddings, computed once per (model, labels, template)
# --------------------------------------------------------------------------------------------------------------------


class _TextTowerState:
    """
    What the text embeddings of a model depend on: every parameter and buffer of its text tower and text projection
    (held by weak reference, with its storage, dtype, device and in-place version counter) and the tower's mode.

    Optimizer steps, `load_state_dict`, weight-space ensembling, `copy_`/`fill_` and every other in-place operation
    bump a tensor's version counter; `.to(...)` changes its storage, dtype or device; a swapped parameter is another
    object. Any of these makes `matches` false.
    """

    def __init__(self, model: nn.Module):
        self._training = model.text_model.training
        self._tensors = [(weakref.ref(tensor), self._describe(tensor)) for tensor in self._text_tensors(model)]

    @staticmethod
    def _text_tensors(model: nn.Module) -> list[torch.Tensor]:
        modules = (model.text_model, model.text_projection)
        return [tensor for module in modules for tensor in (*module.parameters(), *module.buffers())]

    @staticmethod
    def _describe(tensor: torch.Tensor) -> tuple:
        return tensor._version, tensor.data_ptr(), tensor.dtype, tensor.device

    def matches(self, model: nn.Module) -> bool:
        tensors = self._text_tensors(model)
        if model.text_model.training != self._training or len(tensors) != len(self._tensors):
            return False
        return all(
            reference() is tensor and described == self._describe(tensor)
            for (reference, described), tensor in zip(self._tensors, tensors)
        )


@dataclass
class _CachedLabels:
    tokenizer: weakref.ref
    vocabulary_size: int
    text_embeds: torch.Tensor


class LabelEmbeddingCache:
    """
    Text embeddings of label prompts for one model, computed once per (labels, template, tokenizer) and reused across
    videos and calls until the model's text tower changes.

    Every lookup first checks the text tower's weights (`_TextTowerState`: each tensor's identity, storage, dtype,
    device and in-place version counter, and the tower's train/eval mode); after training, ensembling, `to(dtype)`,
    `load_state_dict` or any in-place edit of a text weight the cache empties itself, so it never returns embeddings of
    other weights. Writes through `tensor.data`, which bypass PyTorch's version counters (and autograd), are the one
    change it cannot see: call `clear()` after such writes.

    Args:
        max_label_sets (`int`, *optional*, defaults to 8): Label sets kept (least recently used leave first).
    """

    def __init__(self, max_label_sets: int = 8):
        if isinstance(max_label_sets, bool) or not isinstance(max_label_sets, int) or max_label_sets < 1:
            raise ValueError(f"`max_label_sets` must be a positive integer, got {max_label_sets!r}.")
        self.max_label_sets = max_label_sets
        self._entries: OrderedDict[tuple, _CachedLabels] = OrderedDict()
        self._state: _TextTowerState | None = None
        self.num_encoded = 0  # label sets run through the text tower (a measure of reuse)

    def clear(self) -> None:
        """Forgets every cached label set."""
        self._entries.clear()
        self._state = None

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict:
        # Weak references cannot be pickled or copied: a copy (e.g. of the model holding it) starts empty.
        return {"max_label_sets": self.max_label_sets, "num_encoded": 0}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_label_sets"])

    def text_embeddings(
        self,
        model: MaxiVideoCLIPModel,
        processor: MaxiVideoProcessor,
        candidate_labels: Sequence[str],
        template: str = DEFAULT_TEMPLATE,
    ) -> torch.Tensor:
        """
        Projected (un-normalised) text embeddings of `template.format(label)` for every label, on the model's device.

        Returns:
            `torch.FloatTensor` of shape `(num_labels, projection_dim)`, as `model.get_text_features` returns them
            (the cached tensor itself: do not modify it in place).
        """
        prompts = build_prompts(candidate_labels, template)
        if self._state is None or not self._state.matches(model):
            self.clear()
            self._state = _TextTowerState(model)
        key = (tuple(candidate_labels), template)
        tokenizer = processor.tokenizer
        entry = self._entries.get(key)
        if entry is not None and entry.tokenizer() is tokenizer and entry.vocabulary_size == len(tokenizer):
            self._entries.move_to_end(key)
            return entry.text_embeds
        text_embeds = _encode_prompts(model, processor, prompts)
        self.num_encoded += 1
        self._entries[key] = _CachedLabels(weakref.ref(tokenizer), len(tokenizer), text_embeds)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_label_sets:
            self._entries.popitem(last=False)
        return text_embeds


def _encode_prompts(model: MaxiVideoCLIPModel, processor: MaxiVideoProcessor, prompts: list[str]) -> torch.Tensor:
    device = _model_device(model)
    # Plain tensors even inside a pipeline's inference mode: cached embeddings may be used anywhere afterwards.
    with torch.inference_mode(False), torch.no_grad():
        inputs = processor(text=prompts, return_tensors="pt")
        return model.get_text_features(
            input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
        ).pooler_output


def label_embedding_cache(model: MaxiVideoCLIPModel) -> LabelEmbeddingCache:
    """The [`LabelEmbeddingCache`] that lives with `model` (created on first use, dropped with the model)."""
    cache = model.__dict__.get("_label_embedding_cache")
    if cache is None:
        cache = LabelEmbeddingCache()
        model.__dict__["_label_embedding_cache"] = cache
    return cache


def label_embeddings(
    model: MaxiVideoCLIPModel,
    processor: MaxiVideoProcessor,
    candidate_labels: Sequence[str],
    template: str = DEFAULT_TEMPLATE,
) -> torch.Tensor:
    """
    Projected text embeddings `(num_labels, projection_dim)` of the label prompts, from the model's own
    [`LabelEmbeddingCache`]: computed on the first call for these labels and template, reused afterwards.
    """
    return label_embedding_cache(model).text_embeddings(model, processor, candidate_labels, template)


# --------------------------------------------------------------------------------------------------------------------
# One vision pass: the video embedding and, when asked, the patch tokens in the joint space
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class VideoEmbeddings:
    """
    What one vision pass gives (see [`embed_videos`]).

    Args:
        video_embeds (`torch.FloatTensor` of shape `(num_videos, projection_dim)`):
            Projected, un-normalised video embeddings (`(num_videos, num_frames, projection_dim)` with
            `frame_pooling="none"`).
        patch_embeds (`torch.FloatTensor` of shape `(num_videos, num_frames, grid_height, grid_width,
            projection_dim)`, *optional*): Every patch token of the last vision layer through CLIP's post-layernorm
            and visual projection, like the class token (supplementary sec. 3.1).
    """

    video_embeds: torch.Tensor
    patch_embeds: torch.Tensor | None = None


def embed_videos(model: MaxiVideoCLIPModel, pixel_values: torch.Tensor, with_patches: bool = False) -> VideoEmbeddings:
    """
    Runs the vision tower once over `pixel_values` `(num_videos, num_frames, 3, H, W)` (moved to the model's device).

    Args:
        model: A [`MaxiVideoCLIPModel`].
        pixel_values: The videos as [`MaxiVideoProcessor`] prepares them.
        with_patches: Also project the patch tokens into the joint space (for similarity maps).
    """
    device = _model_device(model)
    pixel_values = pixel_values.to(device=device, dtype=model.dtype)
    with torch.no_grad():
        outputs = model.get_video_features(pixel_values=pixel_values)
        if not with_patches:
            return VideoEmbeddings(video_embeds=outputs.pooler_output)
        patch_tokens = outputs.last_hidden_state[:, 1:, :]
        patch_embeds = model.visual_projection(model.vision_model.post_layernorm(patch_tokens))
    num_videos, num_frames = pixel_values.shape[:2]
    num_patches = patch_embeds.shape[1]
    grid = int(round(num_patches**0.5))
    if grid * grid != num_patches:
        raise ValueError(f"Cannot arrange {num_patches} patch tokens in a square grid.")
    patch_embeds = patch_embeds.view(num_videos, num_frames, grid, grid, patch_embeds.shape[-1])
    return VideoEmbeddings(video_embeds=outputs.pooler_output, patch_embeds=patch_embeds)


def rank_video_labels(
    model: MaxiVideoCLIPModel,
    video_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    candidate_labels: Sequence[str],
    top_k: int | None = None,
) -> list[list[dict]]:
    """
    Ranks the labels for every video (paper Eq. 1 scaled by the learnt temperature, softmax over the labels).

    Args:
        model: The model whose `logit_scale` scales the cosine similarities.
        video_embeds: `(num_videos, projection_dim)` video embeddings ([`embed_videos`]).
        text_embeds: `(num_labels, projection_dim)` label embeddings ([`label_embeddings`]).
        candidate_labels: The labels, in the order of `text_embeds`.
        top_k: Keep only the k best labels.

    Returns:
        One `[{"label", "score"}, ...]` list per video, sorted by decreasing probability.
    """
    if text_embeds.shape[0] != len(candidate_labels):
        raise ValueError(f"{text_embeds.shape[0]} label embeddings for {len(candidate_labels)} candidate labels.")
    with torch.no_grad():
        logits = video_text_logits(video_embeds, text_embeds, model.logit_scale)
    return [rank_labels(row, candidate_labels, top_k) for row in logits]


def patch_similarity_maps(patch_embeds: torch.Tensor, text_embed: torch.Tensor) -> torch.Tensor:
    """
    Cosine similarity of every patch token with one text embedding.

    Args:
        patch_embeds: `(num_frames, grid_height, grid_width, projection_dim)` patch tokens of one video
            ([`embed_videos`] with `with_patches=True`).
        text_embed: `(projection_dim,)` or `(1, projection_dim)` text embedding.

    Returns:
        `torch.FloatTensor` of shape `(num_frames, grid_height, grid_width)` with values in [-1, 1], on the CPU.
    """
    if patch_embeds.dim() != 4:
        raise ValueError(f"`patch_embeds` must have shape (T, h, w, dim), got {tuple(patch_embeds.shape)}.")
    grid_shape = patch_embeds.shape[:3]
    with torch.no_grad():
        similarity = video_text_similarity(patch_embeds.flatten(0, 2), text_embed.reshape(1, -1))  # (T * h * w, 1)
    return similarity.view(grid_shape).float().cpu()


# --------------------------------------------------------------------------------------------------------------------
# One-call API
# --------------------------------------------------------------------------------------------------------------------


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
    The label embeddings are computed on the first call for a label set and reused ([`label_embeddings`]).

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
    text_embeds = label_embeddings(model, processor, candidate_labels, template)
    video_embeds = embed_videos(model, processor(videos=video)["pixel_values"]).video_embeds
    return rank_video_labels(model, video_embeds[:1], text_embeds, candidate_labels, top_k)[0]


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
    text_embed = label_embeddings(model, processor, [text], "{}" if template is None else template)[0]
    patches = embed_videos(model, processor(videos=video)["pixel_values"], with_patches=True).patch_embeds
    return patch_similarity_maps(patches[0], text_embed)


__all__ = [
    "DEFAULT_TEMPLATE",
    "LabelEmbeddingCache",
    "VideoEmbeddings",
    "build_prompts",
    "embed_videos",
    "label_embedding_cache",
    "label_embeddings",
    "patch_similarity_maps",
    "patch_text_similarity",
    "rank_labels",
    "rank_video_labels",
    "zero_shot_classify",
]
