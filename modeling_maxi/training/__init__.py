# SPDX-License-Identifier: Apache-2.0
"""Training components of MAXI: text-bag datasets, augmentation and batching; the MIL-NCE `Trainer` subclass and its
arguments; loading of the run's inputs; the export (weight-space ensembling, Hub-ready folder, model card); and the
video-to-bag retrieval check."""

from .arguments import MaxiTrainingArguments
from .card import card_fields, render_training_model_card
from .checkpoints import checkpoint_problems, find_resume_checkpoint
from .data import (
    PROMPT_TEMPLATE,
    TEXT_SOURCE_COLUMNS,
    TRAIN_AUGMENTATIONS,
    TextBagCollator,
    TextBagVideoDataset,
    prepare_text_bag_dataset,
    prepare_training_videos,
    unknown_text_sources,
)
from .export import ensemble_with_base, export_trained_model
from .loading import (
    configure_trainable,
    load_model_and_processor,
    load_text_bag_build_filter,
    load_text_bag_dataset,
)
from .retrieval import video_to_bag_retrieval_accuracy
from .trainer import MaxiTrainer, SetEpochCallback, tokenize_class_prompts

__all__ = [
    "PROMPT_TEMPLATE",
    "TEXT_SOURCE_COLUMNS",
    "TRAIN_AUGMENTATIONS",
    "MaxiTrainer",
    "MaxiTrainingArguments",
    "SetEpochCallback",
    "TextBagCollator",
    "TextBagVideoDataset",
    "card_fields",
    "checkpoint_problems",
    "configure_trainable",
    "ensemble_with_base",
    "export_trained_model",
    "find_resume_checkpoint",
    "load_model_and_processor",
    "load_text_bag_build_filter",
    "load_text_bag_dataset",
    "prepare_text_bag_dataset",
    "prepare_training_videos",
    "render_training_model_card",
    "tokenize_class_prompts",
    "unknown_text_sources",
    "video_to_bag_retrieval_accuracy",
]
