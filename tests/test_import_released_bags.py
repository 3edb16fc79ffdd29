# SPDX-License-Identifier: Apache-2.0
"""The importer turns the authors' released bag files into the published dataset format, byte for byte."""

import shutil
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_scripts import import_released_bags
from modeling_maxi.dictionaries import load_class_names
from modeling_maxi.text_bags import released_bags
from modeling_maxi.text_bags.bag_assembly import BAG_CONFIGS, assemble_text_bag

# A copy of the authors' released-bag sample (shared/data/maxi_reference/released_bags_sample), kept with the tests.
SAMPLE = Path(__file__).resolve().parent / "data" / "released_bags_sample"


def file_lines(path: Path) -> list[str]:
    """The lines of a sample file, split on b"\\n" only, independently of the importer's reader."""
    data = path.read_bytes()
    assert b"\r" not in data
    return [line.decode("utf-8") for line in data.split(b"\n") if line]


def load(output_dir: Path, config: str | None = None):
    return load_dataset(str(output_dir), config, split="train", cache_dir=str(output_dir.parent / "hf_cache"))


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.is_dir():
        pytest.fail(f"released bag sample missing at {SAMPLE}")
    return SAMPLE


def test_import_reproduces_the_released_files_exactly(sample, tmp_path):
    output_dir = tmp_path / "imported"
    caption_files = sorted((sample / "caption_verbs_bag").glob("*/*.txt"))
    match_list = tmp_path / "matches.txt"
    match_list.write_text("".join(f"train/{p.stem}.mp4 {p.parent.name}\n" for p in caption_files), encoding="utf-8")
    record = import_released_bags.main(
        [
            "--gpt3-verbs",
            str(sample / "gpt3_verbs"),
            "--caption-verbs",
            str(sample / "caption_verbs_bag"),
            "--match-list",
            str(match_list),
            "--dictionary",
            "k400",
            "--output-dir",
            str(output_dir),
        ]
    )
    names = load_class_names("k400")
    gpt3 = {path.stem: file_lines(path) for path in (sample / "gpt3_verbs").glob("*.txt")}
    assert set(gpt3) == {"abseiling", "air drumming"}

    rows = {row["video_id"]: row for row in load(output_dir)}
    assert len(rows) == len(caption_files) == record["stats"]["videos_imported"] == 40
    for path in caption_files:
        row = rows[f"train/{path.stem}"]
        assert row["video_path"] == f"train/{path.stem}.mp4"
        assert row["matched_label"] == int(path.parent.name)
        assert row["matched_text"] == names[int(path.parent.name)]
        assert row["caption_verbs"] == file_lines(path)
        assert row["llm_verbs"] == gpt3[row["matched_text"]]
        assert row["match_score"] is None and row["captions"] == [] and row["llm_phrases"] == []
        # The bag drops the matched text ("abseiling" is a line of abseiling.txt) and duplicates, keeps the order.
        assert row["text_bag"] == assemble_text_bag(row["matched_text"], [row["llm_verbs"], row["caption_verbs"]])
        assert row["matched_text"] not in row["text_bag"]
    abseiling = next(row for row in rows.values() if row["matched_text"] == "abseiling")
    assert "abseiling" in abseiling["llm_verbs"]

    for config, sources in BAG_CONFIGS.items():
        for row in load(output_dir, config):
            assert row["text_bag"] == assemble_text_bag(row["matched_text"], [row[s] for s in sources])
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "config_name: dictionary_llm_captions" in card and "released" in card


def test_import_without_match_list_uses_the_caption_folders(sample, tmp_path):
    record = released_bags.import_released_bags(
        tmp_path / "out", caption_verbs=sample / "caption_verbs_bag", video_prefix="train/"
    )
    rows = load(tmp_path / "out")
    assert len(rows) == 40 and set(rows["matched_label"]) == {0, 1}
    assert record["configs"] == ["dictionary_captions", "dictionary"]
    first = sorted((sample / "caption_verbs_bag" / "0").glob("*.txt"))[0]
    row = next(r for r in rows if r["video_id"] == f"train/{first.stem}")
    assert row["caption_verbs"] == file_lines(first) and row["llm_verbs"] == []


def test_import_counts_missing_caption_files_and_rejects_bad_input(sample, tmp_path):
    match_list = tmp_path / "matches.txt"
    match_list.write_text("train/not_released.mp4 1\n", encoding="utf-8")
    record = released_bags.import_released_bags(
        tmp_path / "out", sample / "gpt3_verbs", sample / "caption_verbs_bag", match_list
    )
    assert record["stats"]["videos_without_caption_verbs_file"] == 1
    assert load(tmp_path / "out")[0]["llm_verbs"] == file_lines(sample / "gpt3_verbs" / "air drumming.txt")

    match_list.write_text("train/x.mp4 400\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label 400"):
        released_bags.import_released_bags(tmp_path / "bad", sample / "gpt3_verbs", None, match_list)
    renamed = tmp_path / "gpt3_verbs"
    shutil.copytree(sample / "gpt3_verbs", renamed)
    (renamed / "not a kinetics class.txt").write_text("jump\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a kinetics class"):
        released_bags.import_released_bags(tmp_path / "bad", renamed, sample / "caption_verbs_bag")
    with pytest.raises(ValueError, match="--gpt3-verbs, --caption-verbs or both"):
        released_bags.import_released_bags(tmp_path / "bad")
