# SPDX-License-Identifier: Apache-2.0
"""`MaxiTrainer`: transformers' `Trainer` whose loss is the text-bag objective (MIL-NCE, Eq. 2, or a Table-7 variant)
over the global batch (or each process's own, `--contrast_scope local`), with the epoch callback its dataset needs,
the class prompts of the `cross_entropy` variant, and checkpoints that an interrupted save cannot leave looking
complete."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..dictionaries import load_class_names
from ..loss import distributed_text_bag_loss
from .card import render_training_model_card
from .checkpoints import TRAINER_STATE_NAME
from .data import PROMPT_TEMPLATE, TextBagVideoDataset

logger = logging.getLogger(__name__)

__all__ = ["MaxiTrainer", "SetEpochCallback", "tokenize_class_prompts"]


class SetEpochCallback(TrainerCallback):
    """Tells the dataset which epoch starts, before the dataloader's workers copy it."""

    def __init__(self, dataset: TextBagVideoDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor(state.epoch + 1e-6) if state.epoch is not None else 0)


def tokenize_class_prompts(
    processor, class_names_source: str, matched_labels: Sequence[int] | None = None
) -> dict[str, torch.Tensor]:
    """
    The prompts `"a photo of a {class}."` of a dictionary, tokenised (`input_ids`, `attention_mask`), for the
    `cross_entropy` objective.

    Args:
        processor: A [`MaxiVideoProcessor`] (its tokenizer is used).
        class_names_source (`str`): A built-in class list name or a csv/txt path (see `load_class_names`).
        matched_labels (`Sequence[int]`, *optional*): The pseudo-labels of the training videos; each must have a
            prompt, else `ValueError` names the largest one.
    """
    names = load_class_names(class_names_source)
    if matched_labels is not None and len(matched_labels):
        max_label = max(matched_labels)
        if max_label >= len(names):
            raise ValueError(
                f"matched_label {max_label} is out of range for --class_names {class_names_source!r} "
                f"({len(names)} classes)."
            )
    prompts = [PROMPT_TEMPLATE.format(name) for name in names]
    return dict(processor.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt"))


def _concat_padded(first, second, pad_id: int):
    """Stack two tokenised text batches of possibly different lengths (right padding)."""
    length = max(first[0].shape[1], second[0].shape[1])

    def pad(ids, mask):
        extra = length - ids.shape[1]
        if extra == 0:
            return ids, mask
        return (
            torch.nn.functional.pad(ids, (0, extra), value=pad_id),
            torch.nn.functional.pad(mask, (0, extra), value=0),
        )

    ids_a, mask_a = pad(*first)
    ids_b, mask_b = pad(*second)
    return torch.cat([ids_a, ids_b.to(ids_a.device)]), torch.cat([mask_a, mask_b.to(mask_a.device)])


class MaxiTrainer(Trainer):
    """
    `Trainer` whose loss is the text-bag objective over the global batch, or over each process's own with
    `--contrast_scope local` (`distributed_text_bag_loss`).

    The loss is a mean over this micro-batch, so the Trainer divides it by the gradient accumulation steps
    (`loss_is_scaled_for_ga = False`). Batches come from :class:`modeling_maxi.training.TextBagCollator`. Resuming
    picks the newest complete checkpoint (`find_resume_checkpoint`); a checkpoint is written over a folder left by
    an interrupted save only after that folder's stale `trainer_state.json` (the Trainer's last file, the mark of a
    finished save) is removed, so a second interruption cannot leave a mix of old and new files looking complete.

    Args:
        bag_size (`int`): Texts per video in a batch (used when every video of a batch was unreadable).
        class_prompt_inputs (`dict`, *optional*): Tokenised class prompts (`tokenize_class_prompts`); required by the
            `cross_entropy` variant.
        card_fields (`dict`, *optional*): Fields of the model card written by `create_model_card` (`card_fields`).
        *args, **kwargs: Those of `Trainer`; `args` must be a `MaxiTrainingArguments`.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        bag_size: int,
        class_prompt_inputs: dict[str, torch.Tensor] | None = None,
        card_fields=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.bag_size = bag_size
        if self.args.loss_variant == "cross_entropy" and class_prompt_inputs is None:
            raise ValueError("loss_variant='cross_entropy' needs the tokenised class prompts (class_prompt_inputs).")
        self.class_prompt_inputs = class_prompt_inputs
        self.card_fields = dict(card_fields or {})
        self.skipped_videos = 0
        if self.args.world_size > 1:
            scope = "all processes' bags (gathered)" if self.args.contrast_scope == "global" else "its own bags only"
            logger.info("Contrast scope %s: each process's videos meet %s.", self.args.contrast_scope, scope)

    def _text_inputs(self, inputs, pixel_values: torch.Tensor):
        """Pixel values, token ids and mask to encode: one blank video and an empty text for an empty batch.

        When every video of a batch was unreadable the model still runs (CLIP cannot encode zero items), so that
        this rank joins the gathers and DDP's gradient synchronisation; the loss gives the blank outputs zero weight.
        """
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        if pixel_values.shape[0] == 0:
            tokenizer = self.processing_class.tokenizer
            pixel_values = pixel_values.new_zeros((1, *pixel_values.shape[1:]))
            input_ids = torch.tensor([[tokenizer.bos_token_id, tokenizer.eos_token_id]], device=pixel_values.device)
            attention_mask = torch.ones_like(input_ids)
        if self.class_prompt_inputs is not None:
            input_ids, attention_mask = _concat_padded(
                (input_ids, attention_mask),
                (self.class_prompt_inputs["input_ids"], self.class_prompt_inputs["attention_mask"]),
                pad_id=self.processing_class.tokenizer.pad_token_id,
            )
        return pixel_values, input_ids.to(pixel_values.device), attention_mask.to(pixel_values.device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped", None)
        if skipped is not None and model.training:
            self.skipped_videos += int(skipped)
        num_videos = inputs["pixel_values"].shape[0]
        num_bag_texts = 0 if num_videos == 0 else inputs["input_ids"].shape[0]
        if num_videos and num_bag_texts % num_videos:
            raise ValueError(f"{num_bag_texts} bag texts cannot be split evenly over {num_videos} videos.")
        bag_size = num_bag_texts // num_videos if num_videos else self.bag_size
        pixel_values, input_ids, attention_mask = self._text_inputs(inputs, inputs["pixel_values"])
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
        if outputs.video_embeds.dim() != 2:
            raise ValueError("Training needs one embedding per video: use frame_pooling 'mean' or 'max', not 'none'.")
        dim = outputs.text_embeds.shape[-1]
        video_embeds = outputs.video_embeds[:num_videos]
        text_embeds = outputs.text_embeds[:num_bag_texts].reshape(num_videos, bag_size, dim)
        class_embeds = None
        if self.class_prompt_inputs is not None:
            class_embeds = outputs.text_embeds[-self.class_prompt_inputs["input_ids"].shape[0] :]
        unwrapped = self.accelerator.unwrap_model(model)
        logit_scale = unwrapped.logit_scale.exp().clamp(max=self.args.max_logit_scale)
        loss = distributed_text_bag_loss(
            video_embeds,
            text_embeds,
            inputs["pseudo_labels"].to(video_embeds.device),
            logit_scale,
            self.args.loss_variant,
            class_embeds=class_embeds,
            contrast_scope=self.args.contrast_scope,
        )
        if num_videos == 0:
            loss = loss + 0.0 * (outputs.video_embeds.sum() + outputs.text_embeds.sum())
        return (loss, outputs) if return_outputs else loss

    def _save_checkpoint(self, model, trial) -> None:
        folder = Path(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        stale_state = folder / TRAINER_STATE_NAME
        if self.args.should_save and stale_state.is_file():
            logger.warning(
                "Writing over the earlier %s: its %s goes first, the new one comes last.", folder, TRAINER_STATE_NAME
            )
            os.remove(stale_state)
        super()._save_checkpoint(model, trial)

    def total_skipped_videos(self) -> int:
        """Unreadable videos skipped in training, summed over all processes (every process must call it)."""
        count = torch.tensor(self.skipped_videos, device=self.args.device)
        return int(self.accelerator.reduce(count, reduction="sum"))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["skipped_videos"] = self.skipped_videos
            logs["logit_scale"] = round(self.accelerator.unwrap_model(self.model).logit_scale.detach().exp().item(), 4)
        super().log(logs, start_time)

    def create_model_card(self, **kwargs) -> None:
        """Writes README.md from the repository's model-card template (instead of the Trainer's generic card)."""
        if not self.is_world_process_zero():
            return
        fields = dict(self.card_fields)
        fields.setdefault("model_id", self.args.hub_model_id or Path(self.args.output_dir).name)
        card = render_training_model_card(fields)
        Path(self.args.output_dir, "README.md").write_text(card, encoding="utf-8")
