# SPDX-License-Identifier: Apache-2.0
"""`load_text_bags`: published folders load by configuration, and two folders named alike never share a cache."""

import pytest
from datasets import Dataset

from modeling_maxi.text_bags.publishing import load_text_bags

CARD = """---
configs:
- config_name: dictionary_llm
  data_files:
  - split: train
    path: dictionary_llm/train-*.parquet
  default: true
- config_name: dictionary
  data_files:
  - split: train
    path: dictionary/train-*.parquet
---
# bags
"""


def _publish(folder, num_rows: int):
    for config in ("dictionary", "dictionary_llm"):
        (folder / config).mkdir(parents=True)
        rows = {"video_id": [f"{config}_{i}" for i in range(num_rows)], "match_score": [0.1] * num_rows}
        Dataset.from_dict(rows).to_parquet(str(folder / config / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text(CARD)
    return folder


def test_two_builds_with_the_same_folder_name_load_their_own_rows(tmp_path):
    first = _publish(tmp_path / "run1" / "text_bags", 3)
    second = _publish(tmp_path / "run2" / "text_bags", 5)
    assert len(load_text_bags(first, "dictionary")) == 3
    assert len(load_text_bags(second, "dictionary")) == 5  # datasets' own cache would hand back the 3 rows
    assert load_text_bags(second)["video_id"][0] == "dictionary_llm_0"  # the default configuration


def test_unknown_configuration_and_split_are_named(tmp_path):
    folder = _publish(tmp_path / "text_bags", 2)
    with pytest.raises(ValueError, match="captions"):
        load_text_bags(folder, "captions")
    with pytest.raises(ValueError, match="validation"):
        load_text_bags(folder, "dictionary", split="validation")
