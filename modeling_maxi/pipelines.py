# SPDX-License-Identifier: Apache-2.0
"""The `"zero-shot-video-classification"` pipeline of MAXI (registered with transformers by `import modeling_maxi`)."""

from transformers import Pipeline

from .zero_shot import DEFAULT_TEMPLATE, build_prompts, rank_labels

ZERO_SHOT_VIDEO_TASK = "zero-shot-video-classification"


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


__all__ = ["ZERO_SHOT_VIDEO_TASK", "ZeroShotVideoClassificationPipeline"]
