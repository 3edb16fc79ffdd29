"""Few-shot all-way action recognition (paper sec. 4.4, Table 3): fine-tunes a MAXI (or any CLIP) checkpoint on the
protocol's K-shot list `train1_few_shot_K.txt` with cross-entropy over the class prompts (ViFi-CLIP style), then
evaluates it with the zero-shot evaluation machinery on the dataset's evaluation split.

    python -m training.few_shot --model <dir|hub id> --dataset hmdb51 --shots 2 --video-root /data/hmdb51/videos \
        --output-dir runs/hmdb51_2shot

Paper defaults: 32 frames, learning rate 2e-6 (AdamW, cosine schedule, 10% warmup), batch size 64, 50 epochs. Any
`transformers.TrainingArguments` option applies (`--gradient-accumulation-steps`, `--bf16`, ...). The run resumes from
the last checkpoint in `--output-dir` (or `--resume-from-checkpoint`). Another dataset: `--train-split-file`,
`--eval-split-file` and `--labels`.
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import transformers
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.cli import parse_script_arguments
from modeling_maxi.evaluation import (
    DEFAULT_TEMPLATE,
    PromptClassifier,
    evaluate_splits,
    few_shot_collate,
    few_shot_train_dataset,
    format_markdown_table,
    get_dataset_spec,
    load_custom_split,
    load_few_shot_split,
    load_split,
    save_results,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model: str = field(metadata={"help": "Initial checkpoint: folder or Hub id of a MaxiVideoCLIPModel or any CLIP."})
    num_frames: int = field(default=32, metadata={"help": "Frames per video for training and evaluation."})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "Prompt template of the class prompts."})
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing of the cross-entropy."})


@dataclass
class DataArguments:
    video_root: str = field(metadata={"help": "Folder the training split's video paths are relative to."})
    dataset: str | None = field(
        default=None, metadata={"help": "Built-in dataset with K-shot lists: ucf101, hmdb51 or ssv2."}
    )
    shots: int = field(default=2, metadata={"help": "K of the K-shot list (2, 4, 8 or 16)."})
    eval_video_root: str | None = field(
        default=None, metadata={"help": "Folder of the evaluation videos; --video-root by default."}
    )
    labels: str | None = field(default=None, metadata={"help": "Custom dataset: class list (id,name CSV or txt)."})
    train_split_file: str | None = field(default=None, metadata={"help": "Custom dataset: training split file."})
    eval_split_file: str | None = field(default=None, metadata={"help": "Custom dataset: evaluation split file."})
    split_camel_case: bool = field(default=False, metadata={"help": "Split CamelCase class names into words."})
    keep_protocol_label_errors: bool = field(
        default=False, metadata={"help": "Use the protocol's label lists as shipped (HMDB51's swapped names)."}
    )
    skip_missing_videos: bool = field(
        default=False, metadata={"help": "Train without missing training videos (they are listed) instead of failing."}
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Videos per forward pass at evaluation."})
    eval_before_training: bool = field(
        default=False, metadata={"help": "Also evaluate the initial checkpoint (the zero-shot reference of Table 3)."}
    )


@dataclass
class FewShotTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's few-shot defaults."""

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


def load_data(data_args: DataArguments, split_camel_case: bool):
    """The K-shot training split and the evaluation split (same class list)."""
    fix_label_errors = not data_args.keep_protocol_label_errors
    if data_args.dataset is not None:
        if data_args.labels or data_args.train_split_file or data_args.eval_split_file:
            raise ValueError("Give either --dataset or --labels with --train-split-file/--eval-split-file, not both.")
        spec = get_dataset_spec(data_args.dataset)
        train_split = load_few_shot_split(spec.name, data_args.shots, split_camel_case, fix_label_errors)
        eval_split = load_split(spec.name, spec.few_shot_eval_split, split_camel_case, fix_label_errors)
        return train_split, eval_split
    if not (data_args.labels and data_args.train_split_file and data_args.eval_split_file):
        raise ValueError("Give --dataset, or --labels with --train-split-file and --eval-split-file.")
    train_split = load_custom_split(data_args.labels, data_args.train_split_file, False, "custom", split_camel_case)
    eval_split = load_custom_split(data_args.labels, data_args.eval_split_file, False, "custom", split_camel_case)
    return train_split, eval_split


def run_few_shot(argv: list[str] | None = None) -> dict:
    """Parses `argv` (the command line by default), runs, and returns the results dict that is also written."""
    model_args, data_args, training_args = parse_script_arguments(
        (ModelArguments, DataArguments, FewShotTrainingArguments), argv
    )
    if training_args.output_dir is None:
        raise ValueError("--output-dir is required.")

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=logging.INFO,
    )
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    set_seed(training_args.seed)

    last_checkpoint = training_args.resume_from_checkpoint
    if last_checkpoint is None and os.path.isdir(training_args.output_dir):
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
    if last_checkpoint is not None:
        logger.info("Resuming from %s.", last_checkpoint)

    train_split, eval_split = load_data(data_args, data_args.split_camel_case)
    eval_root = data_args.eval_video_root or data_args.video_root
    model = MaxiVideoCLIPModel.from_pretrained(model_args.model)
    processor = MaxiVideoProcessor.from_pretrained(model_args.model)
    classifier = PromptClassifier.from_class_names(
        model, processor, train_split.class_names, model_args.template, model_args.label_smoothing
    )
    train_dataset, missing = few_shot_train_dataset(
        train_split, data_args.video_root, processor, model_args.num_frames, data_args.skip_missing_videos
    )
    if missing:
        logger.warning("Training without %d missing videos: %s", len(missing), missing)

    def evaluate(stage: str) -> dict:
        results = evaluate_splits(
            classifier.model,
            processor,
            [eval_split],
            eval_root,
            num_frames=model_args.num_frames,
            template=model_args.template,
            batch_size=data_args.eval_batch_size,
            num_workers=training_args.dataloader_num_workers,
        )
        results.update(model=model_args.model, shots=data_args.shots, stage=stage, missing_training_videos=missing)
        if training_args.should_save:
            stem = f"few_shot_{eval_split.dataset}_{data_args.shots}shot_{stage}"
            save_results(results, training_args.output_dir, stem=stem)
            logger.info("%s:\n%s", stage, format_markdown_table(results))
        return results

    all_results = {}
    classifier.to(training_args.device)
    if data_args.eval_before_training:
        # Every process evaluates (only the main one writes), so none waits at a collective while another evaluates.
        all_results["before_training"] = evaluate("before_training")

    trainer = Trainer(
        model=classifier,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=few_shot_collate,
    )
    train_result = trainer.train(resume_from_checkpoint=last_checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        classifier.model.save_pretrained(training_args.output_dir)
        processor.save_pretrained(training_args.output_dir)
        all_results["after_training"] = evaluate("after_training")
    return all_results


def main() -> None:
    """Console entry point."""
    run_few_shot()


if __name__ == "__main__":
    main()
