# SPDX-License-Identifier: Apache-2.0
"""Index stage of the text-bag pipeline: turn a directory tree or a list file into a `datasets.Dataset` of videos.

The list-file format is the one of the evaluation splits shipped with MAXI (`relative/path [label]`, one video per
line). Labels, when present, are kept for evaluation only; the text-bag pipeline never reads them to build a bag.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from datasets import Dataset, Features, Value

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")

UNKNOWN_LABEL = -1

INDEX_FEATURES = Features(
    {
        "video_id": Value("string"),
        "video_path": Value("string"),
        "relative_path": Value("string"),
        "label": Value("int64"),
    }
)


def _video_id(relative_path: str) -> str:
    """The id of a video is its path relative to the video root, without the extension (unique by construction)."""
    path = Path(relative_path)
    return path.with_suffix("").as_posix()


def parse_video_list_line(line: str, line_number: int = 0, source: str = "<list>") -> tuple[str, int] | None:
    """Parse one `relative/path [label]` line; returns None for blank lines and `#` comments.

    The label is the last whitespace-separated token when it is an integer, so paths may contain spaces.
    """
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    head, _, tail = stripped.rpartition(" ")
    if head and tail.lstrip("-").isdigit():
        label = int(tail)
        if label < 0:
            raise ValueError(f"{source}:{line_number}: label must be >= 0, got {label} in line {line!r}")
        return head.strip(), label
    return stripped, UNKNOWN_LABEL


def read_video_list(list_file: str | Path, video_root: str | Path | None = None) -> list[dict]:
    """Read a `relative/path [label]` list file into index records.

    Args:
        list_file: text file, one video per line.
        video_root: directory the relative paths are resolved against (default: the list file's directory).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"Video list file {str(list_file)!r} does not exist")
    root = Path(video_root) if video_root is not None else list_file.parent
    records = []
    with list_file.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            parsed = parse_video_list_line(line, line_number, str(list_file))
            if parsed is None:
                continue
            relative, label = parsed
            path = Path(relative)
            full_path = path if path.is_absolute() else root / path
            relative_posix = path.as_posix() if not path.is_absolute() else full_path.name
            records.append(
                {
                    "video_id": _video_id(relative_posix),
                    "video_path": str(full_path),
                    "relative_path": relative_posix,
                    "label": label,
                }
            )
    return records


def scan_video_directory(directory: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[dict]:
    """Recursively list the video files under `directory` (sorted by relative path, labels unknown)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"Video directory {str(directory)!r} does not exist or is not a directory")
    wanted = {extension.lower() for extension in extensions}
    records = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix.lower() in wanted:
            relative = path.relative_to(directory).as_posix()
            records.append(
                {
                    "video_id": _video_id(relative),
                    "video_path": str(path),
                    "relative_path": relative,
                    "label": UNKNOWN_LABEL,
                }
            )
    return records


def build_video_index(videos: str | Path, video_root: str | Path | None = None) -> Dataset:
    """Index the videos of a directory tree or of a list file into a `Dataset`.

    Columns: `video_id` (relative path without extension), `video_path` (path used to read the video),
    `relative_path` (stable across machines, used for sharding) and `label` (-1 when unknown; evaluation only).

    Raises:
        FileNotFoundError: `videos` does not exist.
        ValueError: no video was found, or two entries share the same id.
    """
    videos = Path(videos)
    if videos.is_dir():
        if video_root is not None:
            raise ValueError(f"video_root={str(video_root)!r} is only meaningful with a list file, not a directory")
        records = scan_video_directory(videos)
    elif videos.is_file():
        records = read_video_list(videos, video_root)
    else:
        raise FileNotFoundError(f"--videos {str(videos)!r} is neither a directory nor a list file")
    if not records:
        raise ValueError(f"No video found in {str(videos)!r} (extensions {', '.join(VIDEO_EXTENSIONS)})")
    counts = Counter(record["video_id"] for record in records)
    duplicates = sorted(video_id for video_id, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"{len(duplicates)} video ids appear more than once in {str(videos)!r}: {duplicates[:5]}")
    logger.info("Indexed %d videos from %s", len(records), videos)
    return Dataset.from_list(records, features=INDEX_FEATURES)
