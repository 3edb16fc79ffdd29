"""Merge the shards of a multi-machine text-bag build into one published dataset.

    python -m dataset_scripts.merge_shards --shard-dirs OUT_0 OUT_1 ... --output-dir MERGED [--filter-ratio 0.9]

Every shard directory is the `--output-dir` of one `build_text_bags --num-shards N --shard-index i` run. The
unfiltered `bags` stages of the N shards are concatenated (ordered by video path), then the filter is applied to the
whole collection (the top fraction p is a property of all videos, not of a shard) and the result is published as
by `build_text_bags`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import concatenate_datasets, load_from_disk

from modeling_maxi.text_bags.publishing import (
    BUILD_RECORD_NAME,
    prepare_for_publishing,
    publish_text_bags,
    push_text_bags_to_hub,
)
from modeling_maxi.text_bags.stages import StageStore

logger = logging.getLogger("dataset_scripts.merge_shards")

SUMMED_STATS = ("videos_indexed", "videos_unreadable", "videos_matched", "llm_requests")


@dataclass
class MergeArguments:
    """Arguments of the shard merge."""

    output_dir: str = field(metadata={"help": "Folder of the merged, published dataset."})
    shard_dirs: list[str] = field(default_factory=list, metadata={"help": "Output folders of the shard builds."})
    filter_ratio: float | None = field(
        default=None, metadata={"help": "Fraction p kept over all shards (default: the shards' own p)."}
    )
    filter_score: str | None = field(
        default=None,
        metadata={"help": "Confidence the filter ranks by, 'similarity' or 'margin' (default: the shards' own)."},
    )
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the merged dataset to this Hub repo."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})


def _load_shard(directory: Path) -> tuple[dict[str, Any], Any]:
    record_path = directory / BUILD_RECORD_NAME
    if not record_path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} is not a finished text-bag build ({BUILD_RECORD_NAME} missing)")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    manifest = StageStore(directory / "stages").read_manifest("bags")
    if manifest is None or not manifest.get("complete"):
        raise FileNotFoundError(f"{str(directory)!r} has no complete `bags` stage")
    return record, load_from_disk(str(directory / "stages" / "bags" / "data"))


def _comparable(parameters: dict[str, Any]) -> dict[str, Any]:
    per_merge = ("shard_index", "filter_ratio", "filter_score")  # chosen again when merging
    return {key: value for key, value in parameters.items() if key not in per_merge}


def merge_shards(
    shard_dirs: list[str | Path],
    output_dir: str | Path,
    filter_ratio: float | None = None,
    filter_score: str | None = None,
) -> dict:
    """Check that `shard_dirs` are the N shards of one build, merge and publish them; returns the build record."""
    if not shard_dirs:
        raise ValueError("shard_dirs is empty: give the output folder of every shard build")
    shards = [(Path(directory), *_load_shard(Path(directory))) for directory in shard_dirs]
    reference = shards[0][1]["parameters"]
    num_shards = reference["num_shards"]
    indices = sorted(record["parameters"]["shard_index"] for _, record, _ in shards)
    if indices != list(range(num_shards)):
        raise ValueError(f"Expected the shards 0..{num_shards - 1} of one build exactly once, got indices {indices}")
    for directory, record, _ in shards[1:]:
        if _comparable(record["parameters"]) != _comparable(reference):
            raise ValueError(f"{str(directory)!r} was built with other parameters than {str(shards[0][0])!r}")
    configs = shards[0][1]["configs"]
    ratio = filter_ratio if filter_ratio is not None else reference["filter_ratio"]
    # builds made before the option existed ranked by similarity
    score = filter_score if filter_score is not None else reference.get("filter_score", "similarity")

    merged = concatenate_datasets([bags for _, _, bags in shards])
    paths = list(merged["relative_path"])
    merged = merged.select(sorted(range(len(paths)), key=paths.__getitem__))
    record: dict[str, Any] = {
        "pretty_name": shards[0][1].get("pretty_name", "MAXI text bags"),
        "parameters": {**_comparable(reference), "num_shards": num_shards, "shard_index": "merged"},
        "stats": {name: sum(record["stats"].get(name, 0) for _, record, _ in shards) for name in SUMMED_STATS},
        "unreadable_videos": sorted(
            (item for _, record, _ in shards for item in record["unreadable_videos"]),
            key=lambda item: item["video_path"],
        ),
        "llm_failures": {k: v for _, record, _ in shards for k, v in sorted(record["llm_failures"].items())},
    }
    record["stats"]["distinct_matched_classes"] = len(set(merged["matched_label"]))
    record["stats"]["llm_failures"] = len(record["llm_failures"])
    logger.info("Merging %d shards: %d videos", num_shards, len(merged))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return publish_text_bags(prepare_for_publishing(merged), output_dir, record, ratio, configs, score)


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(MergeArguments, description=__doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    record = merge_shards(args.shard_dirs, args.output_dir, args.filter_ratio, args.filter_score)
    if args.push_to_hub:
        push_text_bags_to_hub(args.output_dir, args.push_to_hub, private=args.hub_private)
    return record


def cli() -> None:
    """Console-script entry point: runs `main` on the command line (its return value stays in Python)."""
    main()


if __name__ == "__main__":
    main()
