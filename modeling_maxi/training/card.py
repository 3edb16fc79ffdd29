# SPDX-License-Identifier: Apache-2.0
"""What the model card of a fine-tuned checkpoint says: its fields (provenance, training settings, dataset) and the
card rendered from them (the template itself is filled by `modeling_maxi.model_card`). No field holds a local path:
a local base or dataset is named, never located, and is left out of the Hub metadata."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..model_card import hub_model_id, public_reference, render_model_card

__all__ = ["card_fields", "render_training_model_card"]

DEFAULT_BASE_MODEL = "openai/clip-vit-base-patch16"
DEFAULT_PROVENANCE = "Fine-tuned with `training/train.py` of the MAXI release."


def _provenance(base_model: str, training_args, metrics: Mapping[str, Any]) -> str:
    lines = [
        f"- Fine-tuned from {public_reference(base_model)} with `training/train.py` (MAXI release), loss "
        f"`{training_args.loss_variant}`, {metrics.get('train_steps', 'n/a')} optimisation steps.",
        f"- Training videos: {metrics.get('train_videos', 'n/a')}; unreadable videos skipped: "
        f"{metrics.get('skipped_videos', 0)}.",
    ]
    if "filter_ratio" in metrics:
        lines.append(
            f"- Text-bag filter (paper sec. 3.2, applied once, at training): p = {metrics['filter_ratio']:g} by "
            f"`{metrics.get('filter_score', 'similarity')}`, {metrics.get('filter_videos_kept', 'n/a')} of "
            f"{metrics.get('filter_videos_before', 'n/a')} videos kept."
        )
    if training_args.ensemble_ratio > 0:
        lines.append(
            f"- Weight-space ensembling: every parameter is `{training_args.ensemble_ratio:g} x base + "
            f"{1 - training_args.ensemble_ratio:g} x fine-tuned` (paper sec. 4.2)."
        )
    else:
        lines.append("- No weight-space ensembling: these are the fine-tuned weights.")
    return "\n".join(lines)


def _training_config(base_model: str, data_config: Mapping[str, Any], training_args) -> dict[str, Any]:
    return {
        "model_name_or_path": base_model,
        **{key: value for key, value in data_config.items() if value is not None},
        "loss_variant": training_args.loss_variant,
        "temperature_init": training_args.temperature_init,
        "learn_temperature": training_args.learn_temperature,
        "ensemble_ratio": training_args.ensemble_ratio,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(training_args.lr_scheduler_type),
        "optim": str(training_args.optim),
        "weight_decay": training_args.weight_decay,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "world_size": training_args.world_size,
        "global_batch_size": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "seed": training_args.seed,
    }


def card_fields(
    training_args,
    base_model: str,
    dataset_name: str | None,
    data_config: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """
    The fields of `render_model_card` for a checkpoint fine-tuned by `MaxiTrainer`.

    Args:
        training_args (`MaxiTrainingArguments`): The run's training arguments.
        base_model (`str`): The checkpoint fine-tuned from (also the ensembling base).
        dataset_name (`str`, *optional*): The text-bag dataset: a Hub id (linked, and listed in the card's metadata)
            or a local folder.
        data_config (`Mapping`): The data settings to list in the card's training configuration (`None` values are
            left out).
        metrics (`Mapping`): `train_steps`, `train_videos` and `skipped_videos` of the run (missing ones read "n/a"),
            and the text-bag filter's `filter_ratio`, `filter_score`, `filter_videos_before` and `filter_videos_kept`.

    Returns:
        The keyword arguments of `render_model_card`; `base_model` and `dataset_name` only when they are Hub ids, and
        local paths of the training configuration reduced to their names.
    """
    hub_dataset = hub_model_id(dataset_name)
    if hub_dataset is not None:
        dataset_link = f"https://huggingface.co/datasets/{hub_dataset}"
    else:
        dataset_link = "not recorded" if dataset_name is None else public_reference(dataset_name)
    return {
        "model_id": training_args.hub_model_id or Path(training_args.output_dir).name,
        "base_model": hub_model_id(base_model),
        "provenance": _provenance(base_model, training_args, metrics),
        "training_config": _training_config(base_model, data_config, training_args),
        "dataset_link": dataset_link,
        "dataset_name": hub_dataset,
    }


def render_training_model_card(fields: Mapping[str, Any]) -> str:
    """The README.md of a fine-tuned checkpoint: `render_model_card(**fields)` (`model_id` is required; the base
    defaults to `openai/clip-vit-base-patch16`, the provenance to a line naming `training/train.py`)."""
    fields = dict(fields)
    fields.setdefault("base_model", DEFAULT_BASE_MODEL)
    fields.setdefault("provenance", DEFAULT_PROVENANCE)
    return render_model_card(**fields)
