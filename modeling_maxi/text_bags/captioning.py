# SPDX-License-Identifier: Apache-2.0
"""Caption and caption-parsing stages of the text-bag pipeline (paper sec. 3.2 "Captioning").

BLIP (`Salesforce/blip-image-captioning-large` by default) captions 8 frames sampled uniformly over each video,
resized to 384 x 384, with batched generation; spaCy then extracts verbs and verb phrases from the captions
(`modeling_maxi.text_bags.verb_parsing`). The build captions in its match stage (`match_and_caption_videos_batch`):
the frames of both models come from one decode of each video.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from .frame_pass import FrameConsumer, run_batch_pass, run_frame_pass
from .matching import device_for_rank, load_match_consumer, match_columns, resolve_dtype

logger = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-large"


@functools.lru_cache(maxsize=2)
def load_captioner(model_name_or_path: str, device: str, dtype: str = "float32"):
    """Load (once per process and `(model, device, dtype)`) a BLIP captioning model and its processor."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    torch_device = torch.device(device)
    model = BlipForConditionalGeneration.from_pretrained(model_name_or_path, dtype=resolve_dtype(dtype, torch_device))
    model = model.to(torch_device).eval()
    processor = BlipProcessor.from_pretrained(model_name_or_path)
    logger.info("Loaded captioner %s on %s", model_name_or_path, device)
    return model, processor


def load_caption_consumer(
    captioner: str = DEFAULT_CAPTIONER,
    rank: int | None = None,
    *,
    num_frames: int = 8,
    image_size: int = 384,
    max_new_tokens: int = 30,
    num_beams: int = 1,
    dtype: str = "float32",
    batch_size: int | None = None,
) -> FrameConsumer:
    """The captioner as a `FrameConsumer`: BLIP image processing of `num_frames` uniformly sampled frames resized to
    `image_size` in the decoding threads, then batched generation of `batch_size` videos at a time (default: all it
    is given) on the device of `rank`. Its output per video is the list of its frames' captions, in temporal order.
    """
    device = device_for_rank(rank)
    model, processor = load_captioner(captioner, str(device), dtype)

    def prepare(frames) -> torch.Tensor:
        return processor.image_processor(
            images=list(frames), size={"height": image_size, "width": image_size}, return_tensors="pt"
        )["pixel_values"]

    @torch.no_grad()
    def compute(prepared: list[torch.Tensor]) -> list[list[str]]:
        step = batch_size or len(prepared)
        captions = []
        for start in range(0, len(prepared), step):
            pixel_values = torch.cat(prepared[start : start + step]).to(device=device, dtype=model.dtype)
            generated = model.generate(pixel_values=pixel_values, max_new_tokens=max_new_tokens, num_beams=num_beams)
            texts = [text.strip() for text in processor.batch_decode(generated, skip_special_tokens=True)]
            captions += [texts[offset : offset + num_frames] for offset in range(0, len(texts), num_frames)]
        return captions

    return FrameConsumer(num_frames, "uniform", prepare, compute)


def caption_columns(captions: list[list[str] | None], errors: list[str]) -> dict[str, list]:
    """`captions` (an empty list for an unreadable video) and `caption_error` (its decode error, else "")."""
    return {"captions": [video or [] for video in captions], "caption_error": errors}


def caption_videos_batch(
    batch: dict[str, list],
    rank: int | None = None,
    *,
    captioner: str = DEFAULT_CAPTIONER,
    num_frames: int = 8,
    image_size: int = 384,
    max_new_tokens: int = 30,
    num_beams: int = 1,
    dtype: str = "float32",
    video_backend: str = "auto",
    decode_workers: int = 4,
    batch_size: int | None = None,
) -> dict[str, list]:
    """`Dataset.map(batched=True, with_rank=True)` function captioning videos alone (the build captions in its
    joint frame pass, `modeling_maxi.text_bags.frame_pass`).

    Adds `captions`: `num_frames` captions per video, one per uniformly sampled frame, in temporal order (an empty
    list when the frames cannot be decoded, with the reason in `caption_error`).
    """
    options = {"num_frames": num_frames, "image_size": image_size, "max_new_tokens": max_new_tokens}
    consumer = load_caption_consumer(captioner, rank, num_beams=num_beams, dtype=dtype, **options)
    return caption_columns(*run_batch_pass(batch, consumer, batch_size, decode_workers, video_backend))


def match_and_caption_videos_batch(
    batch: dict[str, list],
    rank: int | None = None,
    *,
    match: dict[str, Any],
    caption: dict[str, Any] | None = None,
    batch_size: int = 16,
    decode_workers: int = 4,
    video_backend: str = "auto",
) -> dict[str, list]:
    """`Dataset.map(batched=True, with_rank=True)` function of the build's frame pass: each video is decoded once,
    CLIP matches its segment-sampled frames and, with `caption`, BLIP captions its uniformly sampled ones.

    Args:
        match: the keyword arguments of `load_match_consumer` (model, class embeddings and names, frames...).
        caption: those of `load_caption_consumer`, or None to match only.
        batch_size: videos decoded and matched at a time (the captioner splits them by its own `batch_size`).
        decode_workers: threads decoding the next batches while the models run (0 = inline).

    Returns:
        The columns of `match_videos_batch`, and with `caption` those of `caption_videos_batch`.
    """
    consumers = [load_match_consumer(rank=rank, **match)]
    if caption is not None:
        consumers.append(load_caption_consumer(rank=rank, **caption))
    outputs, errors = run_frame_pass(batch["video_path"], consumers, batch_size, decode_workers, video_backend)
    columns = match_columns(outputs[0], errors, match.get("return_embeddings", False))
    if caption is not None:
        columns.update(caption_columns(outputs[1], errors))
    return columns


def caption_verbs_batch(batch: dict[str, list]) -> dict[str, list]:
    """`Dataset.map(batched=True)` function: `caption_verbs`, the verbs and verb phrases of each video's captions
    with their lemma and gerund forms (`load_spacy_pipeline` caches the pipeline per process)."""
    from .verb_parsing import extract_verbs_batch, load_spacy_pipeline

    return {"caption_verbs": extract_verbs_batch([list(c) for c in batch["captions"]], load_spacy_pipeline())}
