# SPDX-License-Identifier: Apache-2.0
"""The text-bag build (paper sec. 3.2) as one library call: `build_text_bags(TextBagBuildArguments(...))`.

index -> dictionary (prompt-ensembled text embeddings) -> match (CLIP, and BLIP captions of frames from the same
decode) -> optional refine -> caption_verbs (spaCy) -> expand (LLM, once per matched class) -> bags; then publish
(parquet configurations + dataset card in OUTPUT_DIR: every readable video by default, p = 1; the paper's p is
applied once, at training).
Every stage is persisted under OUTPUT_DIR/stages and reused by a later build with the same parameters (see
`build_stages`). One call per process runs the build over N processes (`accelerate launch --num_processes N`): the
chunks of the mapped stages are split over them and the main process publishes. The LLM key is read from
`OPENAI_API_KEY` and never written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..dictionaries import load_class_names, load_prompt_templates
from .build_arguments import TextBagBuildArguments
from .build_stages import (
    gpu_worker_count,
    run_bags_stage,
    run_caption_verbs_stage,
    run_dictionary_stage,
    run_expand_stage,
    run_index_stage,
    run_match_stage,
    run_publish_stage,
    run_refine_stage,
    split_unreadable,
)
from .publishing import push_text_bags_to_hub, redact_url
from .stages import StageStore, distributed_env

logger = logging.getLogger(__name__)

BUILD_LOG_NAME = "build.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

__all__ = ["BUILD_LOG_NAME", "build_dictionary", "build_log", "build_text_bags", "describe_build_arguments"]


def build_dictionary(dictionary: str, extra_verbs: str | None) -> tuple[list[str], int]:
    """The dictionary's class names followed by the extra verbs that are not already in it, and their number."""
    names = load_class_names(dictionary)
    if extra_verbs is None:
        return names, 0
    known = {name.lower() for name in names}
    extras = []
    for verb in load_class_names(extra_verbs):
        if verb.lower() not in known:
            known.add(verb.lower())
            extras.append(verb)
    logger.info("Dictionary %s: %d classes + %d extra verbs from %s", dictionary, len(names), len(extras), extra_verbs)
    return names + extras, len(extras)


def describe_build_arguments(args: TextBagBuildArguments) -> str:
    """The arguments as one JSON line for the log, the LLM URL without credentials."""
    return json.dumps({**asdict(args), "llm_base_url": redact_url(args.llm_base_url)}, default=str)


def _record_parameters(
    args: TextBagBuildArguments, dictionary: dict[str, Any], num_extra_verbs: int, expansion: dict[str, Any]
) -> dict[str, Any]:
    """What the published bags were built with (the card's table); the filter settings are added when publishing."""
    refinement = (
        {"match_refinement_steps": args.match_refinement_steps, "match_refinement_method": args.match_refinement_method}
        if args.match_refinement_steps > 0
        else {}
    )
    return {
        "dictionary": args.dictionary,
        "dictionary_size": dictionary["num_classes"],
        "extra_verbs": num_extra_verbs,
        "clip_model": args.clip_model,
        "num_frames": args.num_frames,
        "prompt_templates": dictionary["num_templates"],
        "llm_source": expansion["source"]["kind"],
        "llm_model": args.llm_model,
        "llm_base_url": redact_url(args.llm_base_url),
        "llm_instruction": args.llm_instruction if args.llm_model else None,
        "llm_temperature": args.llm_temperature if args.llm_model else None,
        "llm_phrases_dir": expansion["source"].get("directory"),
        "captioner": args.captioner,
        "caption_frames": args.caption_frames if args.has_captions else None,
        "caption_image_size": args.caption_image_size if args.has_captions else None,
        "caption_num_beams": args.caption_num_beams if args.has_captions else None,
        "num_shards": args.num_shards,
        "shard_index": args.shard_index,
        **refinement,
    }


def _record_stats(
    index: Dataset,
    readable: Dataset,
    unreadable: list[dict[str, str]],
    matched_ids: list[int],
    dictionary: dict[str, Any],
    expansion: dict[str, Any],
    refinement: dict[str, Any] | None,
) -> dict[str, Any]:
    """The build's counts before filtering; the filter adds its own when publishing."""
    return {
        "videos_indexed": len(index),
        "videos_unreadable": len(unreadable),
        "videos_matched": len(readable),
        "distinct_matched_classes": len(matched_ids),
        "llm_requests": expansion["num_requests"],
        "llm_failures": len(expansion["failures"]),
        "dictionary_encode_seconds": round(dictionary["encode_seconds"], 3),
        **({"refinement_changed_matches": refinement["changed_matches"]} if refinement is not None else {}),
    }


