# SPDX-License-Identifier: Apache-2.0
"""Import the text bags released by the MAXI authors into the dataset format of a text-bag build.

Released layout: `gpt3_verbs/<class name>.txt` (LLM-derived phrases and verb forms of a dictionary class, one per
line) and `caption_verbs_bag/<class id>/<video stem>.txt` (caption-derived verb forms of one video, one per line,
filed under the class CLIP matched it to). The lines are imported verbatim, in file order, into `llm_verbs` and
`caption_verbs`; `text_bag` is assembled from them as in a build. The release holds neither match scores, raw LLM
replies nor captions, so `match_score` is null, `llm_phrases` and `captions` are empty, and no filter is applied.

Without a match list every caption file is one video (`video_path` = `<prefix><stem>.mp4`, `matched_label` = the
folder's class id). With a `path label` match list (the pseudo-labels of the release), its lines are the videos:
`matched_label` comes from the list and caption verbs from `caption_verbs_bag/<label>/<stem>.txt` (empty, and
counted, when that file is missing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value

from ..dictionaries import load_class_names
from .llm_expansion import load_released_phrases
from .publishing import available_configs, publish_text_bags, push_text_bags_to_hub
from .video_index import parse_video_list_line

logger = logging.getLogger(__name__)

IMPORT_FEATURES = Features(
    {
        "video_id": Value("string"),
        "video_path": Value("string"),
        "matched_label": Value("int64"),
        "matched_text": Value("string"),
        "match_score": Value("float64"),
        "llm_phrases": List(Value("string")),
        "llm_verbs": List(Value("string")),
        "captions": List(Value("string")),
        "caption_verbs": List(Value("string")),
    }
)

__all__ = ["IMPORT_FEATURES", "import_released_bags", "read_lines_verbatim", "read_match_list"]


def read_lines_verbatim(path: Path) -> list[str]:
    """The lines of a released file, without line terminators and without empty lines."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line != ""]


def _caption_files(caption_dir: Path, num_classes: int) -> dict[tuple[int, str], Path]:
    """`(class id, video stem) -> file` of a released `caption_verbs_bag` folder."""
    files = {}
    for class_dir in sorted(caption_dir.iterdir()):
        if not class_dir.is_dir():
            continue
        if not class_dir.name.isdigit() or int(class_dir.name) >= num_classes:
            raise ValueError(f"{str(class_dir)!r} is not a class id of the dictionary (0..{num_classes - 1})")
        for path in sorted(class_dir.glob("*.txt")):
            files[(int(class_dir.name), path.stem)] = path
    return files


def read_match_list(match_list: str | Path, num_classes: int, dictionary: str = "the dictionary") -> list[tuple]:
    """The `(relative path, class id)` lines of a `path label` match list, each label checked against the
    dictionary's `num_classes`."""
    match_path = Path(match_list)
    if not match_path.is_file():
        raise FileNotFoundError(f"--match-list {str(match_path)!r} does not exist")
    videos = []
    for line_number, line in enumerate(match_path.read_text(encoding="utf-8").splitlines(), start=1):
        parsed = parse_video_list_line(line, line_number, str(match_path))
        if parsed is None:
            continue
        path, label = parsed
        if not 0 <= label < num_classes:
            raise ValueError(f"{match_path}:{line_number}: label {label} is not a class id of {dictionary!r}")
        videos.append((path, label))
    return videos


def _released_rows(
    videos: list[tuple[str, int]],
    class_names: list[str],
    released_phrases: dict[str, list[str]],
    caption_files: dict[tuple[int, str], Path],
) -> list[dict[str, Any]]:
    """One dataset row per video, with the released lines of its class and of its caption file."""
    rows = []
    for path, label in videos:
        caption_file = caption_files.get((label, Path(path).stem))
        name = class_names[label]
        rows.append(
            {
                "video_id": Path(path).with_suffix("").as_posix(),
                "video_path": path,
                "matched_label": label,
                "matched_text": name,
                "match_score": None,
                "llm_phrases": [],
                "llm_verbs": list(released_phrases.get(name, [])),
                "captions": [],
                "caption_verbs": read_lines_verbatim(caption_file) if caption_file is not None else [],
            }
        )
    if not rows:
        raise ValueError("No video to import: the match list and the caption folder are empty")
    return rows


