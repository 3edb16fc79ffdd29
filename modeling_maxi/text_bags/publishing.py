# SPDX-License-Identifier: Apache-2.0
"""Publish stage: text bags as a parquet `DatasetDict` per configuration, with a dataset card.

The output folder loads with plain `datasets.load_dataset(folder)` (default configuration) and
`datasets.load_dataset(folder, "<config>")`: the card's YAML header declares one configuration per row of the
paper's Table 6 that the build has the sources for, each with a `train` split of files
`<config>/train-<fingerprint>-0000i-of-0000N.parquet`; the fingerprint (of the files' bytes) is also in the card's
patterns, so two folders named alike, or a folder rebuilt in place, never share a `datasets` cache entry. A publish
writes into `.publishing/` and renames into place; the build record `text_bag_build.json` is deleted first and
written last, so a folder holding it is a finished publish. Every readable video is published by default (p = 1) with
its `match_score`, `top5_scores` and `match_margin`; the card's "Filtering" section and the record's
`training_filter` give the paper's p, applied once, at training. The card records the models, the LLM instruction
and temperature, the counts, the unreadable videos and the failed LLM requests. Secrets are never written: URLs lose
their user-info and query string, and the values of `OPENAI_API_KEY` and `HF_TOKEN` are redacted from everything the
card and the build record contain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import yaml
from datasets import Dataset, DatasetDict, List, Value, load_dataset

from .bag_assembly import BAG_CONFIGS, DEFAULT_BAG_CONFIG, sources_for_config, text_bag_batch
from .filtering import (
    PAPER_TRAINING_FILTER,
    confidence_scores,
    filter_by_confidence,
    match_margins,
    validate_filter_ratio,
    validate_filter_score,
)
from .refinement import REFINED_SCORE_DESCRIPTIONS

logger = logging.getLogger(__name__)

BUILD_RECORD_NAME = "text_bag_build.json"
CARD_NAME = "README.md"
PUBLISHING_DIR_NAME = ".publishing"
FINGERPRINT_LENGTH = 16
ROWS_PER_PARQUET_FILE = 100_000
PUBLISHED_COLUMNS = (
    "video_id",
    "video_path",
    "label",
    "matched_label",
    "matched_text",
    "match_score",
    "top5_labels",
    "top5_scores",
    "match_margin",
    "llm_phrases",
    "llm_verbs",
    "captions",
    "caption_verbs",
    "text_bag",
)
CONFIG_DESCRIPTIONS = {
    "dictionary": "Dictionary only (Table 6: K400 dict.): empty bag, training uses the matched dictionary text alone.",
    "dictionary_captions": "Dictionary + caption verbs (Table 6: + BLIP verbs).",
    "dictionary_llm": "Dictionary + LLM verbs and verb phrases of the matched class (Table 6: + GPT3 verbs).",
    "dictionary_llm_captions": "Dictionary + LLM verbs + caption verbs (Table 6: + GPT3 verbs + BLIP verbs).",
}


def redact_url(url: str | None) -> str | None:
    """`url` without user-info, query string or fragment (where credentials may hide)."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_secrets(value: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of the given secrets in the strings of a JSON-like value."""
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "<redacted>")
        return value
    if isinstance(value, dict):
        return {redact_secrets(key, secrets): redact_secrets(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(item, secrets) for item in value]
    return value


def _environment_secrets() -> list[str]:
    return [os.environ.get("OPENAI_API_KEY", ""), os.environ.get("HF_TOKEN", "")]


def available_configs(has_llm: bool, has_captions: bool) -> list[str]:
    """The configurations a build can publish, default first."""
    configs = ["dictionary"]
    if has_captions:
        configs.append("dictionary_captions")
    if has_llm:
        configs.append("dictionary_llm")
    if has_llm and has_captions:
        configs.append("dictionary_llm_captions")
    return sorted(configs, key=lambda name: (name != default_config(configs), name))


def default_config(configs: list[str]) -> str:
    """The richest configuration among `configs` (the full MAXI bag when it is there)."""
    for name in (DEFAULT_BAG_CONFIG, "dictionary_llm", "dictionary_captions", "dictionary"):
        if name in configs:
            return name
    raise ValueError(f"No known configuration among {configs!r}; expected some of {sorted(BAG_CONFIGS)}")


def config_datasets(bags: Dataset, configs: list[str]) -> DatasetDict:
    """One dataset per configuration: the published columns with `text_bag` rebuilt from the configuration's sources."""
    published = {}
    for name in configs:
        dataset = bags.map(
            text_bag_batch,
            batched=True,
            fn_kwargs={"sources": sources_for_config(name)},
            keep_in_memory=True,
            desc=f"Assembling {name} bags",
        ).cast_column("text_bag", List(Value("string")))
        published[name] = dataset.select_columns([c for c in PUBLISHED_COLUMNS if c in dataset.column_names])
    return DatasetDict(published)


def prepare_for_publishing(bags: Dataset, unknown_label: int = -1) -> Dataset:
    """The pipeline's `bags` stage in published form: `video_path` relative to the video root (the machine's own
    path is kept as `absolute_video_path`, not published) and no `label` column when no label is known."""
    published = bags.rename_column("video_path", "absolute_video_path").rename_column("relative_path", "video_path")
    if "label" in published.column_names and all(label == unknown_label for label in published["label"]):
        published = published.remove_columns("label")
    return published


def _write_parquet(dataset: Dataset, directory: Path) -> list[Path]:
    """`dataset` as `train-0000i-of-0000N.parquet` files in `directory` (named without the fingerprint yet)."""
    directory.mkdir(parents=True, exist_ok=True)
    num_files = max(1, math.ceil(len(dataset) / ROWS_PER_PARQUET_FILE))
    paths = []
    for index in range(num_files):
        path = directory / f"train-{index:05d}-of-{num_files:05d}.parquet"
        dataset.shard(num_files, index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


def files_fingerprint(paths: list[Path]) -> str:
    """The first 16 hex digits of the SHA-256 of the files' names and bytes: the build fingerprint of a publish."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def data_files_pattern(config: str, fingerprint: str) -> str:
    """The card's `data_files` pattern of a configuration: `<config>/train-<fingerprint>-*.parquet`.

    The fingerprint is what makes plain `datasets.load_dataset(folder)` correct: `datasets` (5.2) keys the cache of a
    local folder whose card declares configurations by the folder's name, the configuration and its patterns, not by
    the files; two builds published to folders named alike, or a folder rebuilt in place, differ in their patterns.
    """
    return f"{config}/train-{fingerprint}-*.parquet"


def _refinement_paragraph(parameters: dict[str, Any]) -> list[str]:
    """Card lines saying how the matches were refined before filtering, when they were (not in the paper)."""
    steps, method = parameters.get("match_refinement_steps"), parameters.get("match_refinement_method")
    if not steps:
        return []
    scores = REFINED_SCORE_DESCRIPTIONS[method]
    return [
        "",
        f"The matches were refined over the videos in {steps} `{method}` steps before filtering (not in the paper; see",
        f"`modeling_maxi/text_bags/refinement.py`): `match_score` and `top5_scores` are {scores}.",
    ]


def render_dataset_card(configs: list[str], record: dict[str, Any]) -> str:
    """The dataset card (README.md): YAML configs header + a human-readable build report.

    The `data_files` patterns name the publish's `fingerprint` (see `data_files_pattern`) when the record has one.
    """
    default = default_config(configs)
    fingerprint = record.get("fingerprint")
    header = {
        "configs": [
            {
                "config_name": name,
                "data_files": [
                    {
                        "split": "train",
                        "path": data_files_pattern(name, fingerprint) if fingerprint else f"{name}/train-*.parquet",
                    }
                ],
                **({"default": True} if name == default else {}),
            }
            for name in configs
        ],
        "task_categories": ["video-classification", "zero-shot-classification"],
        "tags": ["maxi", "text-bags", "unsupervised", "action-recognition"],
        "pretty_name": record.get("pretty_name", "MAXI text bags"),
    }
    parameters = record.get("parameters", {})
    stats = record.get("stats", {})
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {header['pretty_name']}",
        "",
        'Text bags for unsupervised video finetuning of CLIP with MAXI ("MAtch, eXpand and Improve", ICCV 2023):',
        "each unlabeled video is matched to an action of a dictionary by CLIP, and its bag collects verbs from an LLM",
        "expansion of that action and from BLIP captions of its frames. Labels, where present, are for evaluation",
        "only; they were never used to build a bag. `video_path` is relative to the root of the video collection.",
        *_refinement_paragraph(parameters),
        "",
        "## Configurations",
        "",
        "| config | bag content |",
        "| --- | --- |",
    ]
    lines += [
        f"| `{name}`{' (default)' if name == default else ''} | {CONFIG_DESCRIPTIONS[name]} |" for name in configs
    ]
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'bags = load_dataset("<this dataset>", "{default}", split="train")',
        "```",
        "",
        "## Build parameters",
        "",
        "| parameter | value |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | `{json.dumps(value)}` |" for key, value in sorted(parameters.items())]
    lines += ["", "## Counts", "", "| quantity | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in sorted(stats.items())]
    lines += _filtering_paragraph(record)
    unreadable = record.get("unreadable_videos", [])
    lines += ["", f"## Unreadable videos ({len(unreadable)})", ""]
    lines += [f"- `{item['video_path']}`: {item['error']}" for item in unreadable[:100]]
    if len(unreadable) > 100:
        lines.append(f"- ... and {len(unreadable) - 100} more (see `{BUILD_RECORD_NAME}`)")
    failures = record.get("llm_failures", {})
    lines += ["", f"## Failed LLM expansions ({len(failures)})", ""]
    lines += [f"- `{action}`: {message}" for action, message in sorted(failures.items())]
    lines += ["", "Classes without LLM phrases fall back to the other sources of their bag.", ""]
    return "\n".join(lines)


def _filtering_paragraph(record: dict[str, Any]) -> list[str]:
    """The card's "## Filtering" section: what the build kept, and the paper's filter, applied at training."""
    parameters, stats = record.get("parameters", {}), record.get("stats", {})
    ratio, score = parameters.get("filter_ratio", 1.0), parameters.get("filter_score", "similarity")
    recipe = record.get("training_filter", PAPER_TRAINING_FILTER)
    lines = [
        "",
        "## Filtering",
        "",
        f"This build published {stats.get('videos_published', 'n/a')} of the {stats.get('videos_before_filter', 'n/a')}"
        f" readable videos (build-time p = {ratio:g} by `{score}`; p = 1 publishes every one). Every row keeps its",
        "match confidence: `match_score` (the similarity to the matched action), `top5_scores` and `match_margin` (the",
        "best similarity minus the runner-up)"
        + (", so any p of the paper's Table 4 can be chosen when training." if ratio >= 1 else "."),
        "",
        f"The paper's recipe keeps the top p = {recipe['ratio']:g} by `{recipe['score']}`, once, at training:",
        f"`training/train.py --filter_ratio {recipe['ratio']:g} --filter_score {recipe['score']}` (the settings of",
        "`training/configs/maxi_vitb16_k400.yaml`).",
    ]
    if ratio < 1:
        lines += [
            "",
            f"This dataset was already filtered at build time: training counts p relative to the original "
            f"{stats.get('videos_before_filter', 'n/a')} videos",
            f"(a p <= {ratio:g} by `{score}` keeps `ceil(p x N)` of them) and refuses any other filter.",
        ]
    return lines


def with_match_margin(bags: Dataset) -> Dataset:
    """`bags` with a `match_margin` column (best minus runner-up of `top5_scores`; -inf without two scores)."""
    if "match_margin" in bags.column_names or "top5_scores" not in bags.column_names:
        return bags
    return bags.add_column("match_margin", match_margins(bags["top5_scores"]))


def _publish_files(published: DatasetDict, output_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write the configurations, card and build record so that a kill never leaves a half-published folder.

    The build record goes first and is written last (a folder without it is no finished publish); the parquet files
    and the card are written into `OUTPUT_DIR/.publishing`, named with the fingerprint of their bytes, then renamed
    into place.
    """
    (output_dir / BUILD_RECORD_NAME).unlink(missing_ok=True)
    staging = output_dir / PUBLISHING_DIR_NAME
    if staging.exists():
        shutil.rmtree(staging)
    written = {name: _write_parquet(dataset, staging / name) for name, dataset in published.items()}
    fingerprint = files_fingerprint([path for paths in written.values() for path in paths])
    for paths in written.values():
        for path in paths:
            os.replace(path, path.with_name(path.name.replace("train-", f"train-{fingerprint}-", 1)))
    record = redact_secrets({**record, "fingerprint": fingerprint}, _environment_secrets())
    card = redact_secrets(render_dataset_card(list(published), record), _environment_secrets())
    (staging / CARD_NAME).write_text(card, encoding="utf-8")
    for name in BAG_CONFIGS:
        if (output_dir / name).exists():
            shutil.rmtree(output_dir / name)
        if name in published:
            os.replace(staging / name, output_dir / name)
    os.replace(staging / CARD_NAME, output_dir / CARD_NAME)
    shutil.rmtree(staging)
    temporary = output_dir / (BUILD_RECORD_NAME + ".tmp")
    temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, output_dir / BUILD_RECORD_NAME)
    return record


def publish_text_bags(
    bags: Dataset,
    output_dir: str | Path,
    record: dict[str, Any],
    filter_ratio: float,
    configs: list[str],
    filter_score: str = "similarity",
) -> dict[str, Any]:
    """Write every configuration as parquet, the dataset card and the build record (see `_publish_files`).

    Args:
        bags: the unfiltered bags (the pipeline's `bags` stage): all published columns but `text_bag` (and
            `match_margin`, added from `top5_scores`).
        output_dir: the publish folder (configuration folders, `README.md`, `text_bag_build.json` go there).
        record: build record (`parameters`, `stats`, `unreadable_videos`, `llm_failures`); completed with the
            filter outcome, the paper's `training_filter` and the publish's `fingerprint`, and returned.
        filter_ratio: p kept at build time (1, the build's default, publishes every video, even without scores; the
            paper's p = 0.9 is applied once, at training).
        configs: configurations to publish (see `available_configs`).
        filter_score: the confidence a build-time filter ranks by, ``"similarity"`` (the paper's) or ``"margin"`` (see
            `modeling_maxi.text_bags.filtering`).

    Returns:
        The completed build record.
    """
    filter_ratio = validate_filter_ratio(filter_ratio)
    filter_score = validate_filter_score(filter_score)
    unknown = [name for name in configs if name not in BAG_CONFIGS]
    if unknown or not configs:
        raise ValueError(f"configs must be a non-empty subset of {sorted(BAG_CONFIGS)}, got {configs!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bags = with_match_margin(bags)
    scores = [score for score in confidence_scores(bags, filter_score) if score is not None and math.isfinite(score)]
    if filter_ratio == 1.0 and len(scores) != len(bags):
        kept, delta_p = bags, (min(scores) if scores else None)
    else:
        result = filter_by_confidence(bags, filter_ratio, filter_score)
        kept, delta_p = result.dataset, result.delta_p
    record = {**record, "configs": configs, "default_config": default_config(configs)}
    record["parameters"] = {**record.get("parameters", {}), "filter_ratio": filter_ratio, "filter_score": filter_score}
    record["stats"] = {
        **record.get("stats", {}),
        "videos_before_filter": len(bags),
        "videos_published": len(kept),
        "delta_p": delta_p,
    }
    record["training_filter"] = dict(PAPER_TRAINING_FILTER)
    record = _publish_files(config_datasets(kept, configs), output_dir, record)
    logger.info(
        "Published %d of %d videos (build-time p=%s by %s, delta_p=%s) in configurations %s to %s",
        len(kept),
        len(bags),
        filter_ratio,
        filter_score,
        delta_p,
        ", ".join(configs),
        output_dir,
    )
    return record


def push_text_bags_to_hub(output_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None):
    """Upload a published folder (card, build record and configuration folders, not the stages) to the Hub."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}")
    output_dir = Path(output_dir)
    if not (output_dir / CARD_NAME).is_file():
        raise FileNotFoundError(f"{str(output_dir)!r} holds no published dataset ({CARD_NAME} missing)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    allow = [CARD_NAME, BUILD_RECORD_NAME] + [f"{name}/*.parquet" for name in BAG_CONFIGS]
    commit = api.upload_folder(
        folder_path=str(output_dir),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=allow,
        commit_message="Upload MAXI text bags",
    )
    logger.info("Pushed the text bags to https://huggingface.co/datasets/%s", repo_id)
    return commit


def load_text_bags(
    name_or_path: str | Path, config_name: str | None = None, split: str = "train", cache_dir: str | None = None
) -> Dataset:
    """One split of a published text-bag dataset (a Hub id or a folder written by `publish_text_bags`): plain
    `datasets.load_dataset(name_or_path, config_name, split=split)`, which is correct for every published folder
    because the data files and the card's patterns carry the publish's fingerprint (see `data_files_pattern`)."""
    return load_dataset(str(name_or_path), config_name, split=split, cache_dir=cache_dir)


def load_build_record(name_or_path: str | Path) -> dict[str, Any] | None:
    """The build record (`text_bag_build.json`) of a published folder or Hub dataset, or None where it has none (a
    folder saved with `save_to_disk`, a Hub dataset out of reach)."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        record_path = path / BUILD_RECORD_NAME
        return json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        downloaded = hf_hub_download(str(name_or_path), BUILD_RECORD_NAME, repo_type="dataset")
    except Exception as error:  # no such file, no network: the dataset says nothing about its build filter
        logger.info("No build record for %s (%s)", name_or_path, error)
        return None
    return json.loads(Path(downloaded).read_text(encoding="utf-8"))
