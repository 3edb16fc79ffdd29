# SPDX-License-Identifier: Apache-2.0
"""Training data for MAXI: text-bag datasets -> augmented frame stacks + fixed-size bags of prompts.

A row of a text-bag dataset (see ``modeling_maxi.text_bags.publishing``) holds ``video_path``, ``matched_label``,
``matched_text``, ``match_score`` and the bag sources (``llm_verbs``, ``caption_verbs``, the assembled ``text_bag``).
Every random choice made for a row (frame offsets, augmentation, bag sample) comes from a generator seeded with
``(seed, epoch, index)``, so an epoch is reproducible regardless of dataloader workers, process count or resuming.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from ..text_bags.bag_assembly import assemble_text_bag, normalize_phrase
from ..text_bags.filtering import BuildFilter, filter_after_build_filter, validate_filter_score
from ..video_io import VideoDecodeError, read_video_frames

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("video_path", "matched_label", "matched_text")
#: Bag sources selectable with ``--text_sources`` and the dataset column each one reads.
TEXT_SOURCE_COLUMNS = {"dictionary": None, "llm": "llm_verbs", "captions": "caption_verbs"}
PROMPT_TEMPLATE = "a photo of a {}."
#: Multi-scale crop scales of TSN / X-CLIP / ViFi-CLIP (fractions of the shorter side).
MULTI_SCALE_CROP_SCALES = (1.0, 0.875, 0.75, 0.66)
#: Training augmentations, in the order they are applied; the paper (X-CLIP / ViFi-CLIP recipe) uses all four.
#: Direction- or colour-defined classes need fewer: a flip turns "moving left" into "moving right" (as in SSv2).
TRAIN_AUGMENTATIONS = ("multiscale_crop", "flip", "color_jitter", "grayscale")


def class_prompt(matched_text: str) -> str:
    """The dictionary part of every training prompt, ``"a photo of a {matched}."``."""
    return PROMPT_TEMPLATE.format(matched_text)


def build_prompt(matched_text: str, text: str) -> str:
    """A training prompt: ``"a photo of a {matched}." + " " + text`` (supplementary sec. B)."""
    return f"{class_prompt(matched_text)} {text}"


def sample_bag(bag: Sequence[str], matched_text: str, bag_size: int, rng: np.random.Generator) -> list[str]:
    """Draw exactly ``bag_size`` prompts from a text bag.

    The matched dictionary text is never drawn as a bag text (it is already the first part of the prompt). A bag
    with at least ``bag_size`` texts is sampled without replacement; a smaller bag is used whole, repeated as
    successive random permutations until ``bag_size`` texts are drawn; an empty bag gives ``bag_size`` copies of the
    class prompt. The order of the result is random too.
    """
    if isinstance(bag_size, bool) or not isinstance(bag_size, int) or bag_size < 1:
        raise ValueError(f"bag_size must be a positive integer, got {bag_size!r}.")
    if isinstance(bag, str):
        raise TypeError(f"bag must be a list of strings, not the string {bag!r}.")
    matched_key = normalize_phrase(matched_text)
    texts = [text for text in bag if normalize_phrase(text) and normalize_phrase(text) != matched_key]
    if not texts:
        return [class_prompt(matched_text)] * bag_size
    if len(texts) >= bag_size:
        chosen = rng.choice(len(texts), size=bag_size, replace=False)
    else:
        rounds = math.ceil(bag_size / len(texts))
        chosen = np.concatenate([rng.permutation(len(texts)) for _ in range(rounds)])[:bag_size]
    return [build_prompt(matched_text, texts[i]) for i in chosen]


def unknown_text_sources(text_sources: Sequence[str]) -> list[str]:
    """The entries of `text_sources` that are not bag sources (`TEXT_SOURCE_COLUMNS`), in order."""
    return [source for source in text_sources if source not in TEXT_SOURCE_COLUMNS]


def validate_text_bag_columns(column_names: Sequence[str], text_sources: Sequence[str] | None) -> None:
    """Fail fast, naming the missing column, when a dataset cannot feed training with the chosen sources."""
    needed = list(REQUIRED_COLUMNS)
    if text_sources is None:
        needed.append("text_bag")
    else:
        unknown = unknown_text_sources(text_sources)
        if unknown:
            raise ValueError(f"Unknown text source(s) {unknown}; expected some of {sorted(TEXT_SOURCE_COLUMNS)}.")
        if "dictionary" not in text_sources:
            raise ValueError(
                f"text_sources={list(text_sources)} lacks 'dictionary': the matched dictionary text is the prompt "
                "prefix and the pseudo label of every bag, so it is always used."
            )
        needed += [TEXT_SOURCE_COLUMNS[source] for source in text_sources if TEXT_SOURCE_COLUMNS[source]]
    missing = [column for column in needed if column not in column_names]
    if missing:
        raise ValueError(
            f"The text-bag dataset lacks column(s) {missing}; it has {list(column_names)}. "
            "Build it with dataset_scripts (text bags) or pass --text_sources matching its columns."
        )


def assemble_bags_batch(batch: dict[str, list], source_columns: Sequence[str]) -> dict[str, list]:
    """`Dataset.map` function: the ``text_bag`` column rebuilt from ``source_columns`` (de-duplicated, in order)."""
    return {
        "text_bag": [
            assemble_text_bag(matched, [batch[column][row] or [] for column in source_columns])
            for row, matched in enumerate(batch["matched_text"])
        ]
    }


def matched_rows_batch(batch: dict[str, list]) -> list[bool]:
    """`Dataset.filter` function: rows whose video was matched to the dictionary (``matched_label >= 0``)."""
    return [label is not None and int(label) >= 0 for label in batch["matched_label"]]


def prepare_training_videos(
    dataset,
    text_sources: Sequence[str] | None = None,
    filter_ratio: float = 1.0,
    filter_score: str = "similarity",
    build_filter: BuildFilter | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Validate the columns, drop unmatched videos, keep the top ``filter_ratio`` by confidence, choose sources.

    Args:
        dataset (`datasets.Dataset`): a text-bag dataset.
        text_sources (`list[str]`, *optional*): sources to rebuild the bags from (``"dictionary"`` plus any of
            ``"llm"``, ``"captions"``); `None` uses the dataset's own ``text_bag`` column.
        filter_ratio (`float`): fraction p of videos kept, ranked by ``filter_score`` (paper sec. 3.2: 0.9). This is
            the one place p is applied: a build publishes every video by default.
        filter_score (`str`): ``"similarity"`` ranks by ``match_score`` (the paper's), ``"margin"`` by the best
            match's lead over the runner-up in ``top5_scores`` (see `modeling_maxi.text_bags.filtering`).
        build_filter (`BuildFilter`, *optional*): the filter the dataset already went through at build time (see
            `modeling_maxi.text_bags.filtering.build_filter_of`); p then counts relative to the original videos, and
            a filter that cannot compose with it is refused.

    Returns:
        The `datasets.Dataset` (at least ``video_path``, ``matched_label``, ``matched_text`` and ``text_bag``) and
        the filter's summary: ``filter_ratio``, ``filter_score``, ``videos_before_filter`` (N, of the original
        collection) and ``videos_kept``.
    """
    validate_text_bag_columns(dataset.column_names, text_sources)
    num_rows = len(dataset)
    dataset = dataset.filter(matched_rows_batch, batched=True, desc="Dropping videos without a dictionary match")
    if len(dataset) < num_rows:
        logger.warning("Dropped %d of %d videos without a dictionary match.", num_rows - len(dataset), num_rows)
    validate_filter_score(filter_score)
    num_before = build_filter.num_before if build_filter is not None else len(dataset)
    if filter_ratio != 1.0 or build_filter is not None:
        result = filter_after_build_filter(dataset, filter_ratio, filter_score, build_filter)
        logger.info(
            "Text-bag filtering p=%s by %s kept %d of %d videos (delta_p=%s).",
            filter_ratio,
            filter_score,
            result.num_kept,
            result.num_before,
            result.delta_p,
        )
        dataset = result.dataset
    summary = {
        "filter_ratio": filter_ratio,
        "filter_score": filter_score,
        "videos_before_filter": num_before,
        "videos_kept": len(dataset),
    }
    if text_sources is not None:
        columns = [TEXT_SOURCE_COLUMNS[source] for source in text_sources if TEXT_SOURCE_COLUMNS[source]]
        dataset = dataset.map(
            assemble_bags_batch,
            batched=True,
            fn_kwargs={"source_columns": columns},
            desc=f"Assembling text bags from {', '.join(text_sources)}",
        )
    if len(dataset) == 0:
        raise ValueError("No training videos are left after dropping unmatched videos and filtering.")
    return dataset, summary


