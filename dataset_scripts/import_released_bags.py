"""Import the text bags released by the MAXI authors into the dataset format of `build_text_bags`.

    python -m dataset_scripts.import_released_bags --gpt3-verbs DIR --caption-verbs DIR \
        [--match-list FILE] --dictionary k400 --output-dir OUT

Released layout: `gpt3_verbs/<class name>.txt` (LLM-derived phrases and verb forms of a dictionary class, one per
line) and `caption_verbs_bag/<class id>/<video stem>.txt` (caption-derived verb forms of one video, one per line,
filed under the class CLIP matched it to). The lines are imported verbatim, in file order, into `llm_verbs` and
`caption_verbs`; `text_bag` is assembled from them as in a build. The release holds neither match scores, raw LLM
replies nor captions, so `match_score` is null, `llm_phrases` and `captions` are empty, and no filter is applied.

Without `--match-list` every caption file is one video (`video_path` = `<prefix><stem>.mp4`, `matched_label` = the
folder's class id). With a `path label` match list (the pseudo-labels of the release), its lines are the videos:
`matched_label` comes from the list and caption verbs from `caption_verbs_bag/<label>/<stem>.txt` (empty, and
counted, when that file is missing).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value

from modeling_maxi.dictionaries import load_class_names
from modeling_maxi.text_bags.llm_expansion import load_released_phrases
from modeling_maxi.text_bags.publishing import available_configs, publish_text_bags, push_text_bags_to_hub
from modeling_maxi.text_bags.video_index import parse_video_list_line

logger = logging.getLogger("dataset_scripts.import_released_bags")

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


@dataclass
class ImportArguments:
    """Arguments of the importer."""

    output_dir: str = field(metadata={"help": "Folder of the published dataset."})
    gpt3_verbs: str | None = field(default=None, metadata={"help": "Released `gpt3_verbs` directory."})
    caption_verbs: str | None = field(default=None, metadata={"help": "Released `caption_verbs_bag` directory."})
    match_list: str | None = field(default=None, metadata={"help": "`relative/path label` list of matched videos."})
    dictionary: str = field(default="k400", metadata={"help": "Dictionary the class ids and names refer to."})
    video_prefix: str = field(
        default="", metadata={"help": "Prefix of `video_path` without a match list (e.g. `train/`)."}
    )
    video_extension: str = field(default=".mp4", metadata={"help": "Extension of `video_path` without a match list."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the dataset to this Hub repo."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})


def read_lines_verbatim(path: Path) -> list[str]:
    """The lines of a released file, without line terminators and without empty lines."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line != ""]


def _caption_files(caption_dir: Path, num_classes: int) -> dict[tuple[int, str], Path]:
    files = {}
    for class_dir in sorted(caption_dir.iterdir()):
        if not class_dir.is_dir():
            continue
        if not class_dir.name.isdigit() or int(class_dir.name) >= num_classes:
            raise ValueError(f"{str(class_dir)!r} is not a class id of the dictionary (0..{num_classes - 1})")
        for path in sorted(class_dir.glob("*.txt")):
            files[(int(class_dir.name), path.stem)] = path
    return files


def import_released_bags(
    output_dir: str | Path,
    gpt3_verbs: str | Path | None = None,
    caption_verbs: str | Path | None = None,
    match_list: str | Path | None = None,
    dictionary: str = "k400",
    video_prefix: str = "",
    video_extension: str = ".mp4",
) -> dict[str, Any]:
    """Convert released bags to the published dataset format in `output_dir`; returns the build record."""
    if gpt3_verbs is None and caption_verbs is None:
        raise ValueError("Give --gpt3-verbs, --caption-verbs or both")
    class_names = load_class_names(dictionary)
    class_ids = {name: class_id for class_id, name in enumerate(class_names)}
    released_phrases = load_released_phrases(gpt3_verbs) if gpt3_verbs is not None else {}
    unknown_classes = sorted(name for name in released_phrases if name not in class_ids)
    if unknown_classes:
        raise ValueError(f"gpt3 verb files name classes missing from dictionary {dictionary!r}: {unknown_classes[:5]}")
    if caption_verbs is not None and not Path(caption_verbs).is_dir():
        raise FileNotFoundError(f"--caption-verbs {str(caption_verbs)!r} is not a directory")
    caption_files = _caption_files(Path(caption_verbs), len(class_names)) if caption_verbs is not None else {}

    if match_list is not None:
        match_path = Path(match_list)
        if not match_path.is_file():
            raise FileNotFoundError(f"--match-list {str(match_path)!r} does not exist")
        videos = []
        for line_number, line in enumerate(match_path.read_text(encoding="utf-8").splitlines(), start=1):
            parsed = parse_video_list_line(line, line_number, str(match_path))
            if parsed is None:
                continue
            path, label = parsed
            if not 0 <= label < len(class_names):
                raise ValueError(f"{match_path}:{line_number}: label {label} is not a class id of {dictionary!r}")
            videos.append((path, label))
    else:
        if caption_verbs is None:
            raise ValueError("Without --match-list the videos come from --caption-verbs, which is missing")
        videos = [(f"{video_prefix}{stem}{video_extension}", label) for label, stem in caption_files]

    rows = []
    missing_captions = 0
    for path, label in videos:
        stem = Path(path).stem
        caption_file = caption_files.get((label, stem))
        if caption_verbs is not None and caption_file is None:
            missing_captions += 1
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
    matched = sorted({label for _, label in videos})
    missing_llm = {
        class_names[label]: "no released gpt3 verbs" for label in matched if class_names[label] not in released_phrases
    }
    record = {
        "pretty_name": f"MAXI text bags (released by the authors, {dictionary} dictionary)",
        "parameters": {
            "source": "released bags of the MAXI authors",
            "dictionary": dictionary,
            "dictionary_size": len(class_names),
            "gpt3_verbs": str(gpt3_verbs) if gpt3_verbs is not None else None,
            "caption_verbs": str(caption_verbs) if caption_verbs is not None else None,
            "match_list": str(match_list) if match_list is not None else None,
        },
        "stats": {
            "videos_imported": len(rows),
            "distinct_matched_classes": len(matched),
            "videos_without_caption_verbs_file": missing_captions if caption_verbs is not None else len(rows),
            "classes_with_released_llm_verbs": len(released_phrases),
        },
        "unreadable_videos": [],
        "llm_failures": missing_llm if gpt3_verbs is not None else {},
    }
    if gpt3_verbs is not None and missing_llm:
        logger.warning("%d matched classes have no released gpt3 verbs", len(missing_llm))
    dataset = Dataset.from_list(rows, features=IMPORT_FEATURES)
    configs = available_configs(has_llm=gpt3_verbs is not None, has_captions=caption_verbs is not None)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return publish_text_bags(dataset, output_dir, record, 1.0, configs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ImportArguments, description=__doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    record = import_released_bags(
        args.output_dir,
        gpt3_verbs=args.gpt3_verbs,
        caption_verbs=args.caption_verbs,
        match_list=args.match_list,
        dictionary=args.dictionary,
        video_prefix=args.video_prefix,
        video_extension=args.video_extension,
    )
    if args.push_to_hub:
        push_text_bags_to_hub(args.output_dir, args.push_to_hub, private=args.hub_private)
    return record


def cli() -> None:
    """Console-script entry point: runs `main` on the command line (its return value stays in Python)."""
    main()


if __name__ == "__main__":
    main()
