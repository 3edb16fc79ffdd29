# SPDX-License-Identifier: Apache-2.0
"""Generated test videos: real H.264 mp4 files written with PyAV, plus broken files for the error paths.

Frames made by :func:`make_moving_square_frames` carry their own frame index as a binary code of black/white
blocks along the top edge, so a test can read back *which* frame a decoder returned
(:func:`decode_frame_index`) even after lossy H.264 compression.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Frame-index code: INDEX_BITS blocks of CODE_BLOCK x CODE_BLOCK pixels in the top-left corner,
# most significant bit first, white = 1, black = 0.
INDEX_BITS = 10
CODE_BLOCK = 8


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        height = width = size
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int) for s in size):
        height, width = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if height < CODE_BLOCK * 2 or width < CODE_BLOCK * INDEX_BITS:
        raise ValueError(
            f"size {size!r} is too small to hold the frame-index code: need height >= {CODE_BLOCK * 2} "
            f"and width >= {CODE_BLOCK * INDEX_BITS}"
        )
    if height % 2 or width % 2:
        raise ValueError(f"size {size!r} must have even height and width (yuv420p needs even dimensions)")
    return height, width


def make_moving_square_frames(num_frames: int, size: int | Sequence[int] = (64, 96), seed: int = 0) -> np.ndarray:
    """Return ``(num_frames, H, W, 3)`` uint8 RGB frames: a coloured square moving over a seeded random background.

    Every frame also encodes its own index (see :func:`decode_frame_index`), so two different frames never
    look alike to a test, and the index survives H.264 compression.
    """
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"num_frames must be an int >= 1, got {num_frames!r}")
    if num_frames > 2**INDEX_BITS:
        raise ValueError(f"num_frames={num_frames} exceeds the {2**INDEX_BITS} frames the index code can label")
    height, width = _as_hw(size)
    rng = np.random.default_rng(seed)
    # Smooth, low-contrast background (block noise upsampled) so the codec keeps the code blocks sharp.
    coarse = rng.integers(60, 190, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width]
    color = rng.integers(0, 256, size=3, dtype=np.uint8)
    side = max(4, min(height, width) // 4)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frame = background.copy()
        # The square travels diagonally below the code strip.
        top = CODE_BLOCK * 2 + (index * 3) % max(1, height - CODE_BLOCK * 2 - side)
        left = (index * 5) % max(1, width - side)
        frame[top : top + side, left : left + side] = color
        frame[: CODE_BLOCK * 2, :] = 128
        for bit in range(INDEX_BITS):
            value = 255 if (index >> (INDEX_BITS - 1 - bit)) & 1 else 0
            frame[:CODE_BLOCK, bit * CODE_BLOCK : (bit + 1) * CODE_BLOCK] = value
        frames[index] = frame
    return frames


def decode_frame_index(frame: np.ndarray) -> int:
    """Read back the index that :func:`make_moving_square_frames` wrote into ``frame`` (``(H, W, 3)`` uint8)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
    index = 0
    for bit in range(INDEX_BITS):
        # Read the block centre to stay clear of chroma bleeding at the block edges.
        block = frame[2 : CODE_BLOCK - 2, bit * CODE_BLOCK + 2 : (bit + 1) * CODE_BLOCK - 2]
        index = (index << 1) | int(block.mean() > 127)
    return index


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 8,
    codec: str = "libx264",
    gop_size: int | None = None,
    crf: int = 12,
) -> str:
    """Encode ``frames`` (``(T, H, W, 3)`` uint8 RGB, H and W even) as a yuv420p mp4 with PyAV and return the path.

    ``gop_size`` sets the keyframe interval (``None`` keeps the encoder default, i.e. usually one keyframe for a
    short clip); small values give a file where decoders can seek. ``crf`` is the libx264 quality (lower = closer
    to the input).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got shape {frames.shape} dtype {frames.dtype}")
    num_frames, height, width, _ = frames.shape
    if num_frames < 1:
        raise ValueError("frames must hold at least one frame")
    if height % 2 or width % 2:
        raise ValueError(f"frame size {height}x{width} must be even in both dimensions for yuv420p")
    if not isinstance(fps, int) or isinstance(fps, bool) or fps < 1:
        raise ValueError(f"fps must be an int >= 1, got {fps!r}")
    path = os.fspath(path)
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        options = {"crf": str(crf)} if codec == "libx264" else {}
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
            if codec == "libx264":
                options["keyint"] = str(gop_size)
                options["min-keyint"] = str(gop_size)
                options["scenecut"] = "0"
        if options:
            stream.codec_context.options = options
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_corrupt_video(path: str | os.PathLike, kind: str = "garbage") -> str:
    """Write a file that no decoder can read and return its path.

    ``kind="garbage"``: random bytes behind an ``.mp4`` name. ``kind="truncated"``: the first third of a real mp4
    (the ``moov`` index that PyAV's muxer writes last is missing).
    """
    path = os.fspath(path)
    if kind == "garbage":
        data = np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes()
        with open(path, "wb") as handle:
            handle.write(data)
    elif kind == "truncated":
        write_video(path, make_moving_square_frames(24, (64, 96), seed=1))
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 3])
    else:
        raise ValueError(f"kind must be 'garbage' or 'truncated', got {kind!r}")
    return path


def write_empty_video(path: str | os.PathLike, kind: str = "no_frames") -> str:
    """Write a video file without any decodable frame and return its path.

    ``kind="zero_bytes"``: an empty file. ``kind="no_frames"``: a valid mp4 container whose H.264 stream holds no
    frame. ``kind="audio_only"``: a valid container with an audio stream and no video stream.
    """
    path = os.fspath(path)
    if kind == "zero_bytes":
        open(path, "wb").close()
    elif kind == "no_frames":
        with av.open(path, mode="w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width = 64
            stream.height = 64
            stream.pix_fmt = "yuv420p"
            # Write the header (and the trailer on close) although no frame is ever encoded.
            container.start_encoding()
    elif kind == "audio_only":
        with av.open(path, mode="w") as container:
            stream = container.add_stream("aac", rate=16000)
            samples = np.zeros((1, 16000), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = 0
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    else:
        raise ValueError(f"kind must be 'zero_bytes', 'no_frames' or 'audio_only', got {kind!r}")
    return path


TREE_GOOD_VIDEOS = 7


def write_video_tree(root: str | os.PathLike, num_good: int = TREE_GOOD_VIDEOS) -> Path:
    """`num_good` readable videos (different content and lengths) in two sub-folders, plus a corrupt and an empty
    file under `broken/` and a text file that is no video; returns `root`."""
    root = Path(root)
    for index in range(num_good):
        frames = make_moving_square_frames(10 + index % 7, (48, 96), seed=index)
        variant = index % 4
        if variant == 1:
            frames = 255 - frames
        elif variant == 2:
            frames = (frames // 4).astype(np.uint8)
        elif variant == 3:
            frames = np.clip(frames.astype(np.int16) + 100, 0, 255).astype(np.uint8)
        (root / f"group_{index % 2}").mkdir(parents=True, exist_ok=True)
        write_video(root / f"group_{index % 2}" / f"video_{index}.mp4", frames)
    (root / "broken").mkdir(parents=True, exist_ok=True)
    write_corrupt_video(root / "broken" / "corrupt.mp4")
    write_empty_video(root / "broken" / "empty.mp4")
    (root / "notes.txt").write_text("not a video", encoding="utf-8")
    return root
