# SPDX-License-Identifier: Apache-2.0
"""Zero-shot evaluation loop of the protocol (MAXI supp. sec. 2, "Inference"): one view per video (segment-centre
frames, centre crop by the processor), one prompt per class (`"a photo of a {}."`), class text embeddings computed once,
videos batched through a torch `DataLoader`. Videos that are missing or cannot be decoded are counted and listed in the
results; they never vanish silently.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers.utils import logging

from ..scoring import video_text_logits
from ..video_io import VideoDecodeError
from .datasets import EvalSplit, VideoSample
from .metrics import compute_metrics
from .results import build_results

logger = logging.get_logger(__name__)

DEFAULT_TEMPLATE = "a photo of a {}."
MISSING_VIDEO_POLICIES = ("skip", "error")


@dataclass
class VideoFailure:
    """A video of a split that could not be used: `reason` is `"missing"` (no such file) or `"unreadable"`."""

    path: str
    reason: str
    error: str


@dataclass
class SplitPredictions:
    """
    Class scores of the readable videos of a split.

    Args:
        split: The evaluated split.
        scores: `(N_ok, C)` float32 logits (`logit_scale * cosine`) of the readable videos, in split order.
        sample_indices: `(N_ok,)` positions of those videos in `split.samples`.
        failures: The videos that are missing or unreadable.
    """

    split: EvalSplit
    scores: np.ndarray
    sample_indices: np.ndarray
    failures: list[VideoFailure] = field(default_factory=list)

    @property
    def labels(self) -> list[tuple[int, ...]]:
        """Class ids of the scored videos, aligned with `scores`."""
        return [self.split.samples[i].labels for i in self.sample_indices.tolist()]


class VideoClassificationDataset(Dataset):
    """
    Videos of a split as processor outputs. An item is a dict with `index`, `pixel_values` (`(T, 3, H, W)`, or `None`
    when the video is missing or unreadable), `labels` and, for failures, `failure` (a [`VideoFailure`]).

    Args:
        samples: The videos (paths relative to `video_root`).
        video_root: Folder the split's paths are relative to.
        processor: A [`MaxiVideoProcessor`].
        num_frames: Frames per video.
        training: Random frame inside each segment (training-time sampling) instead of segment centres. The
            randomness comes from torch's generator of the loading process, so seeded runs repeat.
    """

    def __init__(self, samples: list[VideoSample], video_root: str | Path, processor, num_frames: int, training=False):
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"`num_frames` must be a positive int, got {num_frames!r}.")
        if not Path(video_root).is_dir():
            raise FileNotFoundError(f"Video root {str(video_root)!r} is not a directory.")
        self.samples = list(samples)
        self.video_root = Path(video_root)
        self.processor = processor
        self.num_frames = num_frames
        self.training = training

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        path = self.video_root / sample.path
        item = {"index": index, "labels": sample.labels, "pixel_values": None}
        generator = None
        if self.training:
            generator = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        try:
            features = self.processor(
                videos=str(path), num_frames=self.num_frames, training=self.training, generator=generator
            )
        except FileNotFoundError as error:
            item["failure"] = VideoFailure(sample.path, "missing", str(error))
        except VideoDecodeError as error:
            item["failure"] = VideoFailure(sample.path, "unreadable", str(error))
        else:
            item["pixel_values"] = features["pixel_values"][0]
        return item


def collate_videos(items: list[dict]) -> dict:
    """Stacks the readable videos of a batch; returns `indices`, `pixel_values` (or `None`), `labels`, `failures`."""
    readable = [item for item in items if item["pixel_values"] is not None]
    return {
        "indices": torch.tensor([item["index"] for item in readable], dtype=torch.long),
        "pixel_values": torch.stack([item["pixel_values"] for item in readable]) if readable else None,
        "labels": [item["labels"] for item in readable],
        "failures": [item["failure"] for item in items if item["pixel_values"] is None],
    }


def _model_device_dtype(model) -> tuple[torch.device, torch.dtype]:
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype


def encode_class_names(
    model, processor, class_names: list[str], template: str = DEFAULT_TEMPLATE, batch_size: int = 256
) -> torch.Tensor:
    """
    Embeds one prompt per class, `template.format(name)`.

    Returns:
        `(C, D)` L2-normalised text embeddings on the model's device, float32.
    """
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"`template` must be a string with exactly one '{{}}', got {template!r}.")
    if not class_names or not all(isinstance(name, str) and name for name in class_names):
        raise ValueError(f"`class_names` must be a non-empty list of non-empty strings, got {class_names!r:.200}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    device, _ = _model_device_dtype(model)
    prompts = [template.format(name) for name in class_names]
    embeddings = []
    for start in range(0, len(prompts), batch_size):
        tokens = processor(text=prompts[start : start + batch_size], return_tensors="pt")
        outputs = model.get_text_features(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        )
        embeddings.append(torch.nn.functional.normalize(outputs.pooler_output.float(), dim=-1))
    return torch.cat(embeddings)


def video_class_logits(model, pixel_values: torch.Tensor, class_embeds: torch.Tensor) -> torch.Tensor:
    """
    Logits `(B, C)` of videos against normalised class embeddings, scored as [`MaxiVideoCLIPModel.forward`] scores
    them: `logit_scale.exp() * cos(video, class)`, per-frame scores averaged when the model does not pool frames.
    """
    _, dtype = _model_device_dtype(model)
    video_outputs = model.get_video_features(pixel_values=pixel_values.to(dtype=dtype))
    return video_text_logits(video_outputs.pooler_output.float(), class_embeds, model.logit_scale)


@torch.no_grad()
def predict_split(
    model,
    processor,
    split: EvalSplit,
    video_root: str | Path,
    num_frames: int = 16,
    template: str = DEFAULT_TEMPLATE,
    batch_size: int = 8,
    num_workers: int = 0,
    missing_videos: str = "skip",
    class_embeds: torch.Tensor | None = None,
) -> SplitPredictions:
    """
    Scores every video of a split against every class.

    Args:
        model: A [`MaxiVideoCLIPModel`] (evaluated in `eval()` mode on its own device and dtype).
        processor: A [`MaxiVideoProcessor`].
        split: The videos and class names.
        video_root: Folder the split's video paths are relative to.
        num_frames: Frames per video (one view: segment centres).
        template: The single prompt template.
        batch_size: Videos per forward pass.
        num_workers: `DataLoader` worker processes decoding videos.
        missing_videos: `"skip"`: leave missing/unreadable videos out of the scores and list them in `failures`
            (with a warning); `"error"`: raise on the first one.
        class_embeds: Precomputed `(C, D)` normalised class embeddings (computed from `split.class_names` otherwise).
    """
    if missing_videos not in MISSING_VIDEO_POLICIES:
        raise ValueError(f"`missing_videos` must be one of {MISSING_VIDEO_POLICIES}, got {missing_videos!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"`num_workers` must be an int >= 0, got {num_workers!r}.")
    was_training = model.training
    model.eval()
    device, _ = _model_device_dtype(model)
    if class_embeds is None:
        class_embeds = encode_class_names(model, processor, split.class_names, template)
    if class_embeds.shape[0] != len(split.class_names):
        raise ValueError(
            f"`class_embeds` has {class_embeds.shape[0]} rows for {len(split.class_names)} classes of {split.dataset}."
        )
    dataset = VideoClassificationDataset(split.samples, video_root, processor, num_frames)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_videos,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    scores, indices, failures = [], [], []
    progress = tqdm(loader, desc=f"{split.display_name} split {split.split}", unit="batch", disable=None)
    for batch in progress:
        for failure in batch["failures"]:
            if missing_videos == "error" and failure.reason == "missing":
                raise FileNotFoundError(
                    f"{split.dataset} split {split.split}: video {failure.path!r} is missing ({failure.error}). "
                    "Use missing_videos='skip' to evaluate the remaining videos."
                )
            if missing_videos == "error":
                raise VideoDecodeError(failure.path, "auto", failure.error)
            failures.append(failure)
        if batch["pixel_values"] is not None:
            logits = video_class_logits(model, batch["pixel_values"].to(device, non_blocking=True), class_embeds)
            scores.append(logits.float().cpu())
            indices.append(batch["indices"])
        if failures:
            progress.set_postfix(failed=len(failures))
    model.train(was_training)
    if failures:
        counts = {reason: sum(f.reason == reason for f in failures) for reason in ("missing", "unreadable")}
        logger.warning(
            "%s split %s: %d of %d videos left out (%d missing, %d unreadable) under %s; e.g. %s",
            split.dataset,
            split.split,
            len(failures),
            len(split.samples),
            counts["missing"],
            counts["unreadable"],
            os.fspath(video_root),
            failures[0].path,
        )
    num_classes = len(split.class_names)
    return SplitPredictions(
        split=split,
        scores=torch.cat(scores).numpy() if scores else np.zeros((0, num_classes), dtype=np.float32),
        sample_indices=torch.cat(indices).numpy() if indices else np.zeros((0,), dtype=np.int64),
        failures=failures,
    )


def score_predictions(predictions: SplitPredictions, top_k: tuple[int, ...] = (1, 5), metrics_dir=None) -> dict:
    """
    Metrics of one split plus the video counts: `top1`/`top5` (single-label) or `mAP` (multi-label) in percent over
    the scored videos, `num_videos`, `num_evaluated`, `num_missing`, `num_unreadable` and `failed_videos`.
    """
    split = predictions.split
    failures = predictions.failures
    result = {
        "num_videos": len(split.samples),
        "num_evaluated": int(len(predictions.sample_indices)),
        "num_missing": sum(f.reason == "missing" for f in failures),
        "num_unreadable": sum(f.reason == "unreadable" for f in failures),
    }
    if result["num_evaluated"] == 0:
        raise RuntimeError(
            f"{split.dataset} split {split.split}: none of the {len(split.samples)} videos could be read "
            f"({result['num_missing']} missing, {result['num_unreadable']} unreadable; first: "
            f"{failures[0].path if failures else '-'}). Check --video-root."
        )
    result.update(compute_metrics(predictions.scores, predictions.labels, split.multi_label, top_k, metrics_dir))
    result["failed_videos"] = [{"path": f.path, "reason": f.reason, "error": f.error} for f in failures]
    return result


def evaluate_split(model, processor, split: EvalSplit, video_root, top_k=(1, 5), metrics_dir=None, **kwargs) -> dict:
    """[`predict_split`] followed by [`score_predictions`]; keyword arguments go to [`predict_split`]."""
    return score_predictions(predict_split(model, processor, split, video_root, **kwargs), top_k, metrics_dir)


def evaluate_splits(
    model,
    processor,
    splits: list[EvalSplit],
    video_root: str | Path,
    num_frames: int = 16,
    template: str = DEFAULT_TEMPLATE,
    top_k: tuple[int, ...] = (1, 5),
    metrics_dir=None,
    **kwargs,
) -> dict:
    """
    Evaluates several splits of one dataset and summarizes them (mean ± std over splits).

    Class embeddings are computed once per distinct class list (K600's splits each have their own). Keyword
    arguments go to [`predict_split`].

    Returns:
        The results dict of [`build_results`] (`splits` -> per-split metrics and counts, `summary`).
    """
    if not splits:
        raise ValueError("`splits` is empty: give at least one EvalSplit.")
    datasets = {split.dataset for split in splits}
    if len(datasets) != 1:
        raise ValueError(f"All splits must come from one dataset, got {sorted(datasets)}.")
    embeddings_cache: dict[tuple[str, ...], torch.Tensor] = {}
    split_results = {}
    for split in splits:
        key = tuple(split.class_names)
        if key not in embeddings_cache:
            with torch.no_grad():
                embeddings_cache[key] = encode_class_names(model, processor, split.class_names, template)
        predictions = predict_split(
            model,
            processor,
            split,
            video_root,
            num_frames=num_frames,
            template=template,
            class_embeds=embeddings_cache[key],
            **kwargs,
        )
        split_results[split.split] = score_predictions(predictions, top_k, metrics_dir)
    first = splits[0]
    return build_results(
        first.dataset,
        first.display_name,
        split_results,
        multi_label=first.multi_label,
        num_frames=num_frames,
        template=template,
        video_root=os.fspath(video_root),
    )


__all__ = [
    "DEFAULT_TEMPLATE",
    "evaluate_splits",
    "SplitPredictions",
    "VideoClassificationDataset",
    "VideoFailure",
    "collate_videos",
    "encode_class_names",
    "evaluate_split",
    "predict_split",
    "score_predictions",
    "video_class_logits",
]
