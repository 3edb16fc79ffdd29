# SPDX-License-Identifier: Apache-2.0
"""The whole conversion: checkpoint + base CLIP -> [`MaxiVideoCLIPModel`], then a Hub-ready folder.

Tensors the checkpoint lacks (e.g. the token embedding, which the authors never saved) come from the base, optionally
followed by the weight-space ensemble the paper uses for evaluation. The processor, which alone decides how many
frames are sampled per video, is made from the base's image processor and tokenizer.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers.utils import logging

from ..ensembling import weight_space_ensemble
from ..modeling_maxi_video_clip import MaxiVideoCLIPModel
from ..processing_maxi_video_clip import MaxiVideoProcessor
from .errors import CheckpointConversionError, UnexpectedKeysError
from .key_mapping import MappedWeights, detect_layout, map_state_dict
from .report import REPORT_FILE_NAME, ConversionReport, file_sha256, render_conversion_model_card, report_reference
from .safe_loading import extract_state_dict, load_checkpoint_file

logger = logging.get_logger(__name__)

__all__ = [
    "VIDEO_CONFIG_FIELDS",
    "build_processor_from_base",
    "convert_checkpoint",
    "push_converted_to_hub",
    "save_converted_model",
]

# Config fields [`convert_checkpoint`] accepts as overrides: the video settings MAXI adds to CLIP's config. The
# number of frames is not one of them: the processor samples the frames ([`build_processor_from_base`]).
VIDEO_CONFIG_FIELDS = ("frame_pooling", "cross_frame_layers", "cross_frame_offsets")

# File suffixes of pickle-based weights, which a converted folder must not contain.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint + base -> model
# --------------------------------------------------------------------------------------------------------------------


def _validate_ratio(ensemble_ratio: float | None) -> None:
    if ensemble_ratio is None:
        return
    if isinstance(ensemble_ratio, bool) or not isinstance(ensemble_ratio, (int, float)):
        raise ValueError(f"ensemble_ratio must be a number in [0, 1] or None, got {ensemble_ratio!r}.")
    if not 0.0 <= float(ensemble_ratio) <= 1.0:
        raise ValueError(f"ensemble_ratio must be in [0, 1] (weight of the base model), got {ensemble_ratio!r}.")


def _validate_conversion_arguments(
    ensemble_ratio: float | None, ignore_patterns: Sequence[str], config_overrides: Mapping[str, object]
) -> None:
    _validate_ratio(ensemble_ratio)
    if "num_frames" in config_overrides:
        raise ValueError(
            f"num_frames={config_overrides['num_frames']!r} is not a model setting: the processor samples the frames. "
            "Pass it to build_processor_from_base(base, num_frames=...) instead."
        )
    unknown_overrides = sorted(set(config_overrides) - set(VIDEO_CONFIG_FIELDS))
    if unknown_overrides:
        raise ValueError(f"Unknown video settings {unknown_overrides}; expected some of {list(VIDEO_CONFIG_FIELDS)}.")
    if isinstance(ignore_patterns, str):
        raise ValueError(f"ignore_patterns must be a list of regular expressions, got the string {ignore_patterns!r}.")


def _load_base_model(base: str | os.PathLike, config_overrides: Mapping[str, object]):
    """The base in eval mode, and the names of its tensors the base's files lack (freshly initialised)."""
    # float32 whatever the base was saved in: the converted weights keep the checkpoint's precision.
    base_model, loading_info = MaxiVideoCLIPModel.from_pretrained(
        base, output_loading_info=True, dtype=torch.float32, **config_overrides
    )
    return base_model.eval(), set(loading_info.get("missing_keys", ()))


def _base_with_checkpoint_tensors(base_model: MaxiVideoCLIPModel, mapped: MappedWeights) -> MaxiVideoCLIPModel:
    """A copy of the base with every mapped checkpoint tensor loaded into it, in eval mode."""
    model = copy.deepcopy(base_model)
    incompatible = model.load_state_dict(mapped.tensors, strict=False)
    if incompatible.unexpected_keys:
        raise UnexpectedKeysError(f"Mapped tensors the model does not accept: {incompatible.unexpected_keys[:10]}")
    return model.eval()


