# SPDX-License-Identifier: Apache-2.0
"""What a training run starts from: the text-bag dataset, the model with its processor, and which parts of the
model train."""

from __future__ import annotations

import math
import os

import datasets
import torch

from ..modeling_maxi_video_clip import MaxiVideoCLIPModel
from ..processing_maxi_video_clip import MaxiVideoProcessor
from ..text_bags.filtering import BuildFilter, build_filter_of
from ..text_bags.publishing import load_build_record, load_text_bags

__all__ = ["configure_trainable", "load_model_and_processor", "load_text_bag_build_filter", "load_text_bag_dataset"]


def _is_saved_dataset(path: str) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, name)) for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def load_text_bag_dataset(
    name_or_path: str | None, config_name: str | None = None, split: str = "train", cache_dir: str | None = None
) -> datasets.Dataset:
    """
    One split of a text-bag dataset: a folder saved with `save_to_disk`, a folder published by
    `modeling_maxi.text_bags.publish_text_bags`, or a Hub id.

    Args:
        name_or_path (`str`): The dataset; `None` is refused with a message naming `--dataset_name`.
        config_name (`str`, *optional*): Configuration of a published dataset, e.g. `"dictionary_llm_captions"`
            (default: the dataset's default configuration).
        split (`str`, defaults to `"train"`): The split.
        cache_dir (`str`, *optional*): Where downloaded datasets are cached.
    """
    if name_or_path is None:
        raise ValueError("--dataset_name is required: a text-bag dataset (Hub id or local folder).")
    name_or_path = os.path.expanduser(str(name_or_path))
    if _is_saved_dataset(name_or_path):
        dataset = datasets.load_from_disk(name_or_path)
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise ValueError(f"{name_or_path!r} has no split {split!r}; it has {sorted(dataset)}.")
            dataset = dataset[split]
        return dataset
    looks_like_path = os.path.isabs(name_or_path) or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1
    if looks_like_path and not os.path.exists(name_or_path):
        raise FileNotFoundError(f"--dataset_name {name_or_path!r}: no such folder (a Hub id is 'name' or 'org/name').")
    if os.path.exists(name_or_path):
        return load_text_bags(name_or_path, config_name, split, cache_dir)
    try:
        return load_text_bags(name_or_path, config_name, split, cache_dir)
    except Exception as error:  # not a local folder: say so along with why the Hub did not give it
        raise FileNotFoundError(
            f"--dataset_name {name_or_path!r} is no local folder, and loading it from the Hub failed: {error}"
        ) from error


def load_text_bag_build_filter(name_or_path: str | None) -> BuildFilter | None:
    """The filter a published text-bag dataset went through at build time, from its build record (None when it
    published every video, or has no record: a folder saved with `save_to_disk`, a Hub dataset out of reach)."""
    if name_or_path is None or _is_saved_dataset(os.path.expanduser(str(name_or_path))):
        return None
    return build_filter_of(load_build_record(os.path.expanduser(str(name_or_path))))


def load_model_and_processor(
    model_name_or_path: str,
    processor_name_or_path: str | None = None,
    num_frames: int | None = None,
    cache_dir: str | None = None,
    **config_overrides,
) -> tuple[MaxiVideoCLIPModel, MaxiVideoProcessor]:
    """
    The model to fine-tune and its processor.

    Args:
        model_name_or_path (`str`): A CLIP or MAXI checkpoint (Hub id or folder).
        processor_name_or_path (`str`, *optional*): The processor's checkpoint, if not `model_name_or_path`.
        num_frames (`int`, *optional*): Frames the processor samples per video (the processor owns frame sampling;
            saved with it in the exported checkpoint).
        cache_dir (`str`, *optional*): Where downloaded checkpoints are cached.
        **config_overrides: `MaxiVideoCLIPConfig` fields to override, e.g. `frame_pooling="max"`.
    """
    model = MaxiVideoCLIPModel.from_pretrained(model_name_or_path, cache_dir=cache_dir, **config_overrides)
    processor = MaxiVideoProcessor.from_pretrained(processor_name_or_path or model_name_or_path, cache_dir=cache_dir)
    if num_frames is not None:
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
        processor.num_frames = num_frames
    return model, processor


def configure_trainable(model: MaxiVideoCLIPModel, training_args) -> None:
    """Sets the initial temperature and which parts train, from a `MaxiTrainingArguments`."""
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
