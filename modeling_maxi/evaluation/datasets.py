# SPDX-License-Identifier: Apache-2.0
"""Evaluation datasets of the zero-shot / few-shot protocol (ViFi-CLIP, X-CLIP; MAXI paper sec. 4.1 and supp. sec. 1):
a registry of the built-in benchmarks, split-file parsing and class-name handling.

Split files list one video per line, `relative/path label` (single-label) or `relative/path c1 c2 ...` (multi-label,
Charades), with class ids indexing a label list (`id,name` CSV). The files of the protocol ship with the package under
`modeling_maxi/data/splits/<dataset>/` (large ones gzip-compressed; `.txt.gz` files are read transparently).
"""

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

from transformers.utils import logging

from ..dictionaries import load_class_names

logger = logging.get_logger(__name__)

SPLITS_DIR = Path(__file__).resolve().parent.parent / "data" / "splits"

# HMDB51's protocol label list (ViFi-CLIP's `hmdb_51_labels.csv`) swaps two pairs of names with respect to the ids
# its split files use: the videos with id 20 are `*_kick_*` clips and those with id 21 `*_kick_ball_*` clips (likewise
# 44 = `sword`, 45 = `sword_exercise`), i.e. the ids follow the alphabetical order of HMDB's class folders while the
# list has "kick ball" before "kick". `fix_label_errors=True` (the default) restores the names that match the videos.
HMDB51_LABEL_CORRECTIONS = {20: "kick", 21: "kick ball", 44: "sword", 45: "sword exercise"}


@dataclass(frozen=True)
class VideoSample:
    """One line of a split file: a video path relative to the dataset's video root and its class id(s)."""

    path: str
    labels: tuple[int, ...]


@dataclass(frozen=True)
class SplitSpec:
    """One evaluation split of a built-in dataset: a split file under `data/splits/` and its class list."""

    split_file: str
    class_list: str


@dataclass(frozen=True)
class DatasetSpec:
    """
    A built-in benchmark of the protocol.

    Args:
        name: Registry key.
        display_name: Name used in result tables.
        splits: Evaluation splits by name (`"1"`, `"2"`, ...); results are averaged over them.
        multi_label: Multi-label classification scored with mAP (Charades) instead of top-1/top-5 accuracy.
        few_shot: K-shot training lists (`train1_few_shot_K.txt`) by K.
        few_shot_eval_split: The split few-shot models are evaluated on.
        label_corrections: Class id -> corrected name, for known errors of the protocol's label list.
        camel_case_names: The protocol's class names are CamelCase words (UCF101).
    """

    name: str
    display_name: str
    splits: dict[str, SplitSpec]
    multi_label: bool = False
    few_shot: dict[int, str] = field(default_factory=dict)
    few_shot_eval_split: str | None = None
    label_corrections: dict[int, str] = field(default_factory=dict)
    camel_case_names: bool = False


def _numbered(pattern: str, class_list: str, count: int) -> dict[str, SplitSpec]:
    return {str(i): SplitSpec(pattern.format(i=i), class_list.format(i=i)) for i in range(1, count + 1)}


def _few_shot(directory: str) -> dict[int, str]:
    return {shots: f"{directory}/train1_few_shot_{shots}.txt" for shots in (2, 4, 8, 16)}


DATASET_REGISTRY: dict[str, DatasetSpec] = {
    "ucf101": DatasetSpec(
        name="ucf101",
        display_name="UCF101",
        splits=_numbered("ucf101/val{i}.txt", "ucf101", 3),
        few_shot=_few_shot("ucf101"),
        few_shot_eval_split="1",
        camel_case_names=True,
    ),
    "hmdb51": DatasetSpec(
        name="hmdb51",
        display_name="HMDB51",
        splits=_numbered("hmdb51/val{i}.txt", "hmdb51", 3),
        few_shot=_few_shot("hmdb51"),
        few_shot_eval_split="1",
        label_corrections=HMDB51_LABEL_CORRECTIONS,
    ),
    "k600": DatasetSpec(
        name="k600",
        display_name="K600",
        splits=_numbered("k600/ZS_split{i}_K600_eval.txt.gz", "k600_split{i}", 3),
    ),
    "minissv2": DatasetSpec(
        name="minissv2",
        display_name="MiniSSv2",
        splits={"1": SplitSpec("minissv2/validation_mini.txt.gz", "minissv2")},
    ),
    "ssv2": DatasetSpec(
        name="ssv2",
        display_name="SSv2",
        splits={"1": SplitSpec("ssv2/validation.txt.gz", "ssv2")},
        few_shot=_few_shot("ssv2"),
        few_shot_eval_split="1",
    ),
    "charades": DatasetSpec(
        name="charades",
        display_name="Charades",
        splits={"1": SplitSpec("charades/test_split.txt", "charades")},
        multi_label=True,
    ),
    "uav_human": DatasetSpec(
        name="uav_human",
        display_name="UAV Human",
        splits=_numbered("uav_human/test_split{i}.txt.gz", "uav_human", 2),
    ),
    "moments_in_time": DatasetSpec(
        name="moments_in_time",
        display_name="Moments-in-Time",
        splits={"1": SplitSpec("moments_in_time/val_split.txt.gz", "moments_in_time")},
    ),
}