def prepare_text_bag_dataset(
    dataset, text_sources: Sequence[str] | None = None, filter_ratio: float = 1.0, filter_score: str = "similarity"
):
    """The training rows of `prepare_training_videos` (no build-time filter), without its summary."""
    return prepare_training_videos(dataset, text_sources, filter_ratio, filter_score)[0]


class MultiScaleCrop(v2.Transform):
    """TSN-style multi-scale crop: crop height and width are each a scale of the shorter side (scales at most one
    step apart), the crop is placed at random and resized to ``size``. Leading dimensions share one crop."""

    def __init__(self, size: int, scales: Sequence[float] = MULTI_SCALE_CROP_SCALES, max_distort: int = 1):
        super().__init__()
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {scales!r}.")
        self.size = [size, size]
        self.scales = tuple(scales)
        self.max_distort = max_distort

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        short = min(height, width)
        pairs = [
            (i, j) for i in range(len(self.scales)) for j in range(len(self.scales)) if abs(i - j) <= self.max_distort
        ]
        pick = int(torch.randint(len(pairs), ()))
        crop_h = max(1, int(short * self.scales[pairs[pick][0]]))
        crop_w = max(1, int(short * self.scales[pairs[pick][1]]))
        top = int(torch.randint(height - crop_h + 1, ()))
        left = int(torch.randint(width - crop_w + 1, ()))
        return {"top": top, "left": left, "height": crop_h, "width": crop_w}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(v2.functional.resized_crop, inpt, **params, size=self.size, antialias=True)


