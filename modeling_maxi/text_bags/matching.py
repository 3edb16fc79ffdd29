# SPDX-License-Identifier: Apache-2.0
"""Match stage of the text-bag pipeline: CLIP assigns every unlabeled video its closest dictionary action.

The dictionary is encoded once per build by prompt ensembling (CLIP's recipe, paper supp. sec. 2): every class name
is put into each prompt template, each prompt embedding is L2-normalised, the embeddings of a class are averaged and
the average is normalised again. A video is T segment-sampled frames through the video model, the projected frame
embeddings are mean-pooled, and the cosine similarity to every class gives `matched_label`, `match_score` and the
top-k. Unreadable videos (corrupt, empty, missing) are not dropped here: they get `decode_error` and no match, so the
build can report them.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..scoring import video_text_similarity
from ..video_io import VideoDecodeError, read_video_frames
from .frame_pass import FrameConsumer, run_batch_pass

logger = logging.getLogger(__name__)

NO_MATCH = -1
EMBEDDING_COLUMN = "video_embedding"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def device_for_rank(rank: int | None) -> torch.device:
    """`cuda:<rank % num_gpus>` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", (rank or 0) % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`float32` on CPU whatever was asked (half precision is slow there), else the named dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return torch.float32 if device.type == "cpu" else DTYPES[dtype]


@functools.lru_cache(maxsize=2)
def load_match_model(model_name_or_path: str, device: str, dtype: str = "float32"):
    """Load (once per process and `(model, device, dtype)`) the video CLIP model and its processor.

    Any CLIP checkpoint works (`openai/clip-vit-base-patch16`, a local directory, a finetuned MAXI model).
    """
    from ..modeling_maxi_video_clip import MaxiVideoCLIPModel
    from ..processing_maxi_video_clip import MaxiVideoProcessor

    torch_device = torch.device(device)
    model = MaxiVideoCLIPModel.from_pretrained(model_name_or_path, dtype=resolve_dtype(dtype, torch_device))
    model = model.to(torch_device).eval()
    processor = MaxiVideoProcessor.from_pretrained(model_name_or_path)
    logger.info("Loaded match model %s on %s", model_name_or_path, device)
    return model, processor


