# SPDX-License-Identifier: Apache-2.0
"""The export step of a MAXI fine-tuning run: weight-space ensembling with the base model (paper sec. 4.2), then a
Hub-ready folder (safetensors, config with `auto_map` and `custom_pipelines`, the modeling and pipeline code, the
processor with its `video_preprocessor_config.json`, the model card), pushed when asked without the files that only
serve this machine (they hold its paths)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..ensembling import weight_space_ensemble
from ..modeling_maxi_video_clip import MaxiVideoCLIPModel

if TYPE_CHECKING:
    from .trainer import MaxiTrainer

logger = logging.getLogger(__name__)

__all__ = ["LOCAL_ONLY_FILES", "ensemble_with_base", "export_trained_model", "push_exported_folder"]

PUSH_COMMIT_MESSAGE = "MAXI fine-tuning (weight-space ensembled)"
# Files of the output folder that stay local: the Trainer's pickled arguments and state (they hold this machine's
# paths), checkpoints and TensorBoard runs.
LOCAL_ONLY_FILES = ("_*", "checkpoint-*", "checkpoint-*/**", "training_args.bin", "trainer_state.json", "runs/**")


def ensemble_with_base(
    model: MaxiVideoCLIPModel, base_model_name_or_path: str, ratio: float, cache_dir: str | None = None, **overrides
) -> None:
    """
    Replaces `model`'s weights, in place, by `ratio * base + (1 - ratio) * model` (`weight_space_ensemble`).

    Args:
        model (`MaxiVideoCLIPModel`): The fine-tuned model (unwrapped from any distributed wrapper).
        base_model_name_or_path (`str`): The checkpoint it was fine-tuned from.
        ratio (`float`): Weight of the base model, in [0, 1]; 0 leaves `model` unchanged.
        cache_dir (`str`, *optional*): Where downloaded checkpoints are cached.
        **overrides: The config overrides the fine-tuned model was loaded with, so that both hold the same tensors.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"`ratio` must be a number in [0, 1], got {ratio!r}.")
    if ratio == 0:
        return
    base = MaxiVideoCLIPModel.from_pretrained(base_model_name_or_path, cache_dir=cache_dir, **overrides)
    ensembled = weight_space_ensemble(base, model, ratio)
    model.load_state_dict(ensembled.state_dict())
    logger.info("Ensembled the fine-tuned weights with %s (base ratio %g).", base_model_name_or_path, ratio)


def export_trained_model(
    trainer: MaxiTrainer,
    base_model_name_or_path: str,
    card_fields: Mapping[str, Any],
    cache_dir: str | None = None,
    **config_overrides,
) -> None:
    """
    Ensembles the trained model with its base (`trainer.args.ensemble_ratio`), then saves it with its processor and
    model card to `trainer.args.output_dir`, or pushes that folder to the Hub with `--push_to_hub`.

    Args:
        trainer (`MaxiTrainer`): The trainer after `train()`.
        base_model_name_or_path (`str`): The checkpoint the run fine-tuned.
        card_fields (`Mapping`): Fields of the model card (`modeling_maxi.training.card_fields`).
        cache_dir (`str`, *optional*): Where downloaded checkpoints are cached.
        **config_overrides: The config overrides the model was loaded with (they apply to the base too).
    """
    trained = trainer.accelerator.unwrap_model(trainer.model)
    ensemble_with_base(trained, base_model_name_or_path, trainer.args.ensemble_ratio, cache_dir, **config_overrides)
    trainer.card_fields = dict(card_fields)
    trainer.save_model()
    trainer.create_model_card()
    if trainer.args.push_to_hub and trainer.is_world_process_zero():
        pending = getattr(trainer, "push_in_progress", None)  # a checkpoint push of `hub_strategy` still uploading
        if pending is not None:
            pending.wait_until_done()
        push_exported_folder(trainer.args.output_dir, trainer.hub_model_id, trainer.args.hub_token)


def push_exported_folder(output_dir: str, repo_id: str, token: str | None = None) -> str:
    """Uploads an exported folder to the Hub repository `repo_id` (created if needed) without `LOCAL_ONLY_FILES`;
    returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        commit_message=PUSH_COMMIT_MESSAGE,
        ignore_patterns=list(LOCAL_ONLY_FILES),
    )
    return commit.commit_url
