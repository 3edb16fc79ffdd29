# SPDX-License-Identifier: Apache-2.0
"""Few-shot all-way action recognition (paper sec. 4.4, Table 3): fine-tunes a MAXI (or any CLIP) checkpoint on the
protocol's K-shot list `train1_few_shot_K.txt` with cross-entropy over the class prompts (ViFi-CLIP style), then
evaluates it with the zero-shot evaluation machinery on the dataset's evaluation split.

    python -m training.few_shot --model <dir|hub id> --dataset hmdb51 --shots 2 --video-root /data/hmdb51/videos \
        --output-dir runs/hmdb51_2shot

Paper defaults: 32 frames, learning rate 2e-6 (AdamW, cosine schedule, 10% warmup), batch size 64, 50 epochs. Any
`transformers.TrainingArguments` option applies (`--gradient-accumulation-steps`, `--bf16`, ...). The run resumes from
the last checkpoint in `--output-dir` (or `--resume-from-checkpoint`). Another dataset: `--train-split-file`,
`--eval-split-file` and `--labels`. Every step is a call into `modeling_maxi.evaluation`.
"""

import logging
from dataclasses import dataclass, field

from transformers import set_seed

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging
from modeling_maxi.evaluation import (
    DEFAULT_TEMPLATE,
    FewShotTrainingArguments,
    PromptClassifier,
    evaluate_few_shot,
    few_shot_train_dataset,
    load_few_shot_splits,
    train_few_shot,
)
from modeling_maxi.training import find_resume_checkpoint

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


def main(argv: list[str] | None = None) -> dict:
    """Parses `argv` (the command line by default), trains, evaluates, and returns the results (also written)."""
    model_args, data_args, training_args = parse_script_arguments(
        (ModelArguments, DataArguments, FewShotTrainingArguments), argv
    )

    log_level = training_args.get_process_log_level()
    setup_script_logging(log_level, log_level)
    set_seed(training_args.seed)
    last_checkpoint = find_resume_checkpoint(training_args)
    if last_checkpoint is not None:
        logger.info("Resuming from %s.", last_checkpoint)

    train_split, eval_split = load_few_shot_splits(
        data_args.dataset,
        data_args.shots,
        data_args.labels,
        data_args.train_split_file,
        data_args.eval_split_file,
        data_args.split_camel_case,
        fix_label_errors=not data_args.keep_protocol_label_errors,
    )
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
        return evaluate_few_shot(
            classifier,
            processor,
            eval_split,
            data_args.eval_video_root or data_args.video_root,
            stage,
            run_info={"model": model_args.model, "shots": data_args.shots, "missing_training_videos": missing},
            output_dir=training_args.output_dir if training_args.should_save else None,
            num_frames=model_args.num_frames,
            template=model_args.template,
            batch_size=data_args.eval_batch_size,
            num_workers=training_args.dataloader_num_workers,
        )

    all_results = {}
    classifier.to(training_args.device)
    if data_args.eval_before_training:
        # Every process evaluates (only the main one writes), so none waits at a collective while another evaluates.
        all_results["before_training"] = evaluate("before_training")

    trainer = train_few_shot(classifier, train_dataset, training_args, processor, last_checkpoint)
    if trainer.is_world_process_zero():
        all_results["after_training"] = evaluate("after_training")
    return all_results


if __name__ == "__main__":
    run_script(main)
