# SPDX-License-Identifier: Apache-2.0
"""The frame pass of the text-bag build's GPU stages: each video is decoded once, for every model that needs frames.

A `FrameConsumer` names the frames one model needs (`num_frames` sampled by `strategy`), how one video's frames are
prepared for it (`prepare`, e.g. resizing and normalising; runs in the decoding threads) and how a batch of prepared
videos is computed (`compute`, on the model's device; runs in the caller's thread). `run_frame_pass` decodes the union
of the consumers' frames of each video in one opening of the file (`read_video_frame_sets`), in a thread pool that
works on the next batches while the models run on the current one, so the device does not wait for the decoder.
Rows keep their order; a video that cannot be decoded gets its error message and no output.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from ..video_io import VideoDecodeError, read_video_frame_sets

logger = logging.getLogger(__name__)

PREFETCH_BATCHES = 2

__all__ = [
    "PREFETCH_BATCHES",
    "FrameConsumer",
    "decode_and_prepare",
    "prefetch_batches",
    "run_batch_pass",
    "run_frame_pass",
    "validate_decode_workers",
]


class FrameConsumer(NamedTuple):
    """One model's use of the decoded frames (see the module docstring)."""

    num_frames: int
    strategy: str
    prepare: Callable[[Any], Any]
    compute: Callable[[list], list]


def validate_decode_workers(decode_workers) -> int:
    """`decode_workers` as an int >= 0 (0 decodes inline, in the caller's thread)."""
    if isinstance(decode_workers, bool) or not isinstance(decode_workers, int) or decode_workers < 0:
        raise ValueError(f"decode_workers must be an integer >= 0 (0 = decode inline), got {decode_workers!r}")
    return decode_workers


def prefetch_batches(
    items: Sequence, load: Callable, batch_size: int, workers: int, ahead: int = PREFETCH_BATCHES
) -> Iterator[list]:
    """Yield `[load(item) for item in batch]` for consecutive batches of `items`, in order.

    With `workers >= 1`, a pool of that many threads loads the items of the next `ahead` batches while the caller
    works on the current one; with 0 every batch is loaded inline when it is asked for. An exception raised by
    `load` reaches the caller with the batch it belongs to.
    """
    workers = validate_decode_workers(workers)
    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    if workers == 0:
        for batch in batches:
            yield [load(item) for item in batch]
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maxi-decode")
    try:
        pending: collections.deque = collections.deque()
        submitted = 0
        while pending or submitted < len(batches):
            while submitted < len(batches) and len(pending) <= ahead:
                pending.append([pool.submit(load, item) for item in batches[submitted]])
                submitted += 1
            yield [future.result() for future in pending.popleft()]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decode_and_prepare(path: str, consumers: Sequence[FrameConsumer], backend: str) -> tuple[list | None, str]:
    """Decode one video's frame sets and prepare each for its consumer; `(None, message)` when it cannot be read."""
    try:
        frame_sets = read_video_frame_sets(path, [(c.num_frames, c.strategy) for c in consumers], backend=backend)
    except (VideoDecodeError, FileNotFoundError, IsADirectoryError) as error:
        message = f"{type(error).__name__}: {error}"
        logger.warning("Skipping unreadable video %s: %s", path, message)
        return None, message
    return [consumer.prepare(frames) for consumer, frames in zip(consumers, frame_sets)], ""


def run_frame_pass(
    paths: Sequence[str],
    consumers: Sequence[FrameConsumer],
    batch_size: int,
    decode_workers: int,
    backend: str = "auto",
) -> tuple[list[list], list[str]]:
    """Decode every video once and run each consumer on its frames, `batch_size` videos at a time.

    Returns one list per consumer holding its output for every video (None for an unreadable one), and per video
    the decode error message ("" when it decoded).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    outputs: list[list] = [[None] * len(paths) for _ in consumers]
    errors: list[str] = []

    def load(path: str) -> tuple[list | None, str]:
        return decode_and_prepare(path, consumers, backend)

    for batch in prefetch_batches(list(paths), load, batch_size, decode_workers):
        offset = len(errors)
        errors += [error for _, error in batch]
        readable = [position for position, (prepared, _) in enumerate(batch) if prepared is not None]
        if not readable:
            continue
        for slot, consumer in enumerate(consumers):
            results = consumer.compute([batch[position][0][slot] for position in readable])
            for position, result in zip(readable, results, strict=True):
                outputs[slot][offset + position] = result
    return outputs, errors


def run_batch_pass(
    batch: dict[str, list], consumer: FrameConsumer, batch_size: int | None, decode_workers: int, backend: str
) -> tuple[list, list[str]]:
    """`run_frame_pass` of one consumer over the `video_path` column of a `Dataset.map` batch (`batch_size`: default,
    the whole batch at once); returns its outputs and the decode errors."""
    paths = batch["video_path"]
    (outputs,), errors = run_frame_pass(paths, [consumer], batch_size or max(1, len(paths)), decode_workers, backend)
    return outputs, errors
