# SPDX-License-Identifier: Apache-2.0
"""Merge the shards of a multi-machine text-bag build into one published dataset.

Every shard directory is the output folder of one build with `num_shards=N, shard_index=i`. The unfiltered `bags`
stages of the N shards are concatenated (ordered by video path), then the filter is applied to the whole collection
(the top fraction p is a property of all videos, not of a shard) and the result is published as a build publishes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from datasets import Dataset, concatenate_datasets, load_from_disk

from .publishing import BUILD_RECORD_NAME, prepare_for_publishing, publish_text_bags, push_text_bags_to_hub
from .stages import StageStore

logger = logging.getLogger(__name__)

SUMMED_STATS = ("videos_indexed", "videos_unreadable", "videos_matched", "llm_requests")
PER_MERGE_PARAMETERS = ("shard_index", "filter_ratio", "filter_score")  # chosen again when merging

__all__ = ["SUMMED_STATS", "load_shard", "merge_shards"]


def load_shard(directory: str | Path) -> tuple[dict[str, Any], Dataset]:
    """The build record and the unfiltered `bags` stage of one finished shard build."""
    directory = Path(directory)
    record_path = directory / BUILD_RECORD_NAME
    if not record_path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} is not a finished text-bag build ({BUILD_RECORD_NAME} missing)")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    manifest = StageStore(directory / "stages").read_manifest("bags")
    if manifest is None or not manifest.get("complete"):
        raise FileNotFoundError(f"{str(directory)!r} has no complete `bags` stage")
    return record, load_from_disk(str(directory / "stages" / "bags" / "data"))


def _comparable(parameters: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in parameters.items() if key not in PER_MERGE_PARAMETERS}


def _check_shards_of_one_build(directories: list[Path], records: list[dict[str, Any]]) -> None:
    """Refuses shards that are not exactly the shards 0..N-1 of one build with the same parameters."""
    reference = records[0]["parameters"]
    num_shards = reference["num_shards"]
    indices = sorted(record["parameters"]["shard_index"] for record in records)
    if indices != list(range(num_shards)):
        raise ValueError(f"Expected the shards 0..{num_shards - 1} of one build exactly once, got indices {indices}")
    for directory, record in zip(directories[1:], records[1:]):
        if _comparable(record["parameters"]) != _comparable(reference):
            raise ValueError(f"{str(directory)!r} was built with other parameters than {str(directories[0])!r}")


def _merged_record(records: list[dict[str, Any]], merged: Dataset) -> dict[str, Any]:
    """One build record for the merged shards: the shared parameters, summed counts, all failures."""
    reference = records[0]["parameters"]
    record: dict[str, Any] = {
        "pretty_name": records[0].get("pretty_name", "MAXI text bags"),
        "parameters": {**_comparable(reference), "num_shards": reference["num_shards"], "shard_index": "merged"},
        "stats": {name: sum(shard["stats"].get(name, 0) for shard in records) for name in SUMMED_STATS},
        "unreadable_videos": sorted(
            (item for shard in records for item in shard["unreadable_videos"]), key=lambda item: item["video_path"]
        ),
        "llm_failures": {key: value for shard in records for key, value in sorted(shard["llm_failures"].items())},
    }
    record["stats"]["distinct_matched_classes"] = len(set(merged["matched_label"]))
    record["stats"]["llm_failures"] = len(record["llm_failures"])
    return record


def merge_shards(
    shard_dirs: list[str | Path],
    output_dir: str | Path,
    filter_ratio: float | None = None,
    filter_score: str | None = None,
    push_to_hub: str | None = None,
    hub_private: bool = False,
) -> dict[str, Any]:
    """Check that `shard_dirs` are the N shards of one build, merge and publish them; returns the build record.

    `filter_ratio` and `filter_score` default to the shards' own; `push_to_hub` names a Hub dataset repo the merged
    folder is uploaded to (created private with `hub_private`).
    """
    if not shard_dirs:
        raise ValueError("shard_dirs is empty: give the output folder of every shard build")
    directories = [Path(directory) for directory in shard_dirs]
    records, bags = zip(*(load_shard(directory) for directory in directories))
    records = list(records)
    _check_shards_of_one_build(directories, records)
    reference = records[0]["parameters"]
    ratio = filter_ratio if filter_ratio is not None else reference["filter_ratio"]
    # builds made before the option existed ranked by similarity
    score = filter_score if filter_score is not None else reference.get("filter_score", "similarity")

    merged = concatenate_datasets(list(bags))
    paths = list(merged["relative_path"])
    merged = merged.select(sorted(range(len(paths)), key=paths.__getitem__))
    record = _merged_record(records, merged)
    logger.info("Merging %d shards: %d videos", reference["num_shards"], len(merged))
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    record = publish_text_bags(prepare_for_publishing(merged), output_dir, record, ratio, records[0]["configs"], score)
    if push_to_hub:
        push_text_bags_to_hub(output_dir, push_to_hub, private=hub_private)
    return record