def validate_augmentations(augmentations: Sequence[str]) -> tuple[str, ...]:
    """Check a selection of `TRAIN_AUGMENTATIONS`; returns it as a tuple (empty = resize and centre crop only)."""
    if isinstance(augmentations, str):
        raise TypeError(f"augmentations must be a list of names, not the string {augmentations!r}.")
    unknown = [name for name in augmentations if name not in TRAIN_AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation(s) {unknown}; choose from {list(TRAIN_AUGMENTATIONS)}.")
    return tuple(augmentations)


def build_train_transform(
    image_size: int,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    augment: bool = True,
    augmentations: Sequence[str] = TRAIN_AUGMENTATIONS,
) -> v2.Compose:
    """Frames ``(T, 3, H, W)`` uint8 -> normalised float ``(T, 3, image_size, image_size)``.

    With ``augment`` the selected `augmentations` (default: the paper's X-CLIP / ViFi-CLIP recipe, all of
    `TRAIN_AUGMENTATIONS`) are applied with one set of random parameters to all frames of a video: multi-scale crop,
    horizontal flip, colour jitter with p=0.8, greyscale with p=0.2. Without ``augment``, or without
    ``"multiscale_crop"``: resize of the shorter side and centre crop, as at inference.
    """
    selected = validate_augmentations(augmentations) if augment else ()
    if "multiscale_crop" in selected:
        # As X-CLIP / ViFi-CLIP: shorter side to 256/224 of the crop size, then crops of 1 to 0.66 of it.
        steps = [v2.Resize(round(image_size * 256 / 224), antialias=True), MultiScaleCrop(image_size)]
    else:
        steps = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if "flip" in selected:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if "color_jitter" in selected:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8))
    if "grayscale" in selected:
        steps.append(v2.RandomGrayscale(p=0.2))
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(image_mean), list(image_std))])


def _crop_height(crop_size) -> int:
    """The height of an image processor's `crop_size` (an int, a `SizeDict` or a dict)."""
    if isinstance(crop_size, int):
        return crop_size
    height = getattr(crop_size, "height", None)
    return int(height if height is not None else crop_size["height"])