@torch.no_grad()
def encode_dictionary(
    model,
    processor,
    class_names: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """Prompt-ensembled, L2-normalised text embeddings of the dictionary, shape `(num_classes, projection_dim)`.

    Args:
        model: a CLIP-like model with `get_text_features`.
        processor: a processor whose `text=` call returns `input_ids` and `attention_mask`.
        class_names: the dictionary.
        templates: prompt templates, each containing `{}` once (e.g. `load_prompt_templates()`).
        batch_size: prompts per forward pass.
    """
    if isinstance(class_names, str) or not class_names or not all(isinstance(n, str) and n for n in class_names):
        raise ValueError(f"class_names must be a non-empty list of non-empty strings, got {class_names!r}")
    if isinstance(templates, str) or not templates or any(t.count("{}") != 1 for t in templates):
        raise ValueError(
            f"templates must be a non-empty list of strings each containing '{{}}' once, got {templates!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    prompts = [template.format(name) for name in class_names for template in templates]
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(prompts), batch_size):
        inputs = processor(text=prompts[start : start + batch_size], return_tensors="pt")
        features = model.get_text_features(
            input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
        )
        chunks.append(torch.nn.functional.normalize(features.pooler_output.float(), dim=-1))
    per_prompt = torch.cat(chunks).view(len(class_names), len(templates), -1)
    return torch.nn.functional.normalize(per_prompt.mean(dim=1), dim=-1).cpu()


def save_class_embeddings(path: str | os.PathLike, embeddings: torch.Tensor) -> None:
    """Write the dictionary embeddings with safetensors."""
    save_file({"class_embeddings": embeddings.contiguous().float()}, str(path))


@functools.lru_cache(maxsize=4)
def _load_class_embeddings(path: str, device: str) -> torch.Tensor:
    return load_file(path)["class_embeddings"].to(device)


def decode_videos(
    paths: Sequence[str], num_frames: int, strategy: str, backend: str = "auto", num_workers: int = 4
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode `num_frames` frames of each video with a small thread pool (PyAV and decord release the GIL).

    Returns the frames (None for an unreadable video) and, per video, the error message ("" when it decoded).
    """

    def read(path: str) -> tuple[np.ndarray | None, str]:
        try:
            return read_video_frames(path, num_frames, strategy=strategy, backend=backend), ""
        except (VideoDecodeError, FileNotFoundError, IsADirectoryError) as error:
            return None, f"{type(error).__name__}: {error}"

    if num_workers <= 1 or len(paths) <= 1:
        results = [read(path) for path in paths]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(num_workers, len(paths))) as pool:
            results = list(pool.map(read, paths))
    for path, (_, error) in zip(paths, results):
        if error:
            logger.warning("Skipping unreadable video %s: %s", path, error)
    return [frames for frames, _ in results], [error for _, error in results]


def load_match_consumer(
    model_name_or_path: str,
    class_embeddings_path: str,
    class_names: Sequence[str],
    rank: int | None = None,
    *,
    num_frames: int = 16,
    top_k: int = 5,
    dtype: str = "float32",
    return_embeddings: bool = False,
) -> FrameConsumer:
    """The match model as a `FrameConsumer`: CLIP image processing of `num_frames` segment-sampled frames in the
    decoding threads, then encoder, mean pooling, dictionary similarity and top-k on the device of `rank`.

    Its output per video is the dict of match columns of `rank_matches`, with `video_embedding` when
    `return_embeddings`.
    """
    device = device_for_rank(rank)
    model, processor = load_match_model(model_name_or_path, str(device), dtype)
    class_embeddings = _load_class_embeddings(class_embeddings_path, str(device))
    if class_embeddings.shape[0] != len(class_names):
        raise ValueError(
            f"{class_embeddings_path} holds {class_embeddings.shape[0]} class embeddings for {len(class_names)} names"
        )

    def prepare(frames: np.ndarray) -> torch.Tensor:
        return processor.preprocess_frames([frames])[0]

    @torch.no_grad()
    def compute(prepared: list[torch.Tensor]) -> list[dict[str, Any]]:
        pixel_values = torch.stack(prepared).to(device=device, dtype=model.dtype)
        frame_embeds = model.get_video_features(pixel_values=pixel_values).frame_embeds
        video_embeds = torch.nn.functional.normalize(frame_embeds.float().mean(dim=1), dim=-1)  # ϕv: mean-pooled
        matches = rank_matches(video_text_similarity(video_embeds, class_embeddings), class_names, top_k)
        if return_embeddings:
            for match, embedding in zip(matches, video_embeds.cpu().tolist()):
                match[EMBEDDING_COLUMN] = embedding
        return matches

    return FrameConsumer(num_frames, "segment", prepare, compute)


def match_columns(matches: Sequence[dict[str, Any] | None], errors: list[str], return_embeddings: bool) -> dict:
    """The columns of the match stage from each video's match (None for an unreadable video) and decode error."""
    size = len(errors)
    columns: dict[str, list] = {
        "matched_label": [NO_MATCH] * size,
        "matched_text": [""] * size,
        "match_score": [float("nan")] * size,
        "top5_labels": [[] for _ in range(size)],
        "top5_scores": [[] for _ in range(size)],
        "decode_error": errors,
    }
    if return_embeddings:
        columns[EMBEDDING_COLUMN] = [[] for _ in range(size)]
    for index, match in enumerate(matches):
        for column, value in (match or {}).items():
            columns[column][index] = value
    return columns


def match_videos_batch(
    batch: dict[str, list],
    rank: int | None = None,
    *,
    model_name_or_path: str,
    class_embeddings_path: str,
    class_names: Sequence[str],
    num_frames: int = 16,
    top_k: int = 5,
    dtype: str = "float32",
    video_backend: str = "auto",
    decode_workers: int = 4,
    batch_size: int | None = None,
    return_embeddings: bool = False,
) -> dict[str, list]:
    """`Dataset.map(batched=True, with_rank=True)` function of the match stage alone (without captions).

    Adds `matched_label` (class id, -1 when unreadable), `matched_text`, `match_score` (cosine similarity),
    `top5_labels` / `top5_scores` (the `top_k` best classes, best first) and `decode_error` ("" when readable).
    With `return_embeddings`, also `video_embedding`: the L2-normalised video embedding the match was made with
    (empty for an unreadable video), for the refinement of `modeling_maxi.text_bags.refinement`. The model runs on
    `batch_size` videos at a time (default: the whole batch) while `decode_workers` threads decode the next ones.
    """
    options = {"num_frames": num_frames, "top_k": top_k, "dtype": dtype, "return_embeddings": return_embeddings}
    consumer = load_match_consumer(model_name_or_path, class_embeddings_path, class_names, rank, **options)
    matches, errors = run_batch_pass(batch, consumer, batch_size, decode_workers, video_backend)
    return match_columns(matches, errors, return_embeddings)


def rank_matches(similarity: torch.Tensor, class_names: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """The match columns of each row of `similarity` (shape `(num_videos, num_classes)`): `matched_label`,
    `matched_text`, `match_score` of the best class and `top5_labels` / `top5_scores` of the `top_k` best, best first.
    """
    scores, labels = similarity.topk(min(top_k, similarity.shape[1]), dim=-1)
    return [
        {
            "matched_label": row_labels[0],
            "matched_text": class_names[row_labels[0]],
            "match_score": row_scores[0],
            "top5_labels": row_labels,
            "top5_scores": row_scores,
        }
        for row_labels, row_scores in zip(labels.cpu().tolist(), scores.cpu().tolist())
    ]
