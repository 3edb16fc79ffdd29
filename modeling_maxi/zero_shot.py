"""Zero-shot video classification and patch-to-text similarity maps with a [`MaxiVideoCLIPModel`]."""

from collections.abc import Sequence

import torch
from torch import nn
from transformers import Pipeline

from .modeling_maxi_video_clip import MaxiVideoCLIPModel
from .processing_maxi_video_clip import MaxiVideoProcessor

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
        similarity = nn.functional.normalize(patch_embeds, dim=-1) @ nn.functional.normalize(text_embeds, dim=-1)[0]
    grid = int(round(similarity.shape[1] ** 0.5))
    if grid * grid != similarity.shape[1]:
        raise ValueError(f"Cannot arrange {similarity.shape[1]} patch tokens in a square grid.")
    return similarity.view(-1, grid, grid).float().cpu()


class ZeroShotVideoClassificationPipeline(Pipeline):
    """
    Zero-shot video classification pipeline (task `"zero-shot-video-classification"`, registered by `modeling_maxi`).

    Example:

    ```python
    >>> import modeling_maxi
    >>> from transformers import pipeline

    >>> classifier = pipeline("zero-shot-video-classification", model="path/to/maxi-vitb16")
    >>> classifier("video.mp4", candidate_labels=["archery", "juggling balls"])
    [{'label': 'archery', 'score': 0.93}, {'label': 'juggling balls', 'score': 0.07}]
    ```
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __call__(self, videos, **kwargs):
        """
        Args:
            videos: A video path or `(T, H, W, 3)` array, or a list of them.
            candidate_labels (`list[str]`): The label set.
            template (`str`, *optional*): Prompt template, default `"a photo of a {}."`.
            top_k (`int`, *optional*): Keep only the k best labels.
        """
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, template=None, top_k=None, **kwargs):
        preprocess_params = {}
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = candidate_labels
        if template is not None:
            preprocess_params["template"] = template
        postprocess_params = {} if top_k is None else {"top_k": top_k}
        return preprocess_params, {}, postprocess_params

    def preprocess(self, video, candidate_labels=None, template=DEFAULT_TEMPLATE):
        if candidate_labels is None:
            raise ValueError("The zero-shot-video-classification pipeline needs `candidate_labels`.")
        prompts = build_prompts(candidate_labels, template)
        inputs = dict(self.processor(videos=video, text=prompts, return_tensors="pt"))
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        inputs["candidate_labels"] = list(candidate_labels)
        return inputs

    def _forward(self, model_inputs):
        candidate_labels = model_inputs.pop("candidate_labels")
        outputs = self.model(**model_inputs)
        return {"candidate_labels": candidate_labels, "logits": outputs.logits_per_video}

    def postprocess(self, model_outputs, top_k=None):
        return rank_labels(model_outputs["logits"][0], model_outputs["candidate_labels"], top_k)


__all__ = [
    "DEFAULT_TEMPLATE",
    "ZeroShotVideoClassificationPipeline",
    "build_prompts",
    "patch_text_similarity",
    "rank_labels",
    "zero_shot_classify",
]
