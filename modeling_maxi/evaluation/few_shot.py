"""Few-shot all-way fine-tuning (paper sec. 4.4, ViFi-CLIP's recipe): cross-entropy over the prompts of all classes,
logits = `logit_scale.exp() * cos(video, "a photo of a {class}.")`, both encoders trained."""

from pathlib import Path

import torch
from torch import nn

from ..video_io import VideoDecodeError
from .datasets import EvalSplit
from .zero_shot_eval import DEFAULT_TEMPLATE, VideoClassificationDataset, video_class_logits


class PromptClassifier(nn.Module):
    """
    Wraps a [`MaxiVideoCLIPModel`] as an all-way classifier over fixed class prompts, for `Trainer`.

    The prompts' token ids are buffers (not saved in checkpoints); the text embeddings are recomputed at every step,
    so the text encoder is fine-tuned with the vision encoder.

    Args:
        model: The video CLIP model to fine-tune.
        prompt_inputs: Tokenised class prompts (`input_ids`, `attention_mask`), one row per class.
        label_smoothing: Label smoothing of the cross-entropy.
    """

    def __init__(self, model: nn.Module, prompt_inputs: dict, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing!r}.")
        self.model = model
        self.label_smoothing = label_smoothing
        self.register_buffer("prompt_input_ids", prompt_inputs["input_ids"].clone(), persistent=False)
        self.register_buffer("prompt_attention_mask", prompt_inputs["attention_mask"].clone(), persistent=False)

    @classmethod
    def from_class_names(
        cls, model, processor, class_names: list[str], template: str = DEFAULT_TEMPLATE, label_smoothing: float = 0.0
    ) -> "PromptClassifier":
        """Builds the classifier with one prompt `template.format(name)` per class."""
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"`template` must be a string with exactly one '{{}}', got {template!r}.")
        if not class_names:
            raise ValueError("`class_names` is empty.")
        prompts = processor(text=[template.format(name) for name in class_names], return_tensors="pt")
        return cls(model, prompts, label_smoothing)

    @property
    def num_classes(self) -> int:
        return self.prompt_input_ids.shape[0]

    def class_embeddings(self) -> torch.Tensor:
        """`(C, D)` normalised embeddings of the class prompts (with gradients)."""
        outputs = self.model.get_text_features(
            input_ids=self.prompt_input_ids, attention_mask=self.prompt_attention_mask
        )
        features = outputs.pooler_output if hasattr(outputs, "pooler_output") else outputs
        return nn.functional.normalize(features.float(), dim=-1)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = video_class_logits(self.model, pixel_values, self.class_embeddings())
        output = {"logits": logits}
        if labels is not None:
            output["loss"] = nn.functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return output


def few_shot_train_dataset(
    split: EvalSplit, video_root: str | Path, processor, num_frames: int, skip_missing_videos: bool = False
) -> tuple[VideoClassificationDataset, list[str]]:
    """
    The training videos of a K-shot list, decoded with training-time sampling (a random frame in each segment).

    Missing files are found before training: they raise `FileNotFoundError` listing them, or with
    `skip_missing_videos=True` are left out and returned as the second value (the caller reports them).
    """
    if split.multi_label:
        raise ValueError(f"Few-shot training is single-label; {split.dataset} is multi-label.")
    root = Path(video_root)
    missing = [sample.path for sample in split.samples if not (root / sample.path).is_file()]
    if missing and not skip_missing_videos:
        raise FileNotFoundError(
            f"{len(missing)} of {len(split.samples)} training videos of {split.dataset} {split.split} are missing "
            f"under {str(root)!r}, e.g. {missing[:3]}. Pass skip_missing_videos=True to train without them."
        )
    missing_set = set(missing)
    kept = [sample for sample in split.samples if sample.path not in missing_set]
    if not kept:
        raise FileNotFoundError(f"None of the training videos of {split.dataset} {split.split} is under {str(root)!r}.")
    return VideoClassificationDataset(kept, root, processor, num_frames, training=True), missing


def few_shot_collate(items: list[dict]) -> dict:
    """Batches training videos as `pixel_values` and `labels`; an unreadable video stops training with its path."""
    for item in items:
        if item["pixel_values"] is None:
            failure = item["failure"]
            raise VideoDecodeError(failure.path, "auto", f"training video is {failure.reason}: {failure.error}")
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "labels": torch.tensor([item["labels"][0] for item in items], dtype=torch.long),
    }


__all__ = ["PromptClassifier", "few_shot_collate", "few_shot_train_dataset"]