def _import_record(
    dictionary: str,
    class_names: list[str],
    sources: dict[str, str | Path | None],
    videos: list[tuple[str, int]],
    released_phrases: dict[str, list[str]],
    caption_files: dict[tuple[int, str], Path],
) -> dict[str, Any]:
    """The build record of an import: its sources, counts, and the matched classes without released verbs."""
    has_llm = sources["gpt3_verbs"] is not None
    matched = sorted({label for _, label in videos})
    missing_llm = {
        class_names[label]: "no released gpt3 verbs" for label in matched if class_names[label] not in released_phrases
    }
    if has_llm and missing_llm:
        logger.warning("%d matched classes have no released gpt3 verbs", len(missing_llm))
    missing_captions = sum((label, Path(path).stem) not in caption_files for path, label in videos)
    return {
        "pretty_name": f"MAXI text bags (released by the authors, {dictionary} dictionary)",
        "parameters": {
            "source": "released bags of the MAXI authors",
            "dictionary": dictionary,
            "dictionary_size": len(class_names),
            **{name: str(value) if value is not None else None for name, value in sources.items()},
        },
        "stats": {
            "videos_imported": len(videos),
            "distinct_matched_classes": len(matched),
            "videos_without_caption_verbs_file": missing_captions,
            "classes_with_released_llm_verbs": len(released_phrases),
        },
        "unreadable_videos": [],
        "llm_failures": missing_llm if has_llm else {},
    }


def import_released_bags(
    output_dir: str | Path,
    gpt3_verbs: str | Path | None = None,
    caption_verbs: str | Path | None = None,
    match_list: str | Path | None = None,
    dictionary: str = "k400",
    video_prefix: str = "",
    video_extension: str = ".mp4",
    push_to_hub: str | None = None,
    hub_private: bool = False,
) -> dict[str, Any]:
    """Convert released bags to the published dataset format in `output_dir`; returns the build record.

    `push_to_hub` names a Hub dataset repo the published folder is uploaded to (created private with `hub_private`).
    """
    if gpt3_verbs is None and caption_verbs is None:
        raise ValueError("Give --gpt3-verbs, --caption-verbs or both")
    class_names = load_class_names(dictionary)
    released_phrases = load_released_phrases(gpt3_verbs) if gpt3_verbs is not None else {}
    unknown_classes = sorted(set(released_phrases) - set(class_names))
    if unknown_classes:
        raise ValueError(f"gpt3 verb files name classes missing from dictionary {dictionary!r}: {unknown_classes[:5]}")
    if caption_verbs is not None and not Path(caption_verbs).is_dir():
        raise FileNotFoundError(f"--caption-verbs {str(caption_verbs)!r} is not a directory")
    caption_files = _caption_files(Path(caption_verbs), len(class_names)) if caption_verbs is not None else {}
    if match_list is not None:
        videos = read_match_list(match_list, len(class_names), dictionary)
    elif caption_verbs is None:
        raise ValueError("Without --match-list the videos come from --caption-verbs, which is missing")
    else:
        videos = [(f"{video_prefix}{stem}{video_extension}", label) for label, stem in caption_files]

    rows = _released_rows(videos, class_names, released_phrases, caption_files)
    sources = {"gpt3_verbs": gpt3_verbs, "caption_verbs": caption_verbs, "match_list": match_list}
    record = _import_record(dictionary, class_names, sources, videos, released_phrases, caption_files)
    configs = available_configs(has_llm=gpt3_verbs is not None, has_captions=caption_verbs is not None)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    record = publish_text_bags(Dataset.from_list(rows, features=IMPORT_FEATURES), output_dir, record, 1.0, configs)
    if push_to_hub:
        push_text_bags_to_hub(output_dir, push_to_hub, private=hub_private)
    return record
