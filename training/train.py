#!/usr/bin/env python
# Copyright 2026 The MAXI authors and contributors. Licensed under the Apache License, Version 2.0.
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
processor and a model card rendered from the repository's ``model_card.md``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import yaml  # noqa: E402
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, set_seed  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor, load_class_names, weight_space_ensemble  # noqa: E402
from modeling_maxi.loss import LOSS_VARIANTS, distributed_text_bag_loss  # noqa: E402
from modeling_maxi.model_card import MAXI_CITATION, render_model_card  # noqa: E402
from modeling_maxi.text_bags.filtering import filter_score_field, validate_filter_score  # noqa: E402
from modeling_maxi.text_bags.publishing import load_text_bags as load_published_text_bags  # noqa: E402
from modeling_maxi.training.data import (  # noqa: E402
    PROMPT_TEMPLATE,
    TEXT_SOURCE_COLUMNS,
    TRAIN_AUGMENTATIONS,
    TextBagCollator,
    TextBagVideoDataset,
    prepare_text_bag_dataset,
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
        default=1.0, metadata={"help": "Fraction p of videos kept, the most confidently matched ones (paper: 0.9)."}
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


@dataclass
class MaxiTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the MAXI objective's settings."""

    loss_variant: str = field(
        default="mil_nce", metadata={"help": f"Objective, one of {', '.join(LOSS_VARIANTS)} (paper: mil_nce)."}
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

    def __post_init__(self):
        if self.loss_variant not in LOSS_VARIANTS:
            raise ValueError(f"--loss_variant {self.loss_variant!r} unknown; choose from {', '.join(LOSS_VARIANTS)}.")
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


class SetEpochCallback(TrainerCallback):
    """Tells the dataset which epoch starts, before the dataloader's workers copy it."""

    def __init__(self, dataset: TextBagVideoDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor(state.epoch + 1e-6) if state.epoch is not None else 0)


class MaxiTrainer(Trainer):
    """`Trainer` whose loss is the text-bag objective over the global batch.

    The loss is a mean over this micro-batch, so the Trainer divides it by the gradient accumulation steps
    (`loss_is_scaled_for_ga = False`). Batches come from :class:`modeling_maxi.training.data.TextBagCollator`.
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

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped", None)
        if skipped is not None and model.training:
            self.skipped_videos += int(skipped)
        pseudo_labels = inputs.pop("pseudo_labels")
        pixel_values = inputs["pixel_values"]
        num_videos = pixel_values.shape[0]
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        if num_videos == 0:
            # Every video of this batch was unreadable. The model still runs on one blank video and an empty text
            # (CLIP cannot encode zero items) so that this rank joins the gathers and DDP's gradient
            # synchronisation; the loss adds nothing (zero rows, zero weight on the blank outputs).
            tokenizer = self.processing_class.tokenizer
            pixel_values = pixel_values.new_zeros((1, *pixel_values.shape[1:]))
            input_ids = torch.tensor([[tokenizer.bos_token_id, tokenizer.eos_token_id]], device=pixel_values.device)
            attention_mask = torch.ones_like(input_ids)
        num_bag_texts = 0 if num_videos == 0 else input_ids.shape[0]
        if num_videos and num_bag_texts % num_videos:
            raise ValueError(f"{num_bag_texts} bag texts cannot be split evenly over {num_videos} videos.")
        bag_size = num_bag_texts // num_videos if num_videos else self.bag_size
        if self.class_prompt_inputs is not None:
            input_ids, attention_mask = _concat_padded(
                (input_ids, attention_mask),
                (self.class_prompt_inputs["input_ids"], self.class_prompt_inputs["attention_mask"]),
                pad_id=self.processing_class.tokenizer.pad_token_id,
            )
        outputs = model(
            input_ids=input_ids.to(pixel_values.device),
            attention_mask=attention_mask.to(pixel_values.device),
            pixel_values=pixel_values,
        )
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
            pseudo_labels.to(video_embeds.device),
            logit_scale,
            self.args.loss_variant,
            class_embeds=class_embeds,
        )
        if num_videos == 0:
            loss = loss + 0.0 * (outputs.video_embeds.sum() + outputs.text_embeds.sum())
        return (loss, outputs) if return_outputs else loss

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
        fields.setdefault("base_model", "openai/clip-vit-base-patch16")
        fields.setdefault("provenance", "Fine-tuned with `training/train.py` of the MAXI release.")
        try:
            card = render_model_card(**fields)
        except FileNotFoundError as error:  # installed without the repository checkout that holds model_card.md
            logger.warning("%s; writing a short model card instead.", error)
            card = (
                f"---\nlibrary_name: transformers\nbase_model: {fields['base_model']}\ntags:\n- video\n- maxi\n---\n\n"
                f"# {fields['model_id']}\n\nA `MaxiVideoCLIPModel` (MAXI, Lin et al., ICCV 2023).\n\n"
                f"## Provenance\n\n{fields['provenance']}\n\n## Citation\n\n```bibtex\n{MAXI_CITATION}\n```\n"
            )
        Path(self.args.output_dir, "README.md").write_text(card, encoding="utf-8")


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


def _crop_height(crop_size) -> int:
    if isinstance(crop_size, int):
        return crop_size
    height = getattr(crop_size, "height", None)
    return int(height if height is not None else crop_size["height"])


def config_file_to_args(path: str) -> list[str]:
    """Flags equivalent to a YAML/JSON config file (so that later command-line flags override them)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    if not isinstance(config, dict):
        raise ValueError(f"Config file {path} must hold a mapping of argument names to values.")
    flags = []
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            flags += [f"--{key}", *[str(v) for v in value]]
        elif isinstance(value, dict):
            raise ValueError(f"Config key {key!r} holds a mapping; pass nested settings as JSON strings.")
        else:
            flags += [f"--{key}", str(value)]
    return flags


def parse_args(argv: list[str] | None = None):
    """Parse flags, a lone YAML/JSON file, or ``--config FILE`` followed by overriding flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 1 and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        argv = config_file_to_args(argv[0]) + argv[1:]
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise ValueError("--config needs a file path.")
        argv = config_file_to_args(argv[index + 1]) + argv[:index] + argv[index + 2 :]
    parser = HfArgumentParser((ModelArguments, DataArguments, MaxiTrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def load_text_bags(data_args: DataArguments, cache_dir: str | None):
    if data_args.dataset_name is None:
        raise ValueError("--dataset_name is required: a text-bag dataset (Hub id or local folder).")
    name = data_args.dataset_name
    if os.path.isdir(name) and (
        os.path.isfile(os.path.join(name, "dataset_info.json")) or os.path.isfile(os.path.join(name, "state.json"))
    ):
        dataset = datasets.load_from_disk(name)
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset[data_args.train_split]
        return dataset
    return load_published_text_bags(name, data_args.dataset_config_name, data_args.train_split, cache_dir)


def load_model_and_processor(model_args: ModelArguments, data_args: DataArguments):
    overrides = {"num_frames": data_args.num_frames}
    if model_args.frame_pooling is not None:
        overrides["frame_pooling"] = model_args.frame_pooling
    if model_args.cross_frame_layers is not None:
        overrides["cross_frame_layers"] = model_args.cross_frame_layers
    model = MaxiVideoCLIPModel.from_pretrained(
        model_args.model_name_or_path, cache_dir=model_args.cache_dir, **overrides
    )
    processor = MaxiVideoProcessor.from_pretrained(
        model_args.processor_name_or_path or model_args.model_name_or_path, cache_dir=model_args.cache_dir
    )
    processor.num_frames = data_args.num_frames
    return model, processor, overrides


def configure_trainable(model: MaxiVideoCLIPModel, training_args: MaxiTrainingArguments) -> None:
    if training_args.temperature_init is not None:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(1.0 / training_args.temperature_init))
    model.logit_scale.requires_grad_(training_args.learn_temperature)
    if training_args.freeze_vision_encoder:
        model.vision_model.requires_grad_(False)
        model.visual_projection.requires_grad_(False)
    if training_args.freeze_text_encoder:
        model.text_model.requires_grad_(False)
        model.text_projection.requires_grad_(False)


def tokenize_class_prompts(processor: MaxiVideoProcessor, class_names_source: str) -> dict[str, torch.Tensor]:
    names = load_class_names(class_names_source)
    prompts = [PROMPT_TEMPLATE.format(name) for name in names]
    return dict(processor.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt"))


def card_fields(model_args, data_args, training_args, metrics) -> dict:
    dataset = data_args.dataset_name
    is_hub_dataset = dataset is not None and not os.path.exists(dataset)
    provenance = [
        f"- Fine-tuned from `{model_args.model_name_or_path}` with `training/train.py` (MAXI release), loss "
        f"`{training_args.loss_variant}`, {metrics.get('train_steps', 'n/a')} optimisation steps.",
        f"- Training videos: {metrics.get('train_videos', 'n/a')}; unreadable videos skipped: "
        f"{metrics.get('skipped_videos', 0)}.",
    ]
    if training_args.ensemble_ratio > 0:
        provenance.append(
            f"- Weight-space ensembling: every parameter is `{training_args.ensemble_ratio:g} x base + "
            f"{1 - training_args.ensemble_ratio:g} x fine-tuned` (paper sec. 4.2)."
        )
    else:
        provenance.append("- No weight-space ensembling: these are the fine-tuned weights.")
    config = {
        "model_name_or_path": model_args.model_name_or_path,
        **{k: v for k, v in asdict(data_args).items() if v is not None},
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
    return {
        "model_id": training_args.hub_model_id or Path(training_args.output_dir).name,
        "base_model": model_args.model_name_or_path,
        "provenance": "\n".join(provenance),
        "training_config": config,
        "dataset_link": (f"https://huggingface.co/datasets/{dataset}" if is_hub_dataset else f"local: `{dataset}`"),
        "dataset_name": dataset if is_hub_dataset else None,
        "eval_table": None,
    }


def main(argv: list[str] | None = None) -> MaxiTrainer:
    model_args, data_args, training_args = parse_args(argv)

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    logging.getLogger("modeling_maxi.training.data").setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    logger.info("Training arguments %s", training_args)

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.resume_from_checkpoint is None:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None:
            logger.info("Resuming from %s found in the output directory.", last_checkpoint)

    set_seed(training_args.seed)

    raw = load_text_bags(data_args, model_args.cache_dir)
    train_bags = prepare_text_bag_dataset(raw, data_args.text_sources, data_args.filter_ratio, data_args.filter_score)
    if data_args.max_train_samples is not None:
        train_bags = train_bags.select(range(min(data_args.max_train_samples, len(train_bags))))

    model, processor, overrides = load_model_and_processor(model_args, data_args)
    configure_trainable(model, training_args)

    image_size = _crop_height(processor.image_processor.crop_size)
    train_dataset = TextBagVideoDataset(
        train_bags,
        video_root=data_args.video_root,
        num_frames=data_args.num_frames,
        bag_size=data_args.bag_size,
        image_size=image_size,
        image_mean=processor.image_processor.image_mean,
        image_std=processor.image_processor.image_std,
        seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
        training=True,
        video_backend=data_args.video_backend,
        augmentations=data_args.augmentations,
    )
    collator = TextBagCollator(processor.tokenizer, data_args.bag_size, train_dataset.frame_shape)
    class_prompts = None
    if training_args.loss_variant == "cross_entropy":
        class_prompts = tokenize_class_prompts(processor, data_args.class_names)
        max_label = max(train_bags["matched_label"])
        if max_label >= class_prompts["input_ids"].shape[0]:
            raise ValueError(
                f"matched_label {max_label} is out of range for --class_names {data_args.class_names!r} "
                f"({class_prompts['input_ids'].shape[0]} classes)."
            )

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

    checkpoint = training_args.resume_from_checkpoint or last_checkpoint
    result = trainer.train(resume_from_checkpoint=checkpoint)
    skipped_count = torch.tensor(trainer.skipped_videos, device=training_args.device)
    skipped = int(trainer.accelerator.reduce(skipped_count, reduction="sum"))
    if skipped:
        logger.warning("Skipped %d unreadable videos during training.", skipped)
    metrics = dict(result.metrics)
    metrics["train_videos"] = len(train_bags)
    metrics["skipped_videos"] = skipped
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # Export: weight-space ensembling with the base model, then a Hub-ready folder.
    trained = trainer.accelerator.unwrap_model(trainer.model)
    if training_args.ensemble_ratio > 0:
        base = MaxiVideoCLIPModel.from_pretrained(
            model_args.model_name_or_path, cache_dir=model_args.cache_dir, **overrides
        )
        ensembled = weight_space_ensemble(base, trained, training_args.ensemble_ratio)
        trained.load_state_dict(ensembled.state_dict())
        del base, ensembled
    trainer.card_fields = card_fields(
        model_args, data_args, training_args, {**metrics, "train_steps": trainer.state.global_step}
    )
    if training_args.push_to_hub:
        # Saves the (ensembled) model and processor, writes the model card, uploads the output folder.
        trainer.push_to_hub(commit_message="MAXI fine-tuning (weight-space ensembled)")
    else:
        trainer.save_model()
        trainer.create_model_card()
    return trainer


def cli() -> None:
    """Console entry point (`maxi-train`)."""
    main()


if __name__ == "__main__":
    cli()
