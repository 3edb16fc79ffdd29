# SPDX-License-Identifier: Apache-2.0
"""The stages of a text-bag build, each one call that loads its persisted result or computes and persists it.

index -> dictionary -> match (and captions, from the same decode of each video) -> (refine) -> expand ->
caption_verbs -> bags -> publish. A stage is skipped when `OUTPUT_DIR/stages/<stage>` holds a complete result
computed with the same parameters (its cache key); the keys name the upstream stages' digests, so changing one input
recomputes exactly the stages downstream of it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Features, List, Value
from safetensors.torch import load_file

from .bag_assembly import attach_class_phrases
from .build_arguments import TextBagBuildArguments
from .captioning import caption_verbs_batch, match_and_caption_videos_batch
from .matching import (
    EMBEDDING_COLUMN,
    device_for_rank,
    encode_dictionary,
    load_match_model,
    save_class_embeddings,
)
from .publishing import (
    BUILD_RECORD_NAME,
    CARD_NAME,
    available_configs,
    prepare_for_publishing,
    publish_text_bags,
)
from .refinement import rematch_with_refined_classes
from .sharding import select_shard
from .stages import StageStore, params_digest
from .video_index import UNKNOWN_LABEL, build_video_index

logger = logging.getLogger(__name__)

STRING_LIST = List(Value("string"))
MATCH_FEATURES = {
    "matched_label": Value("int64"),
    "matched_text": Value("string"),
    "match_score": Value("float64"),
    "top5_labels": List(Value("int64")),
    "top5_scores": List(Value("float64")),
    "decode_error": Value("string"),
}
BAG_COLUMN_FEATURES = {
    "llm_phrases": STRING_LIST,
    "llm_verbs": STRING_LIST,
    "captions": STRING_LIST,
    "caption_verbs": STRING_LIST,
}
CAPTION_VERBS_BATCH_SIZE = 64

__all__ = [
    "BAG_COLUMN_FEATURES",
    "gpu_worker_count",
    "run_bags_stage",
    "run_caption_verbs_stage",
    "run_dictionary_stage",
    "run_expand_stage",
    "run_index_stage",
    "run_match_stage",
    "run_publish_stage",
    "run_refine_stage",
    "split_unreadable",
]


def gpu_worker_count(num_gpu_workers: int | None) -> int | None:
    """Processes of the GPU stages (default: one per GPU), or None to map in-process."""
    workers = num_gpu_workers if num_gpu_workers is not None else torch.cuda.device_count()
    if workers > 1 and torch.cuda.is_available():
        import multiprocess

        # CUDA cannot be re-initialised in forked children.
        multiprocess.set_start_method("spawn", force=True)
    return workers if workers > 1 else None


def run_index_stage(store: StageStore, args: TextBagBuildArguments) -> Dataset:
    """This shard's videos; listed on every run (cheap) so that added or removed videos invalidate the stages."""
    listed = select_shard(build_video_index(args.videos, args.video_root), args.num_shards, args.shard_index)
    params = {
        "videos": str(Path(args.videos).resolve()),
        "video_root": str(Path(args.video_root).resolve()) if args.video_root else None,
        "num_shards": args.num_shards,
        "shard_index": args.shard_index,
        "content": params_digest({"paths": list(listed["video_path"]), "labels": list(listed["label"])}),
    }
    index = store.load("index", params)
    if index is None:
        index = store.save("index", listed, params)
    if len(index) == 0:
        raise ValueError(f"Shard {args.shard_index}/{args.num_shards} of {args.videos!r} holds no video")
    return index


