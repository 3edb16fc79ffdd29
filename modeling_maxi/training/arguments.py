# SPDX-License-Identifier: Apache-2.0
"""`MaxiTrainingArguments`: transformers' `TrainingArguments` plus the settings of the MAXI objective and export."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import HubStrategy

from ..loss import CONTRAST_SCOPES, LOSS_VARIANTS

__all__ = ["MaxiTrainingArguments"]


@dataclass
class MaxiTrainingArguments(TrainingArguments):
    """
    `TrainingArguments` plus the MAXI objective's settings (paper sec. 3.3 and 4.2).

    Args:
        loss_variant (`str`, defaults to `"mil_nce"`): One of `modeling_maxi.loss.LOSS_VARIANTS` (Eq. 2 and the
            Table-7 objectives).
        contrast_scope (`str`, defaults to `"global"`): Which bags each process's videos are contrasted with:
            `"global"`, the bags of every process (the loss of the concatenated micro-batch), or `"local"`, only
            the process's own (no gather; DDP averages the per-process losses' gradients), as the authors'
            released code trained (4 GPUs x 16 videos, gradient accumulation 4). One process: both are the same.
        temperature_init (`float`, *optional*, defaults to 0.02): Initial temperature sigma (the logit scale starts at
            `1 / sigma`); `None` keeps the model's.
        learn_temperature (`bool`, defaults to `True`): Train the temperature with the encoders.
        max_logit_scale (`float`, defaults to 100): Upper clamp of the logit scale, as CLIP.
        freeze_vision_encoder, freeze_text_encoder (`bool`, defaults to `False`): Keep a tower fixed.
        ensemble_ratio (`float`, defaults to 0.2): Weight of the base model in the exported weights (sec. 4.2; 0
            exports the fine-tuned weights).
        remove_unused_columns (`bool`, defaults to `False`): Kept `False`: the collator builds the batches.
        hub_strategy (`str`, defaults to `"end"`): With `--push_to_hub`, push once, the exported (ensembled) folder,
            which leaves out the files holding local paths; transformers' `"every_save"` would also upload every
            checkpoint's `training_args.bin`.
    """

    loss_variant: str = field(
        default="mil_nce", metadata={"help": f"Objective, one of {', '.join(LOSS_VARIANTS)} (paper: mil_nce)."}
    )
    contrast_scope: str = field(
        default="global",
        metadata={
            "help": "Bags each process's videos are contrasted with: 'global' (all processes', gathered) or 'local' "
            "(the process's own micro-batch only, as the authors' released code; paper runs: 4 GPUs x 16 videos x "
            "gradient accumulation 4)."
        },
    )
    temperature_init: float | None = field(
        default=0.02, metadata={"help": "Initial temperature sigma (logit scale 1/sigma); None keeps the model's."}
    )
    learn_temperature: bool = field(default=True, metadata={"help": "Train the temperature with the encoders."})
    max_logit_scale: float = field(default=100.0, metadata={"help": "Upper clamp of the logit scale, as CLIP."})
    freeze_vision_encoder: bool = field(default=False, metadata={"help": "Keep the vision tower fixed."})
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Keep the text tower fixed."})
    ensemble_ratio: float = field(
        default=0.2, metadata={"help": "Weight of the base model in the exported weights (paper: 0.2; 0 disables)."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: batches are built here."})
    hub_strategy: HubStrategy | str = field(
        default="end",
        metadata={"help": "When to push with --push_to_hub: 'end' (the exported folder only) or transformers' others."},
    )

    def __post_init__(self):
        if self.loss_variant not in LOSS_VARIANTS:
            raise ValueError(f"--loss_variant {self.loss_variant!r} unknown; choose from {', '.join(LOSS_VARIANTS)}.")
        if self.contrast_scope not in CONTRAST_SCOPES:
            raise ValueError(
                f"--contrast_scope {self.contrast_scope!r} unknown; choose from {', '.join(CONTRAST_SCOPES)}."
            )
        if self.temperature_init is not None and not self.temperature_init > 0:
            raise ValueError(f"--temperature_init must be > 0, got {self.temperature_init}.")
        if not 0 <= self.ensemble_ratio <= 1:
            raise ValueError(f"--ensemble_ratio must be in [0, 1], got {self.ensemble_ratio}.")
        if not self.max_logit_scale > 0:
            raise ValueError(f"--max_logit_scale must be > 0, got {self.max_logit_scale}.")
        if self.dataloader_persistent_workers:
            raise ValueError(
                "--dataloader_persistent_workers is not supported: workers must see the epoch, which seeds frame "
                "offsets, augmentation and bag sampling."
            )
        super().__post_init__()