DATASET_ALIASES = {
    "ucf": "ucf101",
    "hmdb": "hmdb51",
    "kinetics600": "k600",
    "mini_ssv2": "minissv2",
    "uav": "uav_human",
    "mit": "moments_in_time",
}


@dataclass
class EvalSplit:
    """
    A list of labelled videos together with the class names their ids index.

    Args:
        dataset: Dataset name (registry key or `"custom"`).
        split: Split name.
        class_names: Class names, index = class id.
        samples: The videos.
        multi_label: Whether samples may carry several labels (scored with mAP).
        display_name: Name used in result tables.
    """

    dataset: str
    split: str
    class_names: list[str]
    samples: list[VideoSample]
    multi_label: bool = False
    display_name: str = ""

    def __post_init__(self):
        if not self.display_name:
            self.display_name = self.dataset


def available_datasets() -> list[str]:
    """Names of the built-in evaluation datasets."""
    return sorted(DATASET_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """Returns the registry entry of a built-in dataset (aliases such as `"ucf"`, `"mit"` accepted)."""
    if not isinstance(name, str):
        raise TypeError(f"The dataset name must be a string, got {name!r}.")
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in DATASET_REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; built-in datasets are {available_datasets()} "
            f"(aliases: {sorted(DATASET_ALIASES)}). Use a custom label list and split file for other datasets."
        )
    return DATASET_REGISTRY[key]


