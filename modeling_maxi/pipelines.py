# SPDX-License-Identifier: Apache-2.0
"""The `"zero-shot-video-classification"` pipeline of MAXI.

`import modeling_maxi` registers the task with transformers; every saved [`MaxiVideoCLIPModel`] also carries this
file (with the files it imports) and a `custom_pipelines` entry in its `config.json`, so that
`pipeline("zero-shot-video-classification", model=<folder or Hub id>, trust_remote_code=True)` works where
`modeling_maxi` is not installed.
"""

from transformers import Pipeline

from .scoring import video_text_logits
from .zero_shot import DEFAULT_TEMPLATE, build_prompts, embed_videos, label_embeddings, rank_labels

ZERO_SHOT_VIDEO_TASK = "zero-shot-video-classification"


class ZeroShotVideoClassificationPipeline(Pipeline):
    """
    Zero-shot video classification pipeline (task `"zero-shot-video-classification"`): softmax over the cosine
    similarities of a video with the prompts of free-text labels, scaled by the model's learnt temperature.

    The label prompts are encoded once per (model, labels, template) and reused for every video and call
    ([`~modeling_maxi.zero_shot.label_embeddings`]), so a video costs one vision pass.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> classifier = pipeline("zero-shot-video-classification", model="path/to/maxi-vitb16", trust_remote_code=True)
    >>> classifier("video.mp4", candidate_labels=["archery", "juggling balls"])
    [{'label': 'archery', 'score': 0.93}, {'label': 'juggling balls', 'score': 0.07}]
    >>> classifier(["a.mp4", "b.mp4"], candidate_labels=["archery", "juggling balls"], batch_size=2, top_k=1)
    [[{'label': 'archery', 'score': 0.93}], [{'label': 'juggling balls', 'score': 0.88}]]
    ```
    """

    _load_processor = True
    _load_image_processor = False
    _load_video_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __call__(self, videos, **kwargs):
        """
        Args:
            videos: A video path or `(T, H, W, 3)` uint8 array, or a list of them.
            candidate_labels (`list[str]`): The label set.
            template (`str`, *optional*): Prompt template, default `"a photo of a {}."`.
            top_k (`int`, *optional*): Keep only the k best labels.
            batch_size (`int`, *optional*): Videos per vision pass.

        Returns:
            For one video, `[{"label", "score"}, ...]` sorted by decreasing score; for a list, one such list per video.
        """
        if kwargs.get("candidate_labels") is None and self._forward_params.get("candidate_labels") is None:
            raise ValueError("The zero-shot-video-classification pipeline needs `candidate_labels`.")
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, template=None, top_k=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unexpected arguments for zero-shot-video-classification: {sorted(kwargs)}.")
        forward_params, postprocess_params = {}, {}
        if candidate_labels is not None or template is not None:
            defaults = getattr(self, "_forward_params", {})  # the settings given when the pipeline was made
            labels = candidate_labels if candidate_labels is not None else defaults.get("candidate_labels")
            template = template if template is not None else defaults.get("template", DEFAULT_TEMPLATE)
            if labels is not None:
                build_prompts(labels, template)  # refused before any video is decoded
                forward_params["candidate_labels"] = postprocess_params["candidate_labels"] = list(labels)
            forward_params["template"] = template
        if top_k is not None:
            postprocess_params["top_k"] = top_k
        return {}, forward_params, postprocess_params

    def preprocess(self, video):
        return {"pixel_values": self.processor(videos=video)["pixel_values"]}

    def _forward(self, model_inputs, candidate_labels=None, template=DEFAULT_TEMPLATE):
        text_embeds = label_embeddings(self.model, self.processor, candidate_labels, template)
        video_embeds = embed_videos(self.model, model_inputs["pixel_values"]).video_embeds
        return {"logits": video_text_logits(video_embeds, text_embeds, self.model.logit_scale)}

    def postprocess(self, model_outputs, candidate_labels=None, top_k=None):
        return rank_labels(model_outputs["logits"][0], candidate_labels, top_k)


def custom_pipelines_entry() -> dict[str, dict]:
    """The `custom_pipelines` entry of a saved `config.json`: this pipeline, found in the folder's `pipelines.py`."""
    impl = f"{ZeroShotVideoClassificationPipeline.__module__.rsplit('.', 1)[-1]}.ZeroShotVideoClassificationPipeline"
    return {ZERO_SHOT_VIDEO_TASK: {"impl": impl, "pt": ["AutoModel"], "type": "multimodal"}}


__all__ = ["ZERO_SHOT_VIDEO_TASK", "ZeroShotVideoClassificationPipeline", "custom_pipelines_entry"]
