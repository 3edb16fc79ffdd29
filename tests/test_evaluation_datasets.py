# SPDX-License-Identifier: Apache-2.0
"""Built-in evaluation datasets: shipped split files and label lists agree with each other and with the protocol."""

import gzip
import re

import pytest

from modeling_maxi.evaluation import (
    DATASET_REGISTRY,
    available_datasets,
    get_dataset_spec,
    load_custom_split,
    load_few_shot_split,
    load_split,
    read_split_file,
    split_camel_case,
)
from modeling_maxi.evaluation.datasets import SPLITS_DIR

# (dataset, number of splits, classes, videos per split) as the protocol defines them (supp. sec. 1).
EXPECTED = {
    "ucf101": (3, 101, [3783, 3734, 3696]),
    "hmdb51": (3, 51, [1530, 1530, 1530]),
    "k600": (3, 160, [14084, 13978, 14136]),
    "minissv2": (1, 87, [11799]),
    "ssv2": (1, 174, [24777]),
    "charades": (1, 157, [1814]),
    "uav_human": (2, 155, [6191, 6292]),
    "moments_in_time": (1, 305, [30500]),
}


def test_registry_lists_the_protocol_datasets():
    assert set(available_datasets()) == set(EXPECTED)
    assert get_dataset_spec("MIT").name == "moments_in_time"
    assert get_dataset_spec("ucf").name == "ucf101"
    with pytest.raises(ValueError, match="Unknown dataset 'kinetics999'"):
        get_dataset_spec("kinetics999")


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_every_builtin_split_loads_with_its_class_list(dataset):
    num_splits, num_classes, sizes = EXPECTED[dataset]
    spec = DATASET_REGISTRY[dataset]
    assert list(spec.splits) == [str(i) for i in range(1, num_splits + 1)]
    for name, size in zip(spec.splits, sizes):
        split = load_split(dataset, name)
        assert len(split.class_names) == num_classes
        assert len(set(split.class_names)) == num_classes
        assert len(split.samples) == size
        used = {label for sample in split.samples for label in sample.labels}
        assert used == set(range(num_classes)), "every class of the protocol has test videos"
        assert split.multi_label == (dataset == "charades")
        if not split.multi_label:
            assert all(len(sample.labels) == 1 for sample in split.samples)


def test_k600_splits_have_distinct_class_lists():
    names = [load_split("k600", s).class_names for s in "123"]
    assert names[0] != names[1] != names[2]
    assert names[0][:2] == ["acting in play", "adjusting glasses"]
    assert names[1][:2] == ["acting in play", "arguing"]


def test_ucf101_class_ids_match_video_names_and_camel_case_option():
    split = load_split("ucf101", "1")
    mismatches = set()
    for sample in split.samples:
        name_in_path = sample.path.split("_")[1]
        if name_in_path != split.class_names[sample.labels[0]]:
            mismatches.add((name_in_path, split.class_names[sample.labels[0]]))
    # UCF101's own file names spell one class differently from its class folder.
    assert mismatches == {("HandStandPushups", "HandstandPushups")}
    assert split.class_names[0] == "ApplyEyeMakeup"
    spaced = load_split("ucf101", "1", split_camel_case_names=True).class_names
    assert spaced[0] == "Apply Eye Makeup"
    assert spaced[split.class_names.index("YoYo")] == "Yo Yo"


@pytest.mark.parametrize("split_name", ["1", "2", "3"])
def test_hmdb51_names_are_corrected_to_match_the_videos(split_name):
    split = load_split("hmdb51", split_name)
    for sample in split.samples:
        folder_name = split.class_names[sample.labels[0]].replace(" ", "_")
        # HMDB file names end with _<class>_<visibility>_<camera>_<people>_<view>_<quality>_<n>.avi
        assert re.search(rf"_{re.escape(folder_name)}_[fhlu]_(cm|nm)_np\d", sample.path), (sample.path, folder_name)
    protocol = load_split("hmdb51", split_name, fix_label_errors=False).class_names
    assert protocol[20:22] == ["kick ball", "kick"] and split.class_names[20:22] == ["kick", "kick ball"]
    assert protocol[44:46] == ["sword exercise", "sword"] and split.class_names[44:46] == ["sword", "sword exercise"]


