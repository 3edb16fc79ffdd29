# SPDX-License-Identifier: Apache-2.0
"""Action dictionaries and class-name lists shipped with the package, and the Kinetics prompt templates."""

import csv
from pathlib import Path

# Built-in class lists: name -> file under modeling_maxi/data/labels (copied from the evaluation protocol's lists).
BUILTIN_CLASS_LISTS = {
    "k400": "kinetics_400_labels.csv",
    "kinetics400": "kinetics_400_labels.csv",
    "minikinetics": "minikinetics_labels.csv",
    "k600": "kinetics_600_labels.csv",
    "k600_split1": "ZS_split1_K600.csv",
    "k600_split2": "ZS_split2_K600.csv",
    "k600_split3": "ZS_split3_K600.csv",
    "ucf101": "ucf_101_labels.csv",
    "hmdb51": "hmdb_51_labels.csv",
    "charades": "charades_labels.csv",
    "minissv2": "minissv2_labels.csv",
    "ssv2": "ssv2_labels.csv",
    "uav_human": "UAV_human_labels.csv",
    "moments_in_time": "moments_in_time_labels.csv",
}

PROMPT_TEMPLATES_FILE = "kinetics_prompt_templates.txt"


def _data_file(*parts: str) -> Path:
    return Path(__file__).resolve().parent.joinpath("data", *parts)


def builtin_class_list_names() -> list[str]:
    """Names accepted by [`load_class_names`] besides file paths."""
    return sorted(BUILTIN_CLASS_LISTS)


def load_class_names(name_or_path: str | Path) -> list[str]:
    """
    Loads an ordered list of class names (an action dictionary or an evaluation label list).

    Args:
        name_or_path: A built-in name (`"k400"`, `"minikinetics"`, `"ucf101"`, ... see
            [`builtin_class_list_names`]), a CSV file with an `id,name` header (rows sorted by id, ids 0..N-1), or a
            text file with one class name per line (blank lines and lines starting with `#` are ignored).

    Returns:
        The class names, index = class id.
    """
    if isinstance(name_or_path, str) and name_or_path.lower() in BUILTIN_CLASS_LISTS:
        path = _data_file("labels", BUILTIN_CLASS_LISTS[name_or_path.lower()])
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(name_or_path)!r} is neither a built-in class list ({', '.join(builtin_class_list_names())}) "
                "nor an existing file."
            )
    names = _read_csv_class_names(path) if path.suffix.lower() == ".csv" else _read_text_class_names(path)
    if not names:
        raise ValueError(f"The class list {str(path)!r} is empty.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"The class list {str(path)!r} repeats class names: {duplicates[:5]}.")
    return names


def _read_csv_class_names(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "name"} <= set(reader.fieldnames):
            raise ValueError(f"The CSV class list {str(path)!r} needs an 'id,name' header, got {reader.fieldnames}.")
        rows = [(row["id"], row["name"].strip()) for row in reader]
    try:
        ids = [int(row_id) for row_id, _ in rows]
    except ValueError as error:
        raise ValueError(f"The CSV class list {str(path)!r} has a non-integer id: {error}.") from None
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"The ids of {str(path)!r} must be 0..{len(ids) - 1}, each once.")
    by_id = dict(zip(ids, (name for _, name in rows)))
    return [by_id[i] for i in range(len(ids))]


def _read_text_class_names(path: Path) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def load_prompt_templates(path: str | Path | None = None) -> list[str]:
    """
    Loads prompt templates, one per line, each containing `{}` where the class name goes.

    Args:
        path: A text file of templates; by default the 28 templates CLIP's authors used for Kinetics, which MAXI
            ensembles over for CLIP matching (supplementary sec. 2).
    """
    file = _data_file(PROMPT_TEMPLATES_FILE) if path is None else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Prompt template file {str(file)!r} does not exist.")
    templates = _read_text_class_names(file)
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise ValueError(f"Every prompt template needs exactly one '{{}}'; these do not: {bad[:3]}.")
    if not templates:
        raise ValueError(f"No prompt templates in {str(file)!r}.")
    return templates


__all__ = ["builtin_class_list_names", "load_class_names", "load_prompt_templates"]
