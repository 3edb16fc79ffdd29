# SPDX-License-Identifier: Apache-2.0
"""Caption and caption-parsing stages of the text-bag pipeline (paper sec. 3.2 "Captioning").

BLIP (`Salesforce/blip-image-captioning-large` by default) captions 8 frames sampled uniformly over each video,
resized to 384 x 384, with batched generation; spaCy then extracts verbs and verb phrases from the captions
(`modeling_maxi.text_bags.verb_parsing`).
"""

from __future__ import annotations

import functools
import logging

import torch

from .matching import decode_videos, device_for_rank, resolve_dtype

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


@torch.no_grad()
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
) -> dict[str, list]:
    """`Dataset.map(batched=True, with_rank=True)` function of the caption stage.

    Adds `captions`: `num_frames` captions per video, one per uniformly sampled frame, in temporal order (an empty
    list when the frames cannot be decoded, with the reason in `caption_error`).
    """
    device = device_for_rank(rank)
    model, processor = load_captioner(captioner, str(device), dtype)
    frames, errors = decode_videos(batch["video_path"], num_frames, "uniform", video_backend, decode_workers)
    readable = [index for index, video in enumerate(frames) if video is not None]
    captions: list[list[str]] = [[] for _ in batch["video_path"]]
    if readable:
        images = [frame for index in readable for frame in frames[index]]
        pixel_values = processor.image_processor(
            images=images, size={"height": image_size, "width": image_size}, return_tensors="pt"
        )["pixel_values"].to(device=device, dtype=model.dtype)
        generated = model.generate(pixel_values=pixel_values, max_new_tokens=max_new_tokens, num_beams=num_beams)
        texts = [text.strip() for text in processor.batch_decode(generated, skip_special_tokens=True)]
        for position, index in enumerate(readable):
            captions[index] = texts[position * num_frames : (position + 1) * num_frames]
    return {"captions": captions, "caption_error": errors}


def caption_verbs_batch(batch: dict[str, list]) -> dict[str, list]:
    """`Dataset.map(batched=True)` function: `caption_verbs`, the verbs and verb phrases of each video's captions
    with their lemma and gerund forms (`load_spacy_pipeline` caches the pipeline per process)."""
    from .verb_parsing import extract_verbs_batch, load_spacy_pipeline

    return {"caption_verbs": extract_verbs_batch([list(c) for c in batch["captions"]], load_spacy_pipeline())}
