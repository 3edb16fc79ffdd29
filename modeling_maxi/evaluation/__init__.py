# SPDX-License-Identifier: Apache-2.0
"""Evaluation of MAXI video CLIP models with the zero-shot / few-shot action recognition protocol: built-in benchmark
registry and split files, the batched single-view evaluation loop, metrics and result tables, a whole zero-shot run
(model, splits, results written) and few-shot fine-tuning (paper sec. 4.4)."""

from .datasets import (
    DATASET_REGISTRY,
    DatasetSpec,
    EvalSplit,
    SplitSpec,
    VideoSample,
    available_datasets,
    get_dataset_spec,
    load_custom_split,
    load_few_shot_split,
    load_split,
    read_split_file,
    split_camel_case,
)
from .few_shot import (
    FewShotTrainingArguments,
    PromptClassifier,
    evaluate_few_shot,
    few_shot_collate,
    few_shot_train_dataset,
    load_few_shot_splits,
    train_few_shot,
)
from .metrics import compute_metrics, default_metrics_dir, load_metric, multi_hot
from .results import build_results, format_markdown_table, save_results, summarize_splits
from .zero_shot_eval import (
    DEFAULT_TEMPLATE,
    SplitPredictions,
    VideoClassificationDataset,
    VideoFailure,
    collate_videos,
    encode_class_names,
    evaluate_split,
    evaluate_splits,
    predict_split,
    score_predictions,
    video_class_logits,
)
from .zero_shot_run import EVALUATION_DTYPES, load_evaluation_model, load_evaluation_splits, run_zero_shot_evaluation

__all__ = [
    "DATASET_REGISTRY",
    "DEFAULT_TEMPLATE",
    "DatasetSpec",
    "EVALUATION_DTYPES",
    "EvalSplit",
    "FewShotTrainingArguments",
    "PromptClassifier",
    "SplitPredictions",
    "SplitSpec",
    "VideoClassificationDataset",
    "VideoFailure",
    "VideoSample",
    "available_datasets",
    "build_results",
    "collate_videos",
    "compute_metrics",
    "default_metrics_dir",
    "encode_class_names",
    "evaluate_split",
    "evaluate_splits",
    "evaluate_few_shot",
    "few_shot_collate",
    "few_shot_train_dataset",
    "format_markdown_table",
    "get_dataset_spec",
    "load_custom_split",
    "load_evaluation_model",
    "load_evaluation_splits",
    "load_few_shot_split",
    "load_few_shot_splits",
    "load_metric",
    "load_split",
    "multi_hot",
    "predict_split",
    "read_split_file",
    "run_zero_shot_evaluation",
    "save_results",
    "score_predictions",
    "split_camel_case",
    "summarize_splits",
    "train_few_shot",
    "video_class_logits",
]
