# SPDX-License-Identifier: Apache-2.0
"""Plain `datasets.load_dataset(folder)` returns the rows of that published folder: two folders named alike under
different parents, and a folder published again in place, never share a `datasets` cache entry."""

import json

import pytest
from datasets import Dataset, load_dataset

from dataset_scripts import build_text_bags
from modeling_maxi.text_bags.publishing import (
    BUILD_RECORD_NAME,
    PUBLISHING_DIR_NAME,
    load_text_bags,
    publish_text_bags,
)
from tests.helpers.videos import write_video_tree

CONFIGS = ["dictionary_llm", "dictionary"]


def bags(num_videos: int, offset: int = 0) -> Dataset:
    """The `bags` stage of a build over `num_videos` readable videos (in published form)."""
    ids = [f"video_{offset + index}" for index in range(num_videos)]
    return Dataset.from_dict(
        {
            "video_id": ids,
            "video_path": [f"{video_id}.mp4" for video_id in ids],
            "matched_label": [index % 3 for index in range(num_videos)],
            "matched_text": [("run", "jump", "swim")[index % 3] for index in range(num_videos)],
            "match_score": [0.5 - 0.01 * index for index in range(num_videos)],
            "top5_scores": [[0.5 - 0.01 * index, 0.2] for index in range(num_videos)],
            "llm_verbs": [["jog"] for _ in range(num_videos)],
        }
    )


def publish(folder, num_videos: int, offset: int = 0):
    publish_text_bags(bags(num_videos, offset), folder, {"parameters": {}, "stats": {}}, 1.0, CONFIGS)
    return folder


def test_plain_load_dataset_returns_each_published_folders_rows(tmp_path):
    cache = str(tmp_path / "hf_cache")  # one cache for every load, as in one user's process
    first = publish(tmp_path / "run1" / "text_bags", 8)
    second = publish(tmp_path / "run2" / "text_bags", 12)
    assert len(load_dataset(str(first), split="train", cache_dir=cache)) == 8
    assert len(load_dataset(str(second), split="train", cache_dir=cache)) == 12
    assert len(load_dataset(str(second), "dictionary", split="train", cache_dir=cache)) == 12
    assert len(load_dataset(str(first), "dictionary", split="train", cache_dir=cache)) == 8

    publish(first, 5, offset=100)  # rebuilt in place
    rebuilt = load_dataset(str(first), "dictionary", split="train", cache_dir=cache)
    assert rebuilt["video_id"] == [f"video_{100 + index}" for index in range(5)]
    assert len(load_dataset(str(first), split="train", cache_dir=cache)) == 5

    # the fingerprint is in the file names and in the card's patterns; the default configuration is the richest
    record = json.loads((first / BUILD_RECORD_NAME).read_text())
    names = [path.name for path in (first / "dictionary").iterdir()]
    assert names == [f"train-{record['fingerprint']}-00000-of-00001.parquet"]
    assert f"dictionary/train-{record['fingerprint']}-*.parquet" in (first / "README.md").read_text()
    assert load_text_bags(first)["text_bag"][0] == ["jog"]
    assert not (first / PUBLISHING_DIR_NAME).exists()


def test_two_builds_in_folders_named_alike_and_a_rebuild_in_place_load_their_rows(
    dictionary_file, tiny_model_dir, tmp_path
):
    trees = {num: write_video_tree(tmp_path / f"videos_{num}", num_good=num) for num in (8, 12)}

    def build(videos, output_dir):
        build_text_bags.main(
            ["--videos", str(videos), "--dictionary", str(dictionary_file), "--clip-model", str(tiny_model_dir),
             "--output-dir", str(output_dir), "--num-frames", "2", "--captioner", "none", "--match-batch-size", "4",
             "--decode-workers", "1"]
        )  # fmt: skip
        return str(output_dir)

    first, second = build(trees[8], tmp_path / "a" / "text_bags"), build(trees[12], tmp_path / "b" / "text_bags")
    cache = str(tmp_path / "hf_cache")  # one cache for every load, as datasets' default one in a user's process
    assert len(load_dataset(first, split="train", cache_dir=cache)) == 8
    assert len(load_dataset(second, split="train", cache_dir=cache)) == 12
    build(trees[12], first)  # rebuilt in place, on the other videos
    assert len(load_dataset(first, split="train", cache_dir=cache)) == 12


def test_unknown_configuration_and_split_are_named(tmp_path):
    folder = publish(tmp_path / "text_bags", 2)
    with pytest.raises(ValueError, match="captions"):
        load_text_bags(folder, "captions", cache_dir=str(tmp_path / "hf_cache"))
    with pytest.raises(ValueError, match="validation"):
        load_text_bags(folder, "dictionary", split="validation", cache_dir=str(tmp_path / "hf_cache"))


def test_a_publish_killed_midway_leaves_no_build_record(tmp_path, monkeypatch):
    folder = publish(tmp_path / "text_bags", 4)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the card")

    monkeypatch.setattr("modeling_maxi.text_bags.publishing.render_dataset_card", killed)
    with pytest.raises(KeyboardInterrupt):
        publish(folder, 6)
    assert not (folder / BUILD_RECORD_NAME).exists()  # the old record went first: no finished publish is claimed
    # the previous files are still in place and still load (the new ones were only under .publishing)
    assert len(load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf_cache"))) == 4
    monkeypatch.undo()
    publish(folder, 6)
    assert len(load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf_cache"))) == 6