def run_dictionary_stage(
    store: StageStore, args: TextBagBuildArguments, class_names: list[str], templates: list[str]
) -> dict[str, Any]:
    """Encode the dictionary once (prompt ensembling) and persist the embeddings; returns the stage payload."""
    params = {
        "clip_model": args.clip_model,
        "dtype": args.dtype,
        "class_names": params_digest({"names": class_names}),
        "templates": params_digest({"templates": templates}),
    }
    embeddings_path = store.stage_dir("dictionary") / "class_embeddings.safetensors"
    payload = store.load_json("dictionary", params)
    if payload is not None and embeddings_path.is_file():
        return {**payload, "embeddings_path": str(embeddings_path)}
    model, processor = load_match_model(args.clip_model, str(device_for_rank(0)), args.dtype)
    start = time.perf_counter()
    embeddings = encode_dictionary(model, processor, class_names, templates)
    seconds = time.perf_counter() - start
    logger.info("Encoded %d classes x %d templates in %.2fs", len(class_names), len(templates), seconds)
    store.stage_dir("dictionary").mkdir(parents=True, exist_ok=True)
    save_class_embeddings(embeddings_path, embeddings)
    payload = {"num_classes": len(class_names), "num_templates": len(templates), "encode_seconds": seconds}
    store.save_json("dictionary", payload, params)
    return {**payload, "embeddings_path": str(embeddings_path)}


def _caption_options(args: TextBagBuildArguments) -> dict[str, Any]:
    """The keyword arguments of `load_caption_consumer` for this build (part of the match stage's key)."""
    return {
        "captioner": args.captioner,
        "num_frames": args.caption_frames,
        "image_size": args.caption_image_size,
        "max_new_tokens": args.caption_max_new_tokens,
        "num_beams": args.caption_num_beams,
        "dtype": args.dtype,
        "batch_size": args.caption_batch_size,
    }


def run_match_stage(
    store: StageStore,
    args: TextBagBuildArguments,
    index: Dataset,
    dictionary: dict[str, Any],
    class_names: list[str],
    gpu_workers: int | None,
) -> Dataset:
    """The GPU frame pass: every video decoded once, its best classes and scores under CLIP (paper Eq. 1), its
    embedding when refining and, with a captioner, its BLIP frame captions (`captions`, `caption_error`)."""
    refine = args.match_refinement_steps > 0
    caption = _caption_options(args) if args.has_captions else None
    params = {
        "upstream": [store.digest("index"), store.digest("dictionary")],
        "num_frames": args.num_frames,
        "video_backend": args.video_backend,
        **({"video_embeddings": True} if refine else {}),  # unchanged key (and cache) without refinement
        **({"caption": {k: v for k, v in caption.items() if k != "batch_size"}} if caption else {}),
    }
    with_embeddings = {**params, "video_embeddings": True}
    if not refine and store.is_complete_with("match", with_embeddings):
        # A refining build's frame pass (same matches and captions, plus the embeddings) serves as it is: switching
        # the refinement off (the paper's matching) redoes no decoding, CLIP pass or captioning.
        return store.load("match", with_embeddings).remove_columns(EMBEDDING_COLUMN)
    caption_features = {"captions": STRING_LIST, "caption_error": Value("string")} if caption else {}
    return store.run_map(
        "match",
        index,
        match_and_caption_videos_batch,
        params,
        desc="Matching videos to the dictionary" + (" and captioning their frames" if caption else ""),
        batch_size=store.chunk_size,  # one call per chunk (or per process): the frame pass batches and prefetches
        num_proc=gpu_workers,
        with_rank=True,
        fn_kwargs={
            "match": {
                "model_name_or_path": args.clip_model,
                "class_embeddings_path": dictionary["embeddings_path"],
                "class_names": class_names,
                "num_frames": args.num_frames,
                "dtype": args.dtype,
                "return_embeddings": refine,
            },
            "caption": caption,
            "batch_size": args.match_batch_size,
            "decode_workers": args.decode_workers,
            "video_backend": args.video_backend,
        },
        new_features={
            **({EMBEDDING_COLUMN: List(Value("float32"))} if refine else {}),
            **MATCH_FEATURES,
            **caption_features,
        },
    )


def run_refine_stage(
    store: StageStore, args: TextBagBuildArguments, matched: Dataset, dictionary: dict[str, Any], class_names: list[str]
) -> tuple[Dataset, dict[str, Any]]:
    """The optional refine stage: match again to class embeddings refined over the matched videos (cached)."""
    params = {
        "upstream": store.digest("match"),
        "steps": args.match_refinement_steps,
        "method": args.match_refinement_method,
    }
    refined = store.load("refine", params)
    if refined is not None:
        return refined, store.read_manifest("refine")["refinement"]
    class_embeds = load_file(dictionary["embeddings_path"])["class_embeddings"]
    refined, refinement = rematch_with_refined_classes(
        matched, class_embeds, class_names, args.match_refinement_steps, args.match_refinement_method
    )
    return store.save("refine", refined, params, refinement=refinement), refinement


