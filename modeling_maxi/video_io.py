# SPDX-License-Identifier: Apache-2.0
"""Read a fixed number of RGB frames from a video file.

Three decoding backends are supported, tried in this order by ``backend="auto"``:

- ``"decord"``: seeks to the nearest keyframe of every requested frame (``VideoReader.get_batch``) in mp4/mov and
  mkv/webm files, reads AVI files sequentially, and declines other containers (its seeking returns wrong frames
  there).
- ``"torchcodec"``: used only when the package imports *and* its FFmpeg libraries load; takes mp4/mov and
  mkv/webm files (it returns wrong frames for AVI and MPEG-TS) and declines the others.
- ``"pyav"``: always available (PyAV is a hard dependency). Demuxes the file once without decoding to count the
  frames and find the keyframes. In containers with real presentation timestamps (mp4/mov, mkv/webm, mpeg-ts) it
  then decodes only from the keyframe before each requested frame, seeking forward when a later keyframe is
  closer than the current position; elsewhere (AVI, raw streams) it decodes from the start, numbering frames in
  display order, and stops after the last requested frame.

Frame counts are never taken from container metadata alone (it is often missing or wrong): PyAV counts the
packets of the video stream, torchcodec scans the file (``seek_mode="exact"``) and a decord failure (e.g. an index
past the real end of the stream) makes ``backend="auto"`` fall back to the next backend.

This module imports nothing from the rest of ``modeling_maxi`` (only numpy, the standard library and the optional
backends), so it can be shipped next to the processor for ``trust_remote_code`` loading.
"""

from __future__ import annotations

import bisect
import copy
import functools
import importlib
import logging
import numbers
import os
from collections.abc import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("decord", "torchcodec", "pyav")
SAMPLING_STRATEGIES = ("segment", "uniform")

__all__ = [
    "BACKENDS",
    "SAMPLING_STRATEGIES",
    "VideoDecodeError",
    "available_backends",
    "read_video_frame_sets",
    "read_video_frames",
    "sample_frame_indices",
]


class VideoDecodeError(RuntimeError):
    """A video file exists but cannot be decoded (empty, corrupt, no video stream, unsupported codec...).

    Attributes:
        path (`str`): the file that failed.
        backend (`str`): the backend that failed (with ``backend="auto"``, the last one tried).
        reason (`str`): what went wrong.
        attempts (`dict[str, str]`): every backend tried and its failure reason, in order.
    """

    def __init__(self, path: str, backend: str, reason: str, attempts: dict[str, str] | None = None):
        self.path = path
        self.backend = backend
        self.reason = reason
        self.attempts = dict(attempts) if attempts else {backend: reason}
        if len(self.attempts) > 1:
            tried = "; ".join(f"{name}: {why}" for name, why in self.attempts.items())
            message = f"Cannot decode video {path!r} with any available backend ({tried})"
        else:
            message = f"Cannot decode video {path!r} with backend {backend!r}: {reason}"
        super().__init__(message)

    def __reduce__(self):
        # Keeps the exception picklable (e.g. raised inside a DataLoader worker process).
        return (type(self), (self.path, self.backend, self.reason, self.attempts))


class _BackendDeclined(VideoDecodeError):
    """A backend refuses a file it is known to decode wrongly; ``backend="auto"`` moves on without a warning."""


# ----------------------------------------------------------------------------------------------------------------
# Frame index sampling
# ----------------------------------------------------------------------------------------------------------------


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _is_torch_generator(generator) -> bool:
    cls = type(generator)
    return cls.__name__ == "Generator" and cls.__module__.startswith("torch")


def _check_generator(generator) -> None:
    if generator is None or isinstance(generator, np.random.Generator) or _is_torch_generator(generator):
        return
    raise TypeError(
        f"generator must be None, a numpy.random.Generator or a torch.Generator, got {type(generator).__name__}"
    )


def _check_sampling(strategy: str, training: bool, generator) -> None:
    """Validate the sampling arguments shared by :func:`sample_frame_indices` and the readers."""
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"strategy must be one of {SAMPLING_STRATEGIES}, got {strategy!r}")
    if not isinstance(training, bool):
        raise TypeError(f"training must be a bool, got {training!r}")
    _check_generator(generator)


def _uniform_draws(size: int, generator) -> np.ndarray:
    """``size`` floats in ``[0, 1)`` drawn from ``generator`` (a fresh unseeded numpy Generator when ``None``)."""
    if generator is None:
        return np.random.default_rng().random(size)
    if isinstance(generator, np.random.Generator):
        return generator.random(size)
    import torch  # only reached with a torch.Generator, so torch is importable

    return torch.rand(size, generator=generator, dtype=torch.float64, device=generator.device).cpu().numpy()