def split_camel_case(name: str) -> str:
    """Splits a CamelCase class name into words: `"ApplyEyeMakeup"` -> `"Apply Eye Makeup"`, `"YoYo"` -> `"Yo Yo"`.

    Names that already contain spaces keep them; runs of capitals stay together (`"TVShow"` -> `"TV Show"`).
    """
    if not isinstance(name, str):
        raise TypeError(f"A class name must be a string, got {name!r}.")
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return re.sub(r"\s+", " ", spaced).strip()


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_split_file(path: str | Path, multi_label: bool = False, num_classes: int | None = None) -> list[VideoSample]:
    """
    Parses a split file of the protocol.

    Args:
        path: The file (`.txt`, or `.txt.gz`). Single-label lines are `relative/path label` (the path may contain
            spaces: the label is the last field); multi-label lines are `relative/path c1 c2 ...` (the path is the
            first field; repeated ids are kept once; a line may list no class).
        multi_label: Parse the multi-label format.
        num_classes: When given, every class id must be in `0..num_classes-1`.

    Returns:
        The videos in file order. Blank lines are skipped.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line is malformed or a class id is out of range (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Split file {str(path)!r} does not exist.")
    bad_count = isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    if num_classes is not None and bad_count:
        raise ValueError(f"`num_classes` must be a positive int or None, got {num_classes!r}.")
    samples = []
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.split() if multi_label else line.rsplit(maxsplit=1)
            if len(fields) < 2 and not multi_label:
                raise ValueError(f"{path}:{line_number}: expected 'relative/path label', got {line!r}.")
            video_path, label_fields = fields[0], fields[1:]
            try:
                labels = tuple(dict.fromkeys(int(value) for value in label_fields))
            except ValueError:
                raise ValueError(
                    f"{path}:{line_number}: class ids must be integers, got {' '.join(label_fields)!r} (line {line!r})."
                ) from None
            if num_classes is not None:
                bad = [label for label in labels if not 0 <= label < num_classes]
                if bad:
                    raise ValueError(
                        f"{path}:{line_number}: class id(s) {bad} outside 0..{num_classes - 1} (the label list has "
                        f"{num_classes} classes)."
                    )
            elif any(label < 0 for label in labels):
                raise ValueError(f"{path}:{line_number}: negative class id in {line!r}.")
            samples.append(VideoSample(path=video_path, labels=labels))
    if not samples:
        raise ValueError(f"Split file {str(path)!r} lists no video.")
    return samples


def _class_names(spec: DatasetSpec, class_list: str, split_camel_case_names: bool, fix_label_errors: bool) -> list[str]:
    names = load_class_names(class_list)
    if fix_label_errors and spec.label_corrections:
        corrected = list(names)
        for class_id, name in spec.label_corrections.items():
            corrected[class_id] = name
        if sorted(corrected) != sorted(names):
            raise ValueError(
                f"The label list {class_list!r} does not hold the classes the known corrections of {spec.name} "
                f"expect ({spec.label_corrections}); pass fix_label_errors=False to use it as it is."
            )
        corrections_applied = [i for i, (a, b) in enumerate(zip(names, corrected)) if a != b]
        if corrections_applied:
            logger.info("%s: corrected the protocol's class names at ids %s.", spec.name, sorted(corrections_applied))
        names = corrected
    if split_camel_case_names:
        names = [split_camel_case(name) for name in names]
    return names


def load_split(
    dataset: str,
    split: str | int = "1",
    split_camel_case_names: bool = False,
    fix_label_errors: bool = True,
) -> EvalSplit:
    """
    Loads an evaluation split of a built-in dataset.

    Args:
        dataset: A name from [`available_datasets`] (or an alias).
        split: The split name (`"1"`, `"2"`, `"3"` for UCF101/HMDB51/K600, `"1"`, `"2"` for UAV Human, `"1"` for
            the others).
        split_camel_case_names: Turn CamelCase class names into words (`"ApplyEyeMakeup"` -> `"Apply Eye
            Makeup"`). The protocol feeds UCF101's names to the text encoder as CamelCase, so the default is `False`.
        fix_label_errors: Correct known errors of the protocol's label lists (HMDB51: see
            `HMDB51_LABEL_CORRECTIONS`). `False` uses the lists exactly as the protocol ships them, as the published
            numbers were computed.
    """
    spec = get_dataset_spec(dataset)
    split = str(split)
    if split not in spec.splits:
        raise ValueError(f"{spec.name} has splits {sorted(spec.splits)}, got split {split!r}.")
    split_spec = spec.splits[split]
    class_names = _class_names(spec, split_spec.class_list, split_camel_case_names, fix_label_errors)
    samples = read_split_file(SPLITS_DIR / split_spec.split_file, spec.multi_label, num_classes=len(class_names))
    return EvalSplit(spec.name, split, class_names, samples, spec.multi_label, spec.display_name)


def load_few_shot_split(
    dataset: str, shots: int, split_camel_case_names: bool = False, fix_label_errors: bool = True
) -> EvalSplit:
    """
    Loads the K-shot training list `train1_few_shot_K.txt` of a built-in dataset (UCF101, HMDB51, SSv2; K in 2, 4, 8,
    16) with the class names of the dataset's few-shot evaluation split.
    """
    spec = get_dataset_spec(dataset)
    if not spec.few_shot:
        raise ValueError(
            f"{spec.name} has no few-shot training lists; datasets with them: "
            f"{sorted(name for name, s in DATASET_REGISTRY.items() if s.few_shot)}."
        )
    if shots not in spec.few_shot:
        raise ValueError(f"{spec.name} has few-shot lists for K in {sorted(spec.few_shot)}, got shots={shots!r}.")
    class_list = spec.splits[spec.few_shot_eval_split].class_list
    class_names = _class_names(spec, class_list, split_camel_case_names, fix_label_errors)
    samples = read_split_file(SPLITS_DIR / spec.few_shot[shots], spec.multi_label, num_classes=len(class_names))
    return EvalSplit(spec.name, f"train1_few_shot_{shots}", class_names, samples, spec.multi_label, spec.display_name)


def load_custom_split(
    labels: str | Path,
    split_file: str | Path,
    multi_label: bool = False,
    name: str = "custom",
    split_camel_case_names: bool = False,
) -> EvalSplit:
    """
    Loads a dataset that is not built in: a label list (`id,name` CSV, or a text file with one name per line) and a
    split file in the protocol's format (see [`read_split_file`]).
    """
    class_names = load_class_names(labels)
    if split_camel_case_names:
        class_names = [split_camel_case(n) for n in class_names]
    samples = read_split_file(split_file, multi_label, num_classes=len(class_names))
    return EvalSplit(name, Path(split_file).name, class_names, samples, multi_label, name)


__all__ = [
    "DATASET_REGISTRY",
    "DatasetSpec",
    "EvalSplit",
    "SplitSpec",
    "VideoSample",
    "available_datasets",
    "get_dataset_spec",
    "load_custom_split",
    "load_few_shot_split",
    "load_split",
    "read_split_file",
    "split_camel_case",
]
