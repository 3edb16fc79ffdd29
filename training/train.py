#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Fine-tune CLIP on unlabeled videos and their text bags with MIL-NCE (MAXI, ICCV 2023, sec. 3.3 and 4.2).

Run it directly or with accelerate, with flags or one YAML/JSON file (plus flags that override it)::

    accelerate launch training/train.py training/configs/maxi_vitb16_k400.yaml
    accelerate launch --num_processes 2 training/train.py --config training/configs/maxi_vitb16_k400.yaml \\
        --dataset_name ./k400_text_bags --video_root /data/k400 --output_dir ./maxi-vitb16

On CPU only, two processes run with accelerate's torch.distributed launcher and gloo:
``accelerate launch --multi_gpu --num_processes 2 training/train.py ... --use_cpu true`` (accelerate's ``--cpu``
multi-process launcher needs mpirun).

After training, the model is ensembled in weight space with the base CLIP (``--ensemble_ratio``, 0.2 as in the
paper, 0 disables) and saved as a Hub-ready folder: safetensors, config with ``auto_map``, the modeling files, the
processor and a model card rendered from the package's template. Every step is a call into
``modeling_maxi.training``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the checkout's library comes first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
from transformers import set_seed  # noqa: E402

from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging  # noqa: E402
from modeling_maxi.text_bags.filtering import filter_score_field, validate_filter_score  # noqa: E402
from modeling_maxi.training import (  # noqa: E402
    TEXT_SOURCE_COLUMNS,
    TRAIN_AUGMENTATIONS,
    MaxiTrainer,
    MaxiTrainingArguments,
    SetEpochCallback,
    TextBagCollator,
    TextBagVideoDataset,
    card_fields,
    configure_trainable,
    export_trained_model,
    find_resume_checkpoint,
    load_model_and_processor,
    load_text_bag_build_filter,
    load_text_bag_dataset,
    prepare_training_videos,
    tokenize_class_prompts,
    unknown_text_sources,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which CLIP to start from."""

    model_name_or_path: str = field(
        default="openai/clip-vit-base-patch16",
        metadata={"help": "CLIP or MAXI checkpoint (Hub id or local folder) to fine-tune; also the ensembling base."},
    )
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "Processor to use, if not the one of --model_name_or_path."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloaded models and datasets."})
    frame_pooling: str | None = field(
        default=None, metadata={"help": "Override the config's frame pooling: 'mean' or 'max'."}
    )
    cross_frame_layers: int | None = field(
        default=None, metadata={"help": "Override the number of vision layers with cross-frame attention."}
    )

    def config_overrides(self) -> dict:
        """The `MaxiVideoCLIPConfig` fields this run overrides (for the model and for its ensembling base)."""
        overrides = {"frame_pooling": self.frame_pooling, "cross_frame_layers": self.cross_frame_layers}
        return {name: value for name, value in overrides.items() if value is not None}


@dataclass
class DataArguments:
    """Which text bags and videos to train on."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "Text-bag dataset: Hub id or local folder (published by dataset_scripts)."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Configuration of the dataset, e.g. 'dictionary_llm_captions'."}
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    video_root: str | None = field(
        default=None, metadata={"help": "Folder that the dataset's relative `video_path` values are resolved in."}
    )
    text_sources: list[str] | None = field(
        default=None,
        metadata={
            "help": "Rebuild the bags from these sources: 'dictionary' plus any of 'llm', 'captions'. "
            "Default: the dataset's `text_bag` column."
        },
    )
    filter_ratio: float = field(
        default=0.9,
        metadata={
            "help": "Fraction p of videos kept, the most confidently matched ones (paper: 0.9); applied once, here "
            "(a build publishes every video). Counted relative to the original videos if the build filtered already."
        },
    )
    filter_score: str = filter_score_field()
    num_frames: int = field(default=16, metadata={"help": "Frames per video (segment sampling, random offsets)."})
    bag_size: int = field(default=16, metadata={"help": "Texts sampled from each video's bag per step."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training videos (debugging)."}
    )
    video_backend: str = field(default="auto", metadata={"help": "Video decoder: auto, decord, torchcodec or pyav."})
    augmentations: list[str] = field(
        default_factory=lambda: list(TRAIN_AUGMENTATIONS),
        metadata={
            "help": f"Training augmentations, some of {', '.join(TRAIN_AUGMENTATIONS)} (paper: all). Drop 'flip' "
            "for direction-defined classes and the colour ones when colour defines a class; 'none' disables all."
        },
    )
    class_names: str = field(
        default="k400",
        metadata={"help": "Dictionary of the 'cross_entropy' loss variant: built-in list name or csv/txt path."},
    )

    def __post_init__(self):
        if self.bag_size < 1:
            raise ValueError(f"--bag_size must be >= 1, got {self.bag_size}.")
        if self.num_frames < 1:
            raise ValueError(f"--num_frames must be >= 1, got {self.num_frames}.")
        if not 0 < self.filter_ratio <= 1:
            raise ValueError(f"--filter_ratio must be in (0, 1], got {self.filter_ratio}.")
        validate_filter_score(self.filter_score)
        if self.text_sources is not None:
            unknown = unknown_text_sources(self.text_sources)
            if unknown:
                raise ValueError(f"--text_sources {unknown} unknown; choose from {sorted(TEXT_SOURCE_COLUMNS)}.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"--max_train_samples must be >= 1, got {self.max_train_samples}.")
        if list(self.augmentations) == ["none"]:
            self.augmentations = []
        unknown = [name for name in self.augmentations if name not in TRAIN_AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"--augmentations {unknown} unknown; choose from {list(TRAIN_AUGMENTATIONS)} (or 'none' alone)."
            )


def setup_logging(training_args: MaxiTrainingArguments) -> None:
    """Log to stdout at the process's level (`--log_level`, `--log_level_replica`)."""
    log_level = training_args.get_process_log_level()
    setup_script_logging(log_level, log_level)


def load_train_bags(data_args: DataArguments, cache_dir: str | None) -> tuple[datasets.Dataset, dict]:
    """The training rows (the text-bag dataset, its bags rebuilt and filtered, cut to --max_train_samples) and the
    filter's summary (p, score, videos before the filter and kept)."""
    raw_bags = load_text_bag_dataset(
        data_args.dataset_name, data_args.dataset_config_name, data_args.train_split, cache_dir
    )
    train_bags, summary = prepare_training_videos(
        raw_bags,
        data_args.text_sources,
        data_args.filter_ratio,
        data_args.filter_score,
        load_text_bag_build_filter(data_args.dataset_name),
    )
    if data_args.max_train_samples is not None:
        train_bags = train_bags.select(range(min(data_args.max_train_samples, len(train_bags))))
    return train_bags, summary


def build_train_dataset(
    train_bags: datasets.Dataset, processor, data_args: DataArguments, training_args: MaxiTrainingArguments
) -> TextBagVideoDataset:
    """The training videos with augmentation, at the processor's frame size and normalisation."""
    return TextBagVideoDataset.from_processor(
        train_bags,
        processor,
        data_args.video_root,
        data_args.num_frames,
        data_args.bag_size,
        seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
        training=True,
        video_backend=data_args.video_backend,
        augmentations=data_args.augmentations,
    )


def main(argv: list[str] | None = None) -> MaxiTrainer:
    # 1. Arguments: flags, one YAML/JSON file, or `--config FILE` followed by flags that override it.
    model_args, data_args, training_args = parse_script_arguments(
        (ModelArguments, DataArguments, MaxiTrainingArguments), argv, description="MAXI fine-tuning with MIL-NCE."
    )
    setup_logging(training_args)
    logger.info("Training arguments %s", training_args)

    # 2. Resume from --resume_from_checkpoint or from the newest complete checkpoint in --output_dir (folders left by
    #    an interrupted save are skipped, with the reason logged); seed.
    checkpoint = find_resume_checkpoint(training_args)
    if checkpoint is not None:
        logger.info("Resuming from %s.", checkpoint)
    set_seed(training_args.seed)

    # 3. Text bags: load, rebuild from --text_sources, keep the top --filter_ratio (p, applied once, here).
    train_bags, text_bag_filter = load_train_bags(data_args, model_args.cache_dir)

    # 4. Model and processor (the processor samples --num_frames frames); which parts train.
    overrides = model_args.config_overrides()
    model, processor = load_model_and_processor(
        model_args.model_name_or_path,
        model_args.processor_name_or_path,
        data_args.num_frames,
        model_args.cache_dir,
        **overrides,
    )
    configure_trainable(model, training_args)

    # 5. Videos decoded and augmented per item, bags sampled per (seed, epoch, index); the collator batches them.
    train_dataset = build_train_dataset(train_bags, processor, data_args, training_args)
    collator = TextBagCollator(processor.tokenizer, data_args.bag_size, train_dataset.frame_shape)
    class_prompts = None
    if training_args.loss_variant == "cross_entropy":
        class_prompts = tokenize_class_prompts(processor, data_args.class_names, train_bags["matched_label"])

    # 6. Train.
    trainer = MaxiTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=processor,
        callbacks=[SetEpochCallback(train_dataset)],
        bag_size=data_args.bag_size,
        class_prompt_inputs=class_prompts,
    )
    result = trainer.train(resume_from_checkpoint=checkpoint)

    # 7. Metrics, with the unreadable videos counted over all processes.
    skipped = trainer.total_skipped_videos()
    if skipped:
        logger.warning("Skipped %d unreadable videos during training.", skipped)
    metrics = {
        **result.metrics,
        "train_videos": len(train_bags),
        "skipped_videos": skipped,
        "filter_ratio": text_bag_filter["filter_ratio"],
        "filter_score": text_bag_filter["filter_score"],
        "filter_videos_before": text_bag_filter["videos_before_filter"],
        "filter_videos_kept": text_bag_filter["videos_kept"],
    }
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # 8. Export: weight-space ensembling with the base model, then a Hub-ready folder with its model card.
    run = {**metrics, "train_steps": trainer.state.global_step}
    fields = card_fields(training_args, model_args.model_name_or_path, data_args.dataset_name, asdict(data_args), run)
    export_trained_model(trainer, model_args.model_name_or_path, fields, model_args.cache_dir, **overrides)
    return trainer


if __name__ == "__main__":
    run_script(main)