def test_minissv2_ids_match_the_ssv2_class_folder_of_each_video():
    mini = load_split("minissv2", "1")
    ssv2_names = load_split("ssv2", "1").class_names
    for sample in mini.samples:
        ssv2_id = int(sample.path.split("/")[1])
        assert ssv2_names[ssv2_id] == mini.class_names[sample.labels[0]]


def test_uav_human_ids_match_the_action_code_in_file_names():
    for split_name in ("1", "2"):
        for sample in load_split("uav_human", split_name).samples:
            assert int(re.search(r"A(\d{3})", sample.path).group(1)) == sample.labels[0]


def test_charades_multi_label_lines_keep_each_class_once():
    split = load_split("charades", "1")
    second = split.samples[1]
    assert second.path == "T5ECU.mp4"
    # the protocol line repeats class 106 three times
    assert second.labels == (137, 92, 152, 154, 59, 118, 151, 106, 149, 138, 150, 107)


@pytest.mark.parametrize("dataset,classes", [("ucf101", 101), ("hmdb51", 51), ("ssv2", 174)])
@pytest.mark.parametrize("shots", [2, 16])
def test_few_shot_lists_have_k_videos_per_class(dataset, classes, shots):
    split = load_few_shot_split(dataset, shots)
    counts = {}
    for sample in split.samples:
        counts[sample.labels[0]] = counts.get(sample.labels[0], 0) + 1
    assert sorted(counts) == list(range(classes))
    assert max(counts.values()) == shots
    with pytest.raises(ValueError, match="shots=3"):
        load_few_shot_split(dataset, 3)


def test_few_shot_is_refused_for_datasets_without_lists():
    with pytest.raises(ValueError, match="charades has no few-shot"):
        load_few_shot_split("charades", 2)


def test_read_split_file_formats_and_errors(tmp_path):
    single = tmp_path / "single.txt"
    single.write_text("dir with space/a.mp4 2\n\nb.mp4 0\n")
    samples = read_split_file(single, num_classes=3)
    assert [(s.path, s.labels) for s in samples] == [("dir with space/a.mp4", (2,)), ("b.mp4", (0,))]

    compressed = tmp_path / "multi.txt.gz"
    with gzip.open(compressed, "wt") as handle:
        handle.write("x.mp4 3 1 3\ny.mp4\n")
    samples = read_split_file(compressed, multi_label=True, num_classes=4)
    assert [(s.path, s.labels) for s in samples] == [("x.mp4", (3, 1)), ("y.mp4", ())]

    bad = tmp_path / "bad.txt"
    bad.write_text("a.mp4 0\nb.mp4 seven\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: class ids must be integers, got 'seven'"):
        read_split_file(bad)
    bad.write_text("a.mp4 0\nb.mp4 5\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: class id\(s\) \[5\] outside 0..2"):
        read_split_file(bad, num_classes=3)
    bad.write_text("lonely.mp4\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected 'relative/path label'"):
        read_split_file(bad)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_split_file(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="num_classes"):
        read_split_file(single, num_classes=0)


def test_custom_split_and_unknown_split_name(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,name\n0,PlayingCello\n1,run\n")
    split_file = tmp_path / "test.txt"
    split_file.write_text("a.mp4 1\n")
    split = load_custom_split(labels, split_file, split_camel_case_names=True)
    assert split.class_names == ["Playing Cello", "run"]
    assert split.split == "test.txt" and split.dataset == "custom"
    with pytest.raises(ValueError, match=r"ucf101 has splits \['1', '2', '3'\], got split '4'"):
        load_split("ucf101", 4)


def test_split_camel_case_examples():
    assert split_camel_case("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert split_camel_case("TVShow") == "TV Show"
    assert split_camel_case("brush hair") == "brush hair"
    assert split_camel_case("Skijet") == "Skijet"


def test_package_split_data_stays_small():
    total = sum(path.stat().st_size for path in SPLITS_DIR.rglob("*") if path.is_file())
    assert total < 5 * 1024 * 1024