def _log_conversion(report: ConversionReport) -> None:
    if report.initialised:
        logger.warning(
            "%d tensors are neither in the checkpoint nor in the base and keep their fresh initialisation: %s",
            len(report.initialised),
            report.initialised[:10],
        )
    logger.info(
        "Converted: %d tensors from the checkpoint, %d from the base, %d initialised, %d ignored",
        len(report.from_checkpoint),
        len(report.from_base),
        len(report.initialised),
        len(report.ignored),
    )


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    base: str | os.PathLike = "openai/clip-vit-base-patch16",
    ensemble_ratio: float | None = None,
    ignore_patterns: Sequence[str] = (),
    **config_overrides,
) -> tuple[MaxiVideoCLIPModel, ConversionReport]:
    """Convert an OpenAI-format CLIP checkpoint into a [`MaxiVideoCLIPModel`].

    Args:
        checkpoint: the authors' MAXI / ViFi-CLIP `.pth`, an OpenAI CLIP state dict or TorchScript archive, an
            open_clip "OpenAI" state dict, or a safetensors file in any of these layouts.
        base: Hub id or folder of the CLIP model with the checkpoint's architecture; it provides the config and every
            tensor the checkpoint lacks (the authors never saved the token embedding).
        ensemble_ratio: if given, every parameter becomes `ratio * base + (1 - ratio) * converted` (the paper
            evaluates with 0.2). Tensors the checkpoint lacks are unchanged by it.
        ignore_patterns: regular expressions of checkpoint keys to skip (see [`map_state_dict`]).
        config_overrides: video settings for the config (`VIDEO_CONFIG_FIELDS`), e.g. `cross_frame_layers=0`,
            `frame_pooling="mean"`. The number of frames belongs to the processor ([`build_processor_from_base`]).

    Returns:
        `(model, report)`: the converted model in eval mode and its [`ConversionReport`].
    """
    _validate_conversion_arguments(ensemble_ratio, ignore_patterns, config_overrides)
    obj, file_format = load_checkpoint_file(checkpoint)
    state_dict = extract_state_dict(obj)
    layout = detect_layout(state_dict)
    logger.info("Checkpoint %s: format %s, layout %s, %d tensors", checkpoint, file_format, layout, len(state_dict))

    base_model, not_in_base = _load_base_model(base, config_overrides)
    target_state = base_model.state_dict()
    mapped = map_state_dict(
        state_dict, {k: v.shape for k, v in target_state.items()}, layout=layout, ignore_patterns=ignore_patterns
    )
    model = _base_with_checkpoint_tensors(base_model, mapped)
    if ensemble_ratio is not None:
        logger.info("Weight-space ensemble: %.3f x base + %.3f x checkpoint", ensemble_ratio, 1 - ensemble_ratio)
        model = weight_space_ensemble(base_model, model, ratio=float(ensemble_ratio)).eval()

    remaining = [k for k in target_state if k not in mapped.tensors]
    report = ConversionReport(
        checkpoint=Path(checkpoint).name,
        checkpoint_sha256=file_sha256(checkpoint),
        checkpoint_format=file_format,
        layout=layout,
        base=report_reference(base),
        ensemble_ratio=None if ensemble_ratio is None else float(ensemble_ratio),
        config_overrides=dict(config_overrides),
        from_checkpoint=dict(sorted(mapped.sources.items())),
        from_base=sorted(k for k in remaining if k not in not_in_base),
        initialised=sorted(k for k in remaining if k in not_in_base),
        ignored=mapped.ignored,
    )
    _log_conversion(report)
    return model, report


# --------------------------------------------------------------------------------------------------------------------
# Hub-ready folder
# --------------------------------------------------------------------------------------------------------------------


def build_processor_from_base(base: str | os.PathLike, num_frames: int = 16) -> MaxiVideoProcessor:
    """A [`MaxiVideoProcessor`] whose video processor takes the base CLIP's image settings, with the base's
    tokenizer, sampling `num_frames` frames."""
    processor = MaxiVideoProcessor.from_pretrained(base)
    processor.num_frames = num_frames
    return processor


def save_converted_model(
    model: MaxiVideoCLIPModel,
    report: ConversionReport,
    output_dir: str | os.PathLike,
    processor: MaxiVideoProcessor | None = None,
    model_id: str | None = None,
    license: str = "other",
) -> Path:
    """Writes a Hub-ready folder: `model.safetensors` + `config.json` (with `auto_map`) + modeling files, the
    processor, a model card (`README.md`, titled `model_id`, by default the folder's name; `license` is its Hub
    license id) and `conversion_report.json`. Returns the folder."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output_dir {str(output_dir)!r} exists and is not a directory.")
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
    report.save(output_dir / REPORT_FILE_NAME)
    card = render_conversion_model_card(
        report,
        model_id=model_id or output_dir.name,
        license=license,
        num_frames=None if processor is None else processor.num_frames,
    )
    (output_dir / "README.md").write_text(card, encoding="utf-8")
    pickled = sorted(p.name for p in output_dir.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise CheckpointConversionError(f"Pickle-based weight files found in {str(output_dir)!r}: {pickled}.")
    logger.info("Saved the converted model to %s", output_dir)
    return output_dir


def push_converted_to_hub(
    output_dir: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None
) -> str:
    """Uploads a folder written by [`save_converted_model`] to the Hub repository `repo_id` (created if needed).
    Returns the URL of the commit."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    output_dir = Path(output_dir)
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"{str(output_dir)!r} holds no config.json: run the conversion first.")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        commit_message="Upload MAXI checkpoint converted with modeling_maxi.conversion",
        repo_type="model",
    )
    return commit.commit_url