def _gpu_workers_for(store: StageStore, num_gpu_workers: int | None) -> int | None:
    """`gpu_worker_count`, refused beside N processes: each of those maps its own chunks on its own device."""
    if store.world_size == 1:
        return gpu_worker_count(num_gpu_workers)
    if num_gpu_workers is not None and num_gpu_workers > 1:
        raise ValueError(
            f"--num-gpu-workers {num_gpu_workers} cannot be combined with {store.world_size} processes (accelerate "
            "launch): each process already maps its chunks on its own device. Drop --num-gpu-workers, or launch one "
            "process."
        )
    return None


def build_text_bags(args: TextBagBuildArguments) -> dict[str, Any]:
    """Run (or resume) every stage of the build and publish the bags to `args.output_dir`.

    Under `accelerate launch --num_processes N` every process runs this call: the chunks of the match and caption
    stages are split over the processes (see `StageStore`), the other stages run on the main process while the
    others wait, and after the caption stages the other processes return; the main process expands, assembles and
    publishes one dataset.

    Returns:
        The build record (also written as `text_bag_build.json` beside the dataset card): `parameters`, `stats`,
        `unreadable_videos`, `llm_failures`, the published `configs` and the `publish_key` of this build. On a
        process other than the main one, only its `rank` and the `world_size`.
    """
    if not isinstance(args, TextBagBuildArguments):
        raise TypeError(f"args must be a TextBagBuildArguments, got {type(args).__name__}")
    logger.info("Building text bags with %s", describe_build_arguments(args))
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    store = StageStore(
        Path(args.output_dir) / "stages", chunk_size=args.chunk_size, wait_timeout=args.rank_wait_timeout
    )
    gpu_workers = _gpu_workers_for(store, args.num_gpu_workers)
    class_names, num_extra_verbs = build_dictionary(args.dictionary, args.extra_verbs)
    templates = load_prompt_templates(args.prompt_templates)

    index = run_index_stage(store, args)
    dictionary = run_dictionary_stage(store, args, class_names, templates)
    matched = run_match_stage(store, args, index, dictionary, class_names, gpu_workers)
    match_stage, refinement = "match", None
    if args.match_refinement_steps > 0:
        matched, refinement = run_refine_stage(store, args, matched, dictionary, class_names)
        match_stage = "refine"
    readable, unreadable = split_unreadable(matched)
    with_verbs, upstream = run_caption_verbs_stage(store, args, readable, match_stage)
    if not store.is_main:
        logger.info("Process %d of %d: its chunks are done; the main process publishes", store.rank, store.world_size)
        return {"rank": store.rank, "world_size": store.world_size}
    matched_ids = sorted(set(readable["matched_label"]))
    expansion = run_expand_stage(store, args, class_names, matched_ids)
    bags = run_bags_stage(store, with_verbs, upstream, expansion)

    record = {
        "pretty_name": f"MAXI text bags ({args.dictionary} dictionary)",
        "parameters": _record_parameters(args, dictionary, num_extra_verbs, expansion),
        "stats": _record_stats(index, readable, unreadable, matched_ids, dictionary, expansion, refinement),
        "unreadable_videos": unreadable,
        "llm_failures": expansion["failures"],
    }
    record = run_publish_stage(store, args, bags, record)
    logger.info("Stages computed in this run: %s; loaded: %s", store.computed or "none", store.loaded or "none")
    if args.push_to_hub:
        push_text_bags_to_hub(args.output_dir, args.push_to_hub, private=args.hub_private)
    return record


@contextlib.contextmanager
def build_log(output_dir: str | Path) -> Iterator[Path]:
    """While the block runs, log at INFO to stderr (unless the root logger already streams) and to
    OUTPUT_DIR/logs/build.log (`build.rank<i>.log` for each of N processes); yields the log file's path and removes
    the file handler afterwards."""
    rank, world_size, _ = distributed_env()
    name = BUILD_LOG_NAME if world_size == 1 else BUILD_LOG_NAME.replace(".log", f".rank{rank}.log")
    log_path = Path(output_dir) / "logs" / name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(LOG_FORMAT)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(formatter)
    root = logging.getLogger()
    if not any(isinstance(handler, logging.StreamHandler) for handler in root.handlers):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    try:
        yield log_path
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
