# SPDX-License-Identifier: Apache-2.0
"""Checks of what a Space user sends: the video file and the candidate labels.

Every failure raises :class:`SpaceInputError` with a sentence meant for the user; the Gradio layer turns it into a
`gr.Error`, so bad input never shows a traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

import av

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpeg", ".mpg", ".ogv", ".3gp", ".flv", ".wmv")
# Demuxers that open still images or text as a one-stream "video"; a file they claim is not a video.
_NON_VIDEO_FORMATS = ("image2", "tty", "gif")
MAX_LABEL_CHARS = 200


class SpaceInputError(ValueError):
    """Input the Space refuses; the message is shown to the user as is."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`check_video` learnt about an accepted video."""

    path: str
    size_bytes: int
    duration_s: float
    width: int
    height: int
    container_format: str


def _display_name(path: str) -> str:
    return os.path.basename(path) or path


def _reason(err: av.error.FFmpegError) -> str:
    """FFmpeg's reason without the server-side path that `str(err)` carries."""
    return getattr(err, "strerror", None) or type(err).__name__


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return float(Fraction(stream.frames) / stream.average_rate)
    return None


def _duration_from_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Duration from the last packet timestamp (demuxing only, no decoding) for containers without a header value."""
    last = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            end = packet.pts + (packet.duration or 0)
            last = max(last, float(end * packet.time_base))
    return last


def _check_file(path: str, name: str, max_file_size_bytes: int) -> int:
    """The file's size in bytes, after checking that it exists, looks like a video and is within the size limit."""
    if not os.path.isfile(path):
        raise SpaceInputError(f"The uploaded file {name!r} was not found on the server; please upload it again.")
    extension = os.path.splitext(path)[1].lower()
    if extension not in VIDEO_EXTENSIONS:
        raise SpaceInputError(
            f"{name!r} is not a video file (extension {extension or 'none'!r}); "
            f"upload one of: {', '.join(VIDEO_EXTENSIONS)}."
        )
    size_bytes = os.path.getsize(path)
    if size_bytes == 0:
        raise SpaceInputError(f"Could not read the video {name!r}: the file is empty.")
    if size_bytes > max_file_size_bytes:
        raise SpaceInputError(
            f"The video {name!r} is {size_bytes / 2**20:.3g} MB, over the size limit of "
            f"{max_file_size_bytes / 2**20:.3g} MB; upload a shorter or smaller clip."
        )
    return size_bytes


def _probe_video(path: str, name: str) -> tuple[int, int, float, str]:
    """`(width, height, duration_s, container_format)` of a file whose first video frame decodes."""
    try:
        container = av.open(path)
    except av.error.FFmpegError as err:
        raise SpaceInputError(
            f"Could not read the video {name!r}: the file is damaged or not a video ({_reason(err)})."
        ) from err
    with container:
        format_names = set(container.format.name.split(","))
        if container.format.name.endswith("_pipe") or format_names & set(_NON_VIDEO_FORMATS):
            raise SpaceInputError(
                f"{name!r} is not a video file (it holds a {container.format.long_name or container.format.name})."
            )
        if not container.streams.video:
            raise SpaceInputError(f"{name!r} is not a video file: it has no video stream.")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as err:
            raise SpaceInputError(
                f"Could not read the video {name!r}: its frames cannot be decoded ({_reason(err)})."
            ) from err
        if first is None:
            raise SpaceInputError(f"Could not read the video {name!r}: it contains no frames.")
        duration = _stream_duration(container, stream)
        if duration is None:
            container.seek(0)
            duration = _duration_from_packets(container, stream)
        return first.width, first.height, duration, container.format.name


def check_video(path: str | os.PathLike | None, max_file_size_bytes: int, max_duration_s: float) -> VideoInfo:
    """
    Accepts `path` only if it is a readable video within the size and duration limits.

    Raises:
        SpaceInputError: no file, not a video file, an unreadable or empty video, a file over `max_file_size_bytes`,
            or a video longer than `max_duration_s`.
    """
    if path is None or (isinstance(path, str) and not path.strip()):
        raise SpaceInputError("Please upload a video (or record one with the webcam) first.")
    path = os.fspath(path)
    name = _display_name(path)
    size_bytes = _check_file(path, name, max_file_size_bytes)
    width, height, duration, container_format = _probe_video(path, name)
    if duration > max_duration_s:
        raise SpaceInputError(
            f"The video {name!r} is {duration:.1f} s long, over the duration limit of {max_duration_s:g} s; "
            f"trim it and try again."
        )
    return VideoInfo(path, size_bytes, duration, width, height, container_format)


def parse_custom_labels(text: str | None) -> list[str]:
    """Splits labels typed one per line or comma-separated; blanks dropped, duplicates removed keeping first order."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise SpaceInputError(f"Custom labels must be text, got {type(text).__name__}.")
    labels: list[str] = []
    seen: set[str] = set()
    for piece in re.split(r"[\n,]", text):
        label = " ".join(piece.split())
        if label and label.lower() not in seen:
            seen.add(label.lower())
            labels.append(label)
    return labels


def check_labels(labels: list[str], max_labels: int) -> list[str]:
    """Refuses an empty label list, one over `max_labels`, and labels over `MAX_LABEL_CHARS` characters."""
    if not labels:
        raise SpaceInputError(
            "The label list is empty: type at least one label (one per line or comma-separated) or pick a built-in set."
        )
    if len(labels) > max_labels:
        raise SpaceInputError(
            f"Too many labels: got {len(labels)}, the limit is {max_labels}. Remove some labels and try again."
        )
    for label in labels:
        if len(label) > MAX_LABEL_CHARS:
            raise SpaceInputError(
                f"The label {label[:40]!r}... is {len(label)} characters long; the limit is {MAX_LABEL_CHARS}."
            )
    return labels