def _generator_state(generator):
    if generator is None:
        return None
    if isinstance(generator, np.random.Generator):
        return copy.deepcopy(generator.bit_generator.state)
    return generator.get_state()


def _restore_generator_state(generator, state) -> None:
    if generator is None:
        return
    if isinstance(generator, np.random.Generator):
        generator.bit_generator.state = copy.deepcopy(state)
    else:
        generator.set_state(state)


def sample_frame_indices(
    total_frames: int,
    num_frames: int,
    strategy: str = "segment",
    training: bool = False,
    generator=None,
) -> list[int]:
    """Choose ``num_frames`` frame indices in ``[0, total_frames)``, in non-decreasing order.

    Args:
        total_frames (`int`): number of frames in the video (>= 1).
        num_frames (`int`): number of indices to return (>= 1).
        strategy (`str`):
            - ``"segment"`` (TSN sparse sampling): ``[0, n)`` is split into ``T`` equal segments
              ``[t * n / T, (t + 1) * n / T)``. At evaluation the frame at the centre of each segment is taken
              (``floor((t + 0.5) * n / T)``); with ``training=True`` the frame at a uniformly random point of each
              segment (``floor((t + u) * n / T)``, ``u ~ U[0, 1)``), i.e. a frame overlapping the segment.
            - ``"uniform"``: ``num_frames`` evenly spaced indices from the first to the last frame
              (``np.linspace(0, n - 1, T)`` rounded half up). ``training`` has no effect.
        training (`bool`): random offsets inside the segments (``"segment"`` only).
        generator (`numpy.random.Generator` or `torch.Generator`, *optional*): source of randomness for
            ``training=True``; pass a seeded one for reproducible sampling. ``None`` uses fresh OS entropy.

    Returns:
        `list[int]` of length ``num_frames``. When the video has fewer frames than requested, indices repeat
        in order (e.g. 2 frames, 4 requested, ``"segment"`` -> ``[0, 0, 1, 1]``).
    """
    total_frames = _check_count(total_frames, "total_frames")
    num_frames = _check_count(num_frames, "num_frames")
    _check_sampling(strategy, training, generator)

    positions = np.arange(num_frames, dtype=np.int64)
    if strategy == "uniform":
        if num_frames == 1:
            return [(total_frames - 1) // 2]
        # Exact rational arithmetic: round(t * (n - 1) / (T - 1)) with halves rounded up.
        numerator = 2 * positions * (total_frames - 1) + (num_frames - 1)
        return (numerator // (2 * (num_frames - 1))).tolist()

    if not training:
        return ((2 * positions + 1) * total_frames // (2 * num_frames)).tolist()
    # floor((t + u) * n / T) with u ~ U[0, 1): each frame overlapping segment t, with probability proportional
    # to its overlap; clipped in integer arithmetic so float rounding never leaves the segment.
    lowest = positions * total_frames // num_frames
    highest = np.minimum(((positions + 1) * total_frames + num_frames - 1) // num_frames - 1, total_frames - 1)
    drawn = np.floor((positions + _uniform_draws(num_frames, generator)) * total_frames / num_frames)
    return np.clip(drawn.astype(np.int64), lowest, highest).tolist()


# ----------------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------------

_IndexPicker = Callable[[int], list]


def _probe_decord() -> None:
    importlib.import_module("decord")


def _probe_torchcodec() -> None:
    # Older torchcodec releases fail at import (ImportError, OSError or RuntimeError) when no compatible FFmpeg
    # shared libraries load; newer ones import fine and set `ffmpeg_major_version` to None instead.
    torchcodec = importlib.import_module("torchcodec")
    importlib.import_module("torchcodec.decoders")
    if hasattr(torchcodec, "ffmpeg_major_version") and torchcodec.ffmpeg_major_version is None:
        raise RuntimeError("torchcodec is installed but could not load any FFmpeg shared libraries")


def _probe_pyav() -> None:
    importlib.import_module("av")


_PROBES = {"decord": _probe_decord, "torchcodec": _probe_torchcodec, "pyav": _probe_pyav}


@functools.cache
def _backend_unavailable_reason(name: str) -> str | None:
    try:
        _PROBES[name]()
    except Exception as exc:  # any import-time failure (missing module, missing shared library...) = unavailable
        logger.debug("video backend %r is unavailable: %s", name, exc)
        return f"{type(exc).__name__}: {exc}"
    return None


def available_backends() -> list[str]:
    """Names of the backends that load in this environment, in the order ``backend="auto"`` tries them."""
    return [name for name in BACKENDS if _backend_unavailable_reason(name) is None]


def _take(frames_by_index: dict[int, np.ndarray], indices: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(np.stack([frames_by_index[index] for index in indices]))


def _container_family(path: str) -> str | None:
    """Recognise a container from its first bytes: ``"isobmff"`` (mp4/mov/m4v/3gp), ``"matroska"`` (mkv/webm),
    ``"avi"``, or ``None``."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "isobmff"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def _read_decord(path: str, pick: _IndexPicker) -> np.ndarray:
    import decord

    # decord's keyframe seeking returns the wrong frames for AVI and MPEG-TS files with several keyframes (it
    # was measured: TS even loses the first GOP when reading sequentially). It seeks in mp4/mov and mkv/webm,
    # reads AVI sequentially, and refuses everything else so that backend="auto" moves on to the next backend.
    family = _container_family(path)
    if family is None:
        raise _BackendDeclined(path, "decord", "not an mp4/mov, mkv/webm or avi file; decord is not reliable here")
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0))
        total = len(reader)
        if total < 1:
            raise VideoDecodeError(path, "decord", "the video stream has no frames")
        indices = pick(total)
        unique = sorted(set(indices))
        if family == "avi":
            wanted = set(unique)
            arrays = []
            for position in range(unique[-1] + 1):
                frame = reader.next()
                if position in wanted:
                    arrays.append(_decord_to_numpy(frame))
            array = np.stack(arrays)
        else:
            array = _decord_to_numpy(reader.get_batch(unique))
    except (decord.DECORDError, RuntimeError, IndexError, StopIteration) as exc:
        if isinstance(exc, VideoDecodeError):
            raise
        raise VideoDecodeError(path, "decord", f"{type(exc).__name__}: {exc}") from exc
    if array.shape[0] != len(unique):
        raise VideoDecodeError(path, "decord", f"asked for {len(unique)} frames, got {array.shape[0]}")
    return _take(dict(zip(unique, array)), indices)


def _decord_to_numpy(batch) -> np.ndarray:
    # decord returns its own NDArray, or a torch/tf tensor when the user changed decord's bridge.
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.numpy()
    return np.asarray(batch)


def _read_torchcodec(path: str, pick: _IndexPicker) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    # Measured like decord: torchcodec returns wrong frames (or fails) for AVI and MPEG-TS files, so it only
    # takes the containers where its seeking is exact.
    if _container_family(path) not in ("isobmff", "matroska"):
        raise _BackendDeclined(path, "torchcodec", "not an mp4/mov or mkv/webm file; torchcodec is not reliable here")
    try:
        # "exact" scans the file once, so the frame count does not depend on container metadata.
        decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact")
        total = decoder.metadata.num_frames
        if total is None:
            total = len(decoder)
        if total < 1:
            raise VideoDecodeError(path, "torchcodec", "the video stream has no frames")
        indices = pick(int(total))
        unique = sorted(set(indices))
        array = decoder.get_frames_at(unique).data.cpu().numpy()
    except (RuntimeError, ValueError, IndexError) as exc:
        if isinstance(exc, VideoDecodeError):
            raise
        raise VideoDecodeError(path, "torchcodec", f"{type(exc).__name__}: {exc}") from exc
    return _take(dict(zip(unique, array)), indices)


class _TimestampMismatch(Exception):
    """Decoded frames do not line up with the demuxed packet timestamps; decode by counting instead."""


# Containers that store real presentation timestamps, so that a decoded frame's pts names its display position.
# Others (AVI, raw elementary streams...) carry decode-order or no timestamps and are decoded by counting frames.
_PTS_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm", "mpegts"})


def _pyav_demux_index(container, path: str) -> tuple[int, list[int] | None, list[int]]:
    """Demux the first video stream of an open container without decoding it.

    Returns the number of frame packets, the presentation timestamps of the frames in display order (``None``
    when the container's timestamps cannot be trusted for that) and the display positions of the keyframes.
    """
    if not container.streams.video:
        raise VideoDecodeError(path, "pyav", "the file has no video stream")
    stream = container.streams.video[0]
    trusted = bool(_PTS_CONTAINERS.intersection(container.format.name.split(",")))
    count = 0
    timestamps, keyframe_timestamps = [], []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # flush packets / frames the decoder drops (edit lists)
            continue
        count += 1
        if packet.pts is None:
            trusted = False
        elif trusted:
            timestamps.append(packet.pts)
            if packet.is_keyframe:
                keyframe_timestamps.append(packet.pts)
    if not trusted or len(set(timestamps)) != count:
        return count, None, []
    timestamps.sort()
    position = {pts: index for index, pts in enumerate(timestamps)}
    return count, timestamps, sorted(position[pts] for pts in keyframe_timestamps)


def _pyav_decode_with_seeks(
    container, wanted: list[int], timestamps: list[int], keyframes: list[int]
) -> dict[int, np.ndarray]:
    """Decode the frames at display positions ``wanted`` (sorted) of an open container (already demuxed once, so
    the first decode seeks too), starting from the keyframe before each one and seeking only when that keyframe
    lies beyond the current decoding position."""
    position_of = {pts: index for index, pts in enumerate(timestamps)}
    wanted_set = set(wanted)
    frames: dict[int, np.ndarray] = {}
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    decoded = None
    last = -1  # display position of the last decoded frame
    for target in wanted:
        if target <= last:
            continue
        slot = bisect.bisect_right(keyframes, target) - 1
        keyframe = keyframes[slot] if slot >= 0 else 0
        if decoded is None or keyframe > last + 1:
            container.seek(timestamps[keyframe], backward=True, any_frame=False, stream=stream)
            decoded = container.decode(stream)
            last = -1
        while last < target:
            frame = next(decoded, None)
            if frame is None:
                raise _TimestampMismatch(f"stream ended before frame {target}")
            position = position_of.get(frame.pts)
            if position is None or position <= last:
                raise _TimestampMismatch(f"decoded pts {frame.pts} out of display order")
            last = position
            if position in wanted_set and position not in frames:
                frames[position] = frame.to_ndarray(format="rgb24")
    if len(frames) != len(wanted_set):
        raise _TimestampMismatch(f"found {len(frames)} of {len(wanted_set)} requested frames")
    return frames


def _pyav_decode_sequential(av, path: str, wanted: list[int]) -> tuple[dict[int, np.ndarray], int]:
    """Decode from the start, numbering frames in output (= display) order, until the last wanted one.

    Returns the wanted frames found and the number of frames decoded (all of them when some are missing).
    """
    wanted_set = set(wanted)
    frames: dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for position, frame in enumerate(container.decode(stream)):
            decoded = position + 1
            if position in wanted_set:
                frames[position] = frame.to_ndarray(format="rgb24")
            if position >= wanted[-1]:
                break
    return frames, decoded


def _read_pyav(path: str, pick: _IndexPicker) -> np.ndarray:
    import av

    try:
        # One opening serves the demuxing pass and, in containers with real timestamps, the decoding: the
        # sequential fallback (no usable timestamps, or frames out of line with them) opens the file again.
        with av.open(path) as container:
            count, timestamps, keyframes = _pyav_demux_index(container, path)
            if count == 0:
                raise VideoDecodeError(path, "pyav", "the video stream has no frames")
            indices = pick(count)
            wanted = sorted(set(indices))
            if timestamps is not None:
                try:
                    return _take(_pyav_decode_with_seeks(container, wanted, timestamps, keyframes), indices)
                except _TimestampMismatch as exc:
                    logger.debug("%s: timestamp-based decoding failed (%s); decoding sequentially", path, exc)
        frames, decoded = _pyav_decode_sequential(av, path, wanted)
        if len(frames) < len(wanted):
            # Fewer decodable frames than packets (e.g. a damaged tail): sample again over the frames that exist.
            if decoded == 0:
                raise VideoDecodeError(path, "pyav", "the video stream has no decodable frames")
            logger.debug("%s: %d packets but only %d decodable frames", path, count, decoded)
            indices = pick(decoded)
            wanted = sorted(set(indices))
            frames, _ = _pyav_decode_sequential(av, path, wanted)
            if len(frames) < len(wanted):
                raise VideoDecodeError(path, "pyav", f"decoding stopped early twice (after {decoded} frames)")
        return _take(frames, indices)
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise VideoDecodeError(path, "pyav", f"{type(exc).__name__}: {exc}") from exc


_READERS = {"decord": _read_decord, "torchcodec": _read_torchcodec, "pyav": _read_pyav}


def read_video_frames(
    path: str | os.PathLike,
    num_frames: int,
    strategy: str = "segment",
    backend: str = "auto",
    training: bool = False,
    generator=None,
) -> np.ndarray:
    """Decode ``num_frames`` frames of a video file, chosen by :func:`sample_frame_indices`.

    Args:
        path (`str` or `os.PathLike`): the video file.
        num_frames (`int`): number of frames to return (>= 1).
        strategy (`str`): ``"segment"`` (TSN sparse sampling) or ``"uniform"``; see :func:`sample_frame_indices`.
        backend (`str`): ``"auto"`` (first of :func:`available_backends` that decodes the file; a failing backend
            falls back to the next one), ``"decord"``, ``"torchcodec"`` or ``"pyav"``.
        training (`bool`): random frame inside each segment instead of its centre.
        generator (`numpy.random.Generator` or `torch.Generator`, *optional*): randomness for ``training=True``.
            A backend fallback re-draws from the same generator state, so the frames do not depend on which
            backend succeeded.

    Returns:
        `np.ndarray` of dtype uint8 and shape ``(num_frames, H, W, 3)``, RGB. A video with fewer frames than
        ``num_frames`` yields repeated frames, in order (e.g. 2 frames, 4 asked -> frames ``0, 0, 1, 1``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file is empty, corrupt, has no video stream or no decodable frame.
        ImportError: the requested backend is not installed / cannot load.
    """
    (frames,) = read_video_frame_sets(path, [(num_frames, strategy)], backend, training, generator)
    return frames


def _check_requests(requests) -> list[tuple[int, str]]:
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence) or not requests:
        raise ValueError(f"requests must be a non-empty sequence of (num_frames, strategy) pairs, got {requests!r}")
    checked = []
    for request in requests:
        if not isinstance(request, Sequence) or isinstance(request, str) or len(request) != 2:
            raise ValueError(f"each request must be a (num_frames, strategy) pair, got {request!r}")
        num_frames, strategy = request
        checked.append((_check_count(num_frames, "num_frames"), strategy))
    return checked


def _backend_candidates(backend: str) -> list[str]:
    if backend == "auto":
        return available_backends()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    reason = _backend_unavailable_reason(backend)
    if reason is not None:
        raise ImportError(
            f"video backend {backend!r} is not available ({reason}); available backends: {available_backends()}"
        )
    return [backend]


def read_video_frame_sets(
    path: str | os.PathLike,
    requests: Sequence[tuple[int, str]],
    backend: str = "auto",
    training: bool = False,
    generator=None,
) -> list[np.ndarray]:
    """Decode several frame sets of one video in one pass: the file is opened once and every distinct frame of
    the union of the sets is decoded once (e.g. 16 segment-sampled frames to match and 8 uniform ones to caption).

    Args:
        path (`str` or `os.PathLike`): the video file.
        requests (sequence of `(num_frames, strategy)` pairs): one frame set per pair, sampled by
            :func:`sample_frame_indices` over the same frame count.
        backend, training, generator: as in :func:`read_video_frames`; with ``training=True`` the sets draw their
            offsets from ``generator`` one after the other, in the order of ``requests``.

    Returns:
        `list[np.ndarray]`, one uint8 ``(num_frames, H, W, 3)`` RGB array per request, in order: each equal to what
        :func:`read_video_frames` returns for that request alone (for training sampling, with the generator state
        the earlier requests leave).

    Raises:
        The errors of :func:`read_video_frames`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r} of type {type(path).__name__}")
    path = os.fspath(path)
    requests = _check_requests(requests)
    for _, strategy in requests:
        _check_sampling(strategy, training, generator)
    candidates = _backend_candidates(backend)
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected a video file, got a directory: {path!r}")

    initial_state = _generator_state(generator)

    def pick(total: int) -> list[int]:
        # Every attempt samples from the same generator state (one draw's worth per set is consumed in the end).
        _restore_generator_state(generator, initial_state)
        indices = []
        for num_frames, strategy in requests:
            indices += sample_frame_indices(total, num_frames, strategy, training, generator)
        return indices

    attempts: dict[str, str] = {}
    failures: dict[str, str] = {}  # attempts minus the files a backend declined by design
    for name in candidates:
        try:
            frames = _READERS[name](path, pick)
        except VideoDecodeError as exc:
            attempts[name] = exc.reason
            if not isinstance(exc, _BackendDeclined):
                failures[name] = exc.reason
            logger.debug("backend %r failed on %s: %s", name, path, exc.reason)
            continue
        if failures:
            logger.warning("decoded %s with backend %r after failures: %s", path, name, failures)
        ends = np.cumsum([num_frames for num_frames, _ in requests])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(frames, ends)]
    raise VideoDecodeError(path, candidates[-1], attempts[candidates[-1]], attempts)
