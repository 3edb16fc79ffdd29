# SPDX-License-Identifier: Apache-2.0
"""Patch-to-text similarity maps drawn over video frames (numpy + PIL only; warm colours = high similarity)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# A "jet"-style ramp: dark blue (low) -> blue -> cyan -> yellow -> red -> dark red (high).
_RAMP_POSITIONS = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_RAMP_COLOURS = np.array(
    [
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
    ]
)


def colorize(values: np.ndarray) -> np.ndarray:
    """Maps `values` in [0, 1] (any shape) to RGB uint8 colours of shape `values.shape + (3,)`; out-of-range clips."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("colorize got non-finite values (NaN or inf) in the heatmap")
    clipped = np.clip(values, 0.0, 1.0)
    channels = [np.interp(clipped, _RAMP_POSITIONS, _RAMP_COLOURS[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=-1) * 255.0).astype(np.uint8)


def normalize_maps(similarity: np.ndarray) -> np.ndarray:
    """Min-max scales a `(T, h, w)` similarity volume to [0, 1] jointly over all frames, so frames stay comparable."""
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 3:
        raise ValueError(f"similarity must have shape (T, h, w), got {similarity.shape}")
    if not np.all(np.isfinite(similarity)):
        raise ValueError("similarity maps contain non-finite values (NaN or inf)")
    low, high = similarity.min(), similarity.max()
    if high - low < 1e-12:
        return np.zeros_like(similarity)
    return (similarity - low) / (high - low)


def center_crop_square(frame: np.ndarray, size: int) -> Image.Image:
    """Resizes the shortest side of an `(H, W, 3)` uint8 frame to `size` and centre-crops, as CLIP's processor does."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got shape {frame.shape} dtype {frame.dtype}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    image = Image.fromarray(frame)
    height, width = frame.shape[:2]
    scale = size / min(height, width)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def overlay_heatmaps(
    frames: np.ndarray, similarity: np.ndarray, size: int = 224, alpha: float = 0.5
) -> list[Image.Image]:
    """
    Draws the similarity map of every frame over that frame's centre crop.

    Args:
        frames (`np.ndarray` of shape `(T, H, W, 3)`, uint8): The frames the model saw, in order.
        similarity (`np.ndarray` of shape `(T, h, w)`): Patch-to-text similarity per frame (any real scale).
        size (`int`): Side of the returned square images in pixels.
        alpha (`float`): Heatmap opacity in [0, 1].

    Returns:
        `list[PIL.Image.Image]`: `T` RGB images of `size x size`.
    """
    frames = np.asarray(frames)
    similarity = np.asarray(similarity)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if similarity.ndim != 3 or similarity.shape[0] != frames.shape[0]:
        raise ValueError(
            f"similarity must have shape (T, h, w) with T={frames.shape[0]} frames, got {similarity.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    scaled = normalize_maps(similarity)
    images = []
    for frame, heat in zip(frames, scaled):
        base = np.asarray(center_crop_square(frame, size), dtype=np.float64)
        upsampled = Image.fromarray(heat.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
        colour = colorize(np.asarray(upsampled)).astype(np.float64)
        blended = (1.0 - alpha) * base + alpha * colour
        images.append(Image.fromarray(np.round(blended).astype(np.uint8)))
    return images
