# SPDX-License-Identifier: Apache-2.0
"""Few-shot all-way fine-tuning (paper sec. 4.4, Table 3, ViFi-CLIP's recipe): cross-entropy over the prompts of all
classes, logits = `logit_scale.exp() * cos(video, "a photo of a {class}.")`, both encoders trained, on a protocol's
K-shot list; the result is evaluated with the zero-shot evaluation loop on the dataset's evaluation split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from ..video_io import VideoDecodeError
from .datasets import EvalSplit, get_dataset_spec, load_custom_split, load_few_shot_split, load_split
from .results import format_markdown_table, save_results
from .zero_shot_eval import DEFAULT_TEMPLATE, VideoClassificationDataset, evaluate_splits, video_class_logits

logger = logging.getLogger(__name__)


@dataclass
class FewShotTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's few-shot defaults (sec. 4.4): AdamW at 2e-6 with a cosine schedule and 10%
    warmup, batch size 64, 50 epochs; a checkpoint every epoch so that a run resumes."""

    output_dir: str | None = field(default=None, metadata={"help": "Checkpoints, final model and results go here."})
    learning_rate: float = field(default=2e-6, metadata={"help": "Peak learning rate (paper: 2e-6)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Batch size per device (paper: 64)."})
    num_train_epochs: float = field(default=50.0, metadata={"help": "Training epochs (paper: 50)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup steps, or a fraction of all steps."})
    weight_decay: float = field(default=0.001, metadata={"help": "AdamW weight decay."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every column (videos are decoded)."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints (to resume)."})
    save_total_limit: int | None = field(default=1, metadata={"help": "Checkpoints kept."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})

    def __post_init__(self):
        if self.output_dir is None:
            raise ValueError("--output-dir is required.")
        super().__post_init__()


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
    ) -> PromptClassifier:
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
        return nn.functional.normalize(outputs.pooler_output.float(), dim=-1)

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


def load_few_shot_splits(
    dataset: str | None = None,
    shots: int = 2,
    labels: str | Path | None = None,
    train_split_file: str | Path | None = None,
    eval_split_file: str | Path | None = None,
    split_camel_case: bool = False,
    fix_label_errors: bool = True,
) -> tuple[EvalSplit, EvalSplit]:
    """
    The K-shot training split and the evaluation split (same class list): a built-in dataset's (`dataset`, `shots`)
    or a custom dataset's (`labels`, `train_split_file`, `eval_split_file`).

    Args:
        dataset (`str`, *optional*): A built-in dataset with K-shot lists (ucf101, hmdb51, ssv2).
        shots (`int`, defaults to 2): K of the built-in K-shot list (2, 4, 8 or 16).
        labels, train_split_file, eval_split_file (*optional*): The custom dataset's class list and split files.
        split_camel_case (`bool`): Split CamelCase class names into words (UCF101).
        fix_label_errors (`bool`, defaults to `True`): Correct the label lists' known errors (HMDB51's swapped names).
    """
    if dataset is not None:
        if labels or train_split_file or eval_split_file:
            raise ValueError("Give either --dataset or --labels with --train-split-file/--eval-split-file, not both.")
        spec = get_dataset_spec(dataset)
        train_split = load_few_shot_split(spec.name, shots, split_camel_case, fix_label_errors)
        eval_split = load_split(spec.name, spec.few_shot_eval_split, split_camel_case, fix_label_errors)
        return train_split, eval_split
    if not (labels and train_split_file and eval_split_file):
        raise ValueError("Give --dataset, or --labels with --train-split-file and --eval-split-file.")
    train_split = load_custom_split(labels, train_split_file, False, "custom", split_camel_case)
    eval_split = load_custom_split(labels, eval_split_file, False, "custom", split_camel_case)
    return train_split, eval_split


def train_few_shot(
    classifier: PromptClassifier,
    train_dataset: VideoClassificationDataset,
    training_args: TrainingArguments,
    processor=None,
    resume_from_checkpoint: str | None = None,
) -> Trainer:
    """
    Fine-tunes `classifier` with `Trainer` (cross-entropy over the class prompts), logs and saves the training metrics
    and state, and saves the fine-tuned model (and `processor`, when given) to `training_args.output_dir` from the main
    process. Returns the trainer.
    """
    trainer = Trainer(model=classifier, args=training_args, train_dataset=train_dataset, data_collator=few_shot_collate)
    train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        classifier.model.save_pretrained(training_args.output_dir)
        if processor is not None:
            processor.save_pretrained(training_args.output_dir)
    return trainer


def evaluate_few_shot(
    classifier: PromptClassifier,
    processor,
    eval_split: EvalSplit,
    video_root: str | Path,
    stage: str,
    run_info: dict | None = None,
    output_dir: str | Path | None = None,
    **loop_options,
) -> dict:
    """
    Evaluates the classifier's model on `eval_split` with the zero-shot loop (`evaluate_splits`), and records `stage`
    (e.g. `"before_training"`) and `run_info` (model, shots, missing training videos) in the results.

    With `output_dir` the results are written there as `few_shot_<dataset>_<K>shot_<stage>.json` and `.md` (`K` is
    `run_info["shots"]`). `loop_options` are those of `evaluate_splits` (`num_frames`, `template`, `batch_size`, ...).
    """
    results = evaluate_splits(classifier.model, processor, [eval_split], video_root, **loop_options)
    results.update(run_info or {}, stage=stage)
    if output_dir is not None:
        stem = f"few_shot_{eval_split.dataset}_{results.get('shots', 'k')}shot_{stage}"
        save_results(results, output_dir, stem=stem)
        logger.info("%s:\n%s", stage, format_markdown_table(results))
    return results


__all__ = [
    "FewShotTrainingArguments",
    "PromptClassifier",
    "evaluate_few_shot",
    "few_shot_collate",
    "few_shot_train_dataset",
    "load_few_shot_splits",
    "train_few_shot",
]