class TextBagVideoDataset(torch.utils.data.Dataset):
    """Map-style dataset over a prepared text-bag dataset.

    Item ``index`` is ``{"pixel_values": (T, 3, S, S), "prompts": [bag_size str], "pseudo_label": int}``, or
    ``{"skipped": path}`` when the video cannot be read (logged as a warning; the collator drops and counts it).

    Args:
        dataset (`datasets.Dataset`): output of :func:`prepare_text_bag_dataset`.
        video_root (`str`, *optional*): directory that relative ``video_path`` values are resolved against.
        num_frames (`int`): frames T per video (segment sampling with random offsets when ``training``).
        bag_size (`int`): prompts per video.
        image_size (`int`), image_mean, image_std: output frame size and normalisation (from the processor).
        seed (`int`): base seed; item randomness is drawn from ``(seed, epoch, index)``.
        training (`bool`): random frame offsets and augmentation; otherwise segment centres and centre crop.
        video_backend (`str`): decoder passed to :func:`modeling_maxi.video_io.read_video_frames`.
        augmentations (`Sequence[str]`): the `TRAIN_AUGMENTATIONS` applied when ``training`` (default: all).
    """

    def __init__(
        self,
        dataset,
        video_root: str | None,
        num_frames: int,
        bag_size: int,
        image_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        seed: int = 42,
        training: bool = True,
        video_backend: str = "auto",
        augmentations: Sequence[str] = TRAIN_AUGMENTATIONS,
    ):
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}.")
        if isinstance(bag_size, bool) or not isinstance(bag_size, int) or bag_size < 1:
            raise ValueError(f"bag_size must be a positive integer, got {bag_size!r}.")
        if video_root is not None and not os.path.isdir(video_root):
            raise ValueError(f"video_root {video_root!r} is not a directory.")
        validate_text_bag_columns(dataset.column_names, None)
        self.dataset = dataset
        self.video_root = video_root
        self.num_frames = num_frames
        self.bag_size = bag_size
        self.image_size = image_size
        self.seed = int(seed)
        self.training = training
        self.video_backend = video_backend
        self.epoch = 0
        self.augmentations = validate_augmentations(augmentations)
        self.transform = build_train_transform(
            image_size, image_mean, image_std, augment=training, augmentations=self.augmentations
        )

    @classmethod
    def from_processor(cls, dataset, processor, video_root: str | None, num_frames: int, bag_size: int, **kwargs):
        """The dataset with the frame size and normalisation of `processor` (a [`MaxiVideoProcessor`]); `kwargs` are
        the remaining arguments (`seed`, `training`, `video_backend`, `augmentations`)."""
        image_processor = processor.image_processor
        image_size = _crop_height(image_processor.crop_size)
        mean, std = image_processor.image_mean, image_processor.image_std
        return cls(dataset, video_root, num_frames, bag_size, image_size, mean, std, **kwargs)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws (frames, augmentation, bag) the items use."""
        self.epoch = int(epoch)

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, 3, self.image_size, self.image_size)

    def video_path(self, relative: str) -> str:
        if self.video_root is None or os.path.isabs(relative):
            return relative
        return os.path.join(self.video_root, relative)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.dataset[int(index)]
        frames_seed, augment_seed, bag_seed = np.random.SeedSequence([self.seed, self.epoch, int(index)]).spawn(3)
        path = self.video_path(row["video_path"])
        try:
            frames = read_video_frames(
                path,
                self.num_frames,
                strategy="segment",
                backend=self.video_backend,
                training=self.training,
                generator=np.random.default_rng(frames_seed),
            )
        except (FileNotFoundError, VideoDecodeError, IsADirectoryError) as error:
            logger.warning("Skipping unreadable video %s: %s", path, error)
            return {"skipped": path}
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(augment_seed.generate_state(1)[0]))
            pixel_values = self.transform(video)
        prompts = sample_bag(row["text_bag"] or [], row["matched_text"], self.bag_size, np.random.default_rng(bag_seed))
        return {"pixel_values": pixel_values, "prompts": prompts, "pseudo_label": int(row["matched_label"])}


@dataclass
class TextBagCollator:
    """Stacks readable items and tokenises their prompts; unreadable items are dropped and counted.

    Returns ``pixel_values (B, T, 3, S, S)``, ``input_ids``/``attention_mask`` ``(B * bag_size, L)`` (bag of video
    ``i`` in rows ``i * bag_size`` to ``(i + 1) * bag_size - 1``), ``pseudo_labels (B,)`` and ``num_skipped`` (the
    number of items dropped from this batch).
    """

    tokenizer: Any
    bag_size: int
    frame_shape: tuple[int, int, int, int]
    max_length: int = 77

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        readable = [item for item in items if "skipped" not in item]
        for item in readable:
            if len(item["prompts"]) != self.bag_size:
                raise ValueError(f"An item has {len(item['prompts'])} prompts, expected bag_size={self.bag_size}.")
        prompts = [prompt for item in readable for prompt in item["prompts"]]
        if prompts:
            tokens = self.tokenizer(
                prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            input_ids, attention_mask = tokens["input_ids"], tokens["attention_mask"]
            pixel_values = torch.stack([item["pixel_values"] for item in readable])
        else:
            input_ids = torch.zeros((0, 1), dtype=torch.long)
            attention_mask = torch.zeros((0, 1), dtype=torch.long)
            pixel_values = torch.zeros((0, *self.frame_shape))
        return {
            "pixel_values": pixel_values,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pseudo_labels": torch.tensor([item["pseudo_label"] for item in readable], dtype=torch.long),
            "num_skipped": torch.tensor(len(items) - len(readable), dtype=torch.long),
        }