def _has_no_decode_error(batch: dict[str, list]) -> list[bool]:
    return [not error for error in batch["decode_error"]]


def split_unreadable(matched: Dataset) -> tuple[Dataset, list[dict[str, str]]]:
    """The readable videos, and `{video_path, error}` of each video that could not be decoded."""
    readable = matched.filter(_has_no_decode_error, batched=True, keep_in_memory=True, desc="Dropping unreadable")
    unreadable = [
        {"video_path": row["relative_path"], "error": row["decode_error"]}
        for row in matched.select_columns(["relative_path", "decode_error"])
        if row["decode_error"]
    ]
    if len(readable) == 0:
        raise RuntimeError(f"None of the {len(matched)} videos could be decoded; see the warnings above")
    return readable, unreadable


#: Build-record parameters that say where something came from without changing what was built: shown on the card, kept
#: out of the expand stage's and the publish key. The LLM's replies are cached by model, prompt and temperature
#: (`llm_expansion.cache_key`), whatever URL served them, so another URL (a proxy, a local server's new port) must not
#: rebuild bags made of the same replies.
PROVENANCE_ONLY_FIELDS = ("llm_base_url",)


def expansion_source(args: TextBagBuildArguments) -> dict[str, Any]:
    """What the class phrases are made from (the expand stage's key): the LLM's model, instruction and temperature
    (what its cached replies are keyed by; the URL is provenance, see `PROVENANCE_ONLY_FIELDS`), or a released
    phrase folder."""
    if args.llm_model is not None:
        return {
            "kind": "llm",
            "model": args.llm_model,
            "instruction": args.llm_instruction,
            "temperature": args.llm_temperature,
        }
    if args.llm_phrases_dir is not None:
        return {"kind": "released", "directory": str(Path(args.llm_phrases_dir).resolve())}
    return {"kind": "none"}


def _expand_with_llm(args: TextBagBuildArguments, actions: list[str]) -> tuple[dict, dict, dict[str, str], int]:
    """Phrases asked from the LLM (cached per request) and the verbs spaCy parses from them."""
    from .llm_expansion import LLMExpansionConfig, expand_actions
    from .verb_parsing import extract_verbs, load_spacy_pipeline

    config = LLMExpansionConfig(
        model=args.llm_model,
        base_url=args.llm_base_url,
        instruction=args.llm_instruction,
        temperature=args.llm_temperature,
        max_concurrency=args.llm_max_concurrency,
        max_retries=args.llm_max_retries,
        timeout=args.llm_timeout,
    )
    cache_dir = args.llm_cache_dir or str(Path(args.output_dir) / "stages" / "llm_cache")
    result = expand_actions(actions, config, cache_dir) if actions else None
    phrases = result.phrases if result else {}
    failures = dict(result.failures) if result else {}
    num_requests = result.num_requests if result else 0
    nlp = load_spacy_pipeline()
    verbs = {action: extract_verbs(action_phrases, nlp) for action, action_phrases in phrases.items()}
    return phrases, verbs, failures, num_requests


def _expand_with_released(phrases_dir: str, actions: list[str]) -> tuple[dict, dict, dict[str, str], int]:
    """The authors' released `gpt3_verbs/<class name>.txt` lines, which already hold the final verb forms."""
    from .llm_expansion import load_released_phrases

    released = load_released_phrases(phrases_dir)
    phrases = {action: released[action] for action in actions if action in released}
    failures = {action: f"no {action}.txt in the released phrases" for action in actions if action not in released}
    return phrases, dict(phrases), failures, 0


