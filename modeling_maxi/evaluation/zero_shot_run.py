# SPDX-License-Identifier: Apache-2.0
"""One zero-shot evaluation run of the protocol, as `training/evaluate_zero_shot.py` makes it: which splits (a built-in
benchmark's, or a custom one), which model (optionally weight-space ensembled with its base, paper sec. 4.2, on which
device and dtype), then the evaluation loop and the results written as JSON and Markdown."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..ensembling import weight_space_ensemble
from ..modeling_maxi_video_clip import MaxiVideoCLIPModel
from ..processing_maxi_video_clip import MaxiVideoProcessor
from .datasets import EvalSplit, get_dataset_spec, load_custom_split, load_split
from .results import format_markdown_table, save_results
from .zero_shot_eval import evaluate_splits

logger = logging.getLogger(__name__)

__all__ = ["EVALUATION_DTYPES", "load_evaluation_model", "load_evaluation_splits", "run_zero_shot_evaluation"]

#: The dtypes a model may be evaluated in, by name.
EVALUATION_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_evaluation_model(
    model_name_or_path: str,
    ensemble_base: str | None = None,
    ensemble_ratio: float = 0.2,
    device: str | torch.device | None = None,
    dtype: str = "float32",
) -> tuple[MaxiVideoCLIPModel, MaxiVideoProcessor]:
    """
    The model to evaluate, in eval mode, and its processor.

    Args:
        model_name_or_path (`str`): Folder or Hub id of a `MaxiVideoCLIPModel` (or any CLIP checkpoint).
        ensemble_base (`str`, *optional*): Folder or Hub id of the original CLIP; when given, the weights become
            `ensemble_ratio * base + (1 - ensemble_ratio) * model` (`weight_space_ensemble`).
        ensemble_ratio (`float`, defaults to 0.2): Weight of `ensemble_base`, in [0, 1].
        device (`str` or `torch.device`, *optional*): Defaults to cuda when available, else cpu.
        dtype (`str`, defaults to `"float32"`): One of `EVALUATION_DTYPES`.
    """
    bad_type = isinstance(ensemble_ratio, bool) or not isinstance(ensemble_ratio, (int, float))
    if bad_type or not 0.0 <= ensemble_ratio <= 1.0:
        raise ValueError(f"`ensemble_ratio` must be a number in [0, 1], got {ensemble_ratio!r}.")
    if dtype not in EVALUATION_DTYPES:
        raise ValueError(f"dtype {dtype!r} unknown; choose from {', '.join(EVALUATION_DTYPES)}.")
    model = MaxiVideoCLIPModel.from_pretrained(model_name_or_path)
    processor = MaxiVideoProcessor.from_pretrained(model_name_or_path)
    if ensemble_base is not None:
        base = MaxiVideoCLIPModel.from_pretrained(ensemble_base)
        model = weight_space_ensemble(base, model, ratio=ensemble_ratio)
        del base
        logger.info("Ensembled %s with %s (base ratio %.2f).", model_name_or_path, ensemble_base, ensemble_ratio)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(device=device, dtype=EVALUATION_DTYPES[dtype]).eval(), processor


def load_evaluation_splits(
    dataset: str | None = None,
    splits: Sequence[str] | None = None,
    labels: str | Path | None = None,
    split_file: str | Path | None = None,
    multi_label: bool = False,
    dataset_name: str = "custom",
    split_camel_case: bool = False,
    fix_label_errors: bool = True,
) -> list[EvalSplit]:
    """
    The splits to evaluate: a built-in dataset's (all, or `splits`), or one custom split from `labels` and
    `split_file`.

    Args:
        dataset (`str`, *optional*): A built-in dataset (see `available_datasets`); leave out for a custom one.
        splits (`Sequence[str]`, *optional*): Splits of the built-in dataset; all by default.
        labels, split_file (*optional*): The custom dataset's class list (id,name CSV or txt) and split file.
        multi_label (`bool`): The custom split file is multi-label (scored with mAP).
        dataset_name (`str`): The custom dataset's name in the results.
        split_camel_case (`bool`): Split CamelCase class names into words (UCF101).
        fix_label_errors (`bool`, defaults to `True`): Correct the label lists' known errors (HMDB51's swapped names);
            `False` uses them as shipped, as the published numbers were computed.
    """
    if dataset is not None and (labels or split_file):
        raise ValueError("Give either --dataset or --labels with --split-file, not both.")
    if dataset is None:
        if not (labels and split_file):
            raise ValueError("Give --dataset (a built-in dataset) or both --labels and --split-file.")
        if splits:
            raise ValueError(f"--splits {list(splits)} only applies to built-in datasets; a custom dataset has one.")
        return [load_custom_split(labels, split_file, multi_label, dataset_name, split_camel_case)]
    spec = get_dataset_spec(dataset)
    names = list(splits) if splits else list(spec.splits)
    unknown = [name for name in names if name not in spec.splits]
    if unknown:
        raise ValueError(f"{spec.name} has splits {sorted(spec.splits)}; unknown --splits {unknown}.")
    return [load_split(spec.name, name, split_camel_case, fix_label_errors=fix_label_errors) for name in names]


def run_zero_shot_evaluation(
    model,
    processor,
    splits: Sequence[EvalSplit],
    video_root: str | Path,
    output_dir: str | Path,
    run_info: Mapping[str, Any] | None = None,
    **loop_options,
) -> dict:
    """
    Evaluates `model` on `splits` (`evaluate_splits`), adds `run_info` (model id, ensembling, label-list options)
    to the results, writes them to `output_dir` (`zero_shot_<dataset>.json` and `.md`) and returns them.

    Args:
        model, processor: The model in eval mode and its processor (`load_evaluation_model`).
        splits (`Sequence[EvalSplit]`): The splits (`load_evaluation_splits`), all of one dataset.
        video_root (`str` or `Path`): Folder the split files' video paths are relative to.
        output_dir (`str` or `Path`): Where the results go.
        run_info (`Mapping`, *optional*): Entries recorded with the results.
        **loop_options: Options of `evaluate_splits` (`num_frames`, `template`, `batch_size`, `num_workers`,
            `missing_videos`, `metrics_dir`).
    """
    if not splits:
        raise ValueError("`splits` is empty: nothing to evaluate.")
    logger.info(
        "Evaluating on %s splits %s (%s videos).",
        splits[0].display_name,
        [split.split for split in splits],
        [len(split.samples) for split in splits],
    )
    results = evaluate_splits(model, processor, list(splits), video_root, **loop_options)
    results.update(run_info or {})
    json_path, markdown_path = save_results(results, output_dir)
    logger.info("Results written to %s and %s\n%s", json_path, markdown_path, format_markdown_table(results))
    return results