def run_expand_stage(
    store: StageStore, args: TextBagBuildArguments, class_names: list[str], matched_ids: list[int]
) -> dict[str, Any]:
    """LLM phrases (once per distinct matched class) and their verbs; returns the persisted payload."""
    actions = [class_names[class_id] for class_id in matched_ids]
    source = expansion_source(args)
    params = {"source": source, "actions": actions}
    payload = store.load_json("expand", params)
    if payload is not None and not (args.retry_llm_failures and payload["failures"]):
        return payload
    if source["kind"] == "llm":
        phrases, verbs, failures, num_requests = _expand_with_llm(args, actions)
    elif source["kind"] == "released":
        phrases, verbs, failures, num_requests = _expand_with_released(args.llm_phrases_dir, actions)
    else:
        phrases, verbs, failures, num_requests = {}, {}, {}, 0
    classes = {
        str(class_id): {"class_name": action, "llm_phrases": phrases[action], "llm_verbs": verbs[action]}
        for class_id, action in zip(matched_ids, actions)
        if action in phrases
    }
    payload = {"classes": classes, "failures": failures, "num_requests": num_requests, "source": source}
    store.save_json("expand", payload, params)
    return payload


def _empty_caption_columns(batch: dict[str, list]) -> dict[str, list]:
    size = len(batch["video_id"])
    return {"captions": [[] for _ in range(size)], "caption_verbs": [[] for _ in range(size)]}


def run_caption_verbs_stage(
    store: StageStore, args: TextBagBuildArguments, readable: Dataset, upstream_stage: str
) -> tuple[Dataset, str]:
    """The verbs (spaCy) of the frame captions made in the match stage's frame pass, or empty columns without a
    captioner; returns the videos with `captions` and `caption_verbs`, and the digest of the last stage they depend
    on."""
    if not args.has_captions:
        with_verbs = readable.map(_empty_caption_columns, batched=True, keep_in_memory=True, desc="No captions")
        return with_verbs, store.digest(upstream_stage)
    with_verbs = store.run_map(
        "caption_verbs",
        readable,
        caption_verbs_batch,
        {"upstream": store.digest(upstream_stage)},
        desc="Parsing caption verbs",
        batch_size=CAPTION_VERBS_BATCH_SIZE,
        num_proc=args.num_cpu_workers,
        new_features={"caption_verbs": STRING_LIST},
    )
    return with_verbs, store.digest("caption_verbs")


def run_bags_stage(store: StageStore, with_verbs: Dataset, upstream: str, expansion: dict[str, Any]) -> Dataset:
    """Every video with its class's LLM phrases and verbs beside its caption verbs (unfiltered)."""
    params = {"upstream": upstream, "expansion": params_digest(expansion)}
    bags = store.load("bags", params)
    if bags is not None:
        return bags
    class_phrases = {int(class_id): entry for class_id, entry in expansion["classes"].items()}
    bags = with_verbs.map(
        attach_class_phrases,
        batched=True,
        fn_kwargs={"class_phrases": class_phrases},
        keep_in_memory=True,
        desc="Attaching LLM phrases",
    )
    bags = bags.cast(Features({**bags.features, **BAG_COLUMN_FEATURES}))
    return store.save("bags", bags, params)


def _read_record(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / BUILD_RECORD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def run_publish_stage(
    store: StageStore, args: TextBagBuildArguments, bags: Dataset, record: dict[str, Any]
) -> dict[str, Any]:
    """Filter (top p) and publish the bags with their card, unless the published dataset is already this one."""
    output_dir = Path(args.output_dir)
    parameters = {key: value for key, value in record["parameters"].items() if key not in PROVENANCE_ONLY_FIELDS}
    content = {**record, "parameters": parameters}
    publish_key = params_digest(
        {"bags": store.digest("bags"), "record": content, "p": args.filter_ratio, "score": args.filter_score}
    )
    previous = _read_record(output_dir)
    if previous is not None and previous.get("publish_key") == publish_key and (output_dir / CARD_NAME).is_file():
        logger.info("Published dataset in %s is up to date", output_dir)
        return previous
    configs = available_configs(has_llm=args.has_llm, has_captions=args.has_captions)
    to_publish = prepare_for_publishing(bags, UNKNOWN_LABEL)
    record = {**record, "publish_key": publish_key}
    return publish_text_bags(to_publish, output_dir, record, args.filter_ratio, configs, args.filter_score)
