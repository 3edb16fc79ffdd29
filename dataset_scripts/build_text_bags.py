"""Build MAXI text bags for a collection of unlabeled videos (paper sec. 3.2).

    python -m dataset_scripts.build_text_bags --videos DIR_OR_LIST --dictionary k400 --output-dir OUT \
        [--llm-model gpt-3.5-turbo --llm-base-url URL] [--captioner Salesforce/blip-image-captioning-large]

Stages (each persisted under OUT/stages/<stage> and skipped when already complete with the same parameters):
index -> dictionary (prompt-ensembled text embeddings) -> match (CLIP) -> expand (LLM, once per matched class)
-> caption (BLIP) -> caption_verbs (spaCy) -> bags; then filter (top p by match score) and publish (parquet
configurations + dataset card in OUT). The LLM key is read from `OPENAI_API_KEY` and never written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Features, List, Value
from safetensors.torch import load_file

from modeling_maxi.dictionaries import load_class_names, load_prompt_templates
from modeling_maxi.text_bags.bag_assembly import attach_class_phrases
from modeling_maxi.text_bags.captioning import DEFAULT_CAPTIONER, caption_verbs_batch, caption_videos_batch
from modeling_maxi.text_bags.filtering import filter_score_field, validate_filter_ratio, validate_filter_score
from modeling_maxi.text_bags.matching import (
    DTYPES,
    device_for_rank,
    encode_dictionary,
    load_match_model,
    match_videos_batch,
    save_class_embeddings,
)
from modeling_maxi.text_bags.publishing import (
    BUILD_RECORD_NAME,
    CARD_NAME,
    available_configs,
    prepare_for_publishing,
    publish_text_bags,
    push_text_bags_to_hub,
    redact_url,
)
from modeling_maxi.text_bags.refinement import (
    EMBEDDING_COLUMN,
    refinement_method_field,
    rematch_with_refined_classes,
    validate_refinement_method,
    validate_refinement_steps,
)
from modeling_maxi.text_bags.sharding import select_shard, validate_shard_arguments
from modeling_maxi.text_bags.stages import StageStore, params_digest
from modeling_maxi.text_bags.video_index import UNKNOWN_LABEL, build_video_index

logger = logging.getLogger("dataset_scripts.build_text_bags")

STRING_LIST = List(Value("string"))
BAG_COLUMN_FEATURES = {
    "llm_phrases": STRING_LIST,
    "llm_verbs": STRING_LIST,
    "captions": STRING_LIST,
    "caption_verbs": STRING_LIST,
}


@dataclass
class TextBagBuildArguments:
    """Arguments of the text-bag build (also readable from one JSON/YAML file)."""

    videos: str = field(metadata={"help": "Directory tree of videos, or a list file of `relative/path [label]` lines."})
    output_dir: str = field(metadata={"help": "Output folder: published dataset, card, and the resumable stages."})
    video_root: str | None = field(
        default=None, metadata={"help": "Root the paths of a list file are relative to (default: its directory)."}
    )
    dictionary: str = field(
        default="k400", metadata={"help": "Action dictionary: k400, minikinetics, another built-in or a csv/txt file."}
    )
    extra_verbs: str | None = field(
        default=None, metadata={"help": "Text file of extra verbs added to the dictionary (over-specified case)."}
    )
    prompt_templates: str | None = field(
        default=None, metadata={"help": "Prompt templates file (default: the 28 Kinetics templates of CLIP)."}
    )
    clip_model: str = field(
        default="openai/clip-vit-base-patch16", metadata={"help": "CLIP checkpoint used to match videos."}
    )
    num_frames: int = field(default=16, metadata={"help": "Segment-sampled frames per video for matching."})
    match_batch_size: int = field(default=16, metadata={"help": "Videos per batch in the match stage."})
    dtype: str = field(
        default="float16", metadata={"help": "Model dtype on GPU (float32 on CPU).", "choices": sorted(DTYPES)}
    )
    llm_model: str | None = field(
        default=None, metadata={"help": "Chat model behind an OpenAI-compatible API (key in OPENAI_API_KEY)."}
    )
    llm_base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible API root (ends in /v1)."})
    llm_instruction: str = field(
        default="Generate 5 phrases to describe the action of {action} in simple words.",
        metadata={"help": "Instruction sent per matched class; must contain {action}."},
    )
    llm_temperature: float = field(default=0.4, metadata={"help": "Sampling temperature of the LLM."})
    llm_max_concurrency: int = field(default=4, metadata={"help": "Concurrent LLM requests."})
    llm_max_retries: int = field(default=5, metadata={"help": "Retries on 429/5xx/timeouts."})
    llm_initial_backoff: float = field(default=1.0, metadata={"help": "First retry wait in seconds (doubled after)."})
    llm_timeout: float = field(default=60.0, metadata={"help": "Timeout of one LLM request in seconds."})
    llm_cache_dir: str | None = field(
        default=None, metadata={"help": "LLM reply cache (default: OUTPUT_DIR/stages/llm_cache)."}
    )
    llm_phrases_dir: str | None = field(
        default=None,
        metadata={"help": "Use released phrases instead of an LLM: a `gpt3_verbs/<class name>.txt` directory."},
    )
    retry_llm_failures: bool = field(
        default=False, metadata={"help": "Re-run a finished expand stage that recorded failed classes."}
    )
    captioner: str = field(
        default=DEFAULT_CAPTIONER, metadata={"help": "BLIP captioning checkpoint, or `none` to skip captions."}
    )
    caption_frames: int = field(default=8, metadata={"help": "Uniformly sampled frames captioned per video."})
    caption_image_size: int = field(default=384, metadata={"help": "Frame size given to the captioner."})
    caption_batch_size: int = field(default=8, metadata={"help": "Videos per batch in the caption stage."})
    caption_max_new_tokens: int = field(default=30, metadata={"help": "Longest caption, in tokens."})
    caption_num_beams: int = field(default=1, metadata={"help": "Beam size of caption generation."})
    filter_ratio: float = field(default=0.9, metadata={"help": "Fraction p of videos kept by match score (0, 1]."})
    filter_score: str = filter_score_field()
    match_refinement_steps: int = field(
        default=0,
        metadata={
            "help": "Refine the classes over the videos in this many steps of --match-refinement-method and match "
            "again before filtering (0 = the paper's matching; see modeling_maxi/text_bags/refinement.py). Needs "
            "--num-shards 1."
        },
    )
    match_refinement_method: str = refinement_method_field()
    num_shards: int = field(default=1, metadata={"help": "Number of disjoint shards the collection is split into."})
    shard_index: int = field(default=0, metadata={"help": "Shard built by this run, in [0, num_shards)."})
    num_gpu_workers: int | None = field(
        default=None, metadata={"help": "Processes of the GPU stages (default: number of GPUs, in-process if <= 1)."}
    )
    num_cpu_workers: int | None = field(default=None, metadata={"help": "Processes of the spaCy parsing stage."})
    decode_workers: int = field(default=4, metadata={"help": "Threads decoding videos inside a batch."})
    video_backend: str = field(default="auto", metadata={"help": "Video decoder: auto, decord, torchcodec, pyav."})
    chunk_size: int = field(default=2048, metadata={"help": "Rows per persisted chunk of a mapped stage."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the published dataset to this Hub repo."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})

    def __post_init__(self):
        validate_filter_ratio(self.filter_ratio)
        validate_filter_score(self.filter_score)
        validate_shard_arguments(self.num_shards, self.shard_index)
        validate_refinement_steps(self.match_refinement_steps)
        validate_refinement_method(self.match_refinement_method)
        if self.match_refinement_steps and self.num_shards > 1:
            raise ValueError(
                f"--match-refinement-steps {self.match_refinement_steps} refines over the whole collection; it cannot "
                f"run on one of --num-shards {self.num_shards} shards. Build in one shard or set it to 0."
            )
        for name in ("num_frames", "match_batch_size", "caption_frames", "caption_image_size", "caption_batch_size"):
            _check_positive(name, getattr(self, name))
        for name in ("caption_max_new_tokens", "caption_num_beams", "chunk_size", "decode_workers"):
            _check_positive(name, getattr(self, name))
        for name in ("num_gpu_workers", "num_cpu_workers"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.llm_model is not None and self.llm_phrases_dir is not None:
            raise ValueError(
                f"Give either --llm-model ({self.llm_model!r}) or --llm-phrases-dir ({self.llm_phrases_dir!r}), "
                "not both"
            )
        if self.llm_phrases_dir is not None and not Path(self.llm_phrases_dir).is_dir():
            raise FileNotFoundError(f"--llm-phrases-dir {self.llm_phrases_dir!r} is not a directory")
        if self.extra_verbs is not None and not Path(self.extra_verbs).is_file():
            raise FileNotFoundError(f"--extra-verbs {self.extra_verbs!r} is not a file")
        if "{action}" not in self.llm_instruction:
            raise ValueError(f"--llm-instruction must contain {{action}}, got {self.llm_instruction!r}")

    @property
    def has_captions(self) -> bool:
        return self.captioner.lower() != "none"

    @property
    def has_llm(self) -> bool:
        return self.llm_model is not None or self.llm_phrases_dir is not None


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def build_dictionary(dictionary: str, extra_verbs: str | None) -> tuple[list[str], int]:
    """The dictionary's class names followed by the extra verbs that are not already in it."""
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


def _gpu_workers(args: TextBagBuildArguments) -> int | None:
    workers = args.num_gpu_workers if args.num_gpu_workers is not None else torch.cuda.device_count()
    if workers > 1 and torch.cuda.is_available():
        import multiprocess

        # CUDA cannot be re-initialised in forked children.
        multiprocess.set_start_method("spawn", force=True)
    return workers if workers > 1 else None


def _empty_caption_columns(batch: dict[str, list]) -> dict[str, list]:
    size = len(batch["video_id"])
    return {"captions": [[] for _ in range(size)], "caption_verbs": [[] for _ in range(size)]}


def _has_no_decode_error(batch: dict[str, list]) -> list[bool]:
    return [not error for error in batch["decode_error"]]


def run_dictionary_stage(store: StageStore, args, class_names: list[str], templates: list[str]) -> dict[str, Any]:
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
    device = device_for_rank(0)
    model, processor = load_match_model(args.clip_model, str(device), args.dtype)
    start = time.perf_counter()
    embeddings = encode_dictionary(model, processor, class_names, templates)
    seconds = time.perf_counter() - start
    logger.info("Encoded %d classes x %d templates in %.2fs", len(class_names), len(templates), seconds)
    store.stage_dir("dictionary").mkdir(parents=True, exist_ok=True)
    save_class_embeddings(embeddings_path, embeddings)
    payload = {"num_classes": len(class_names), "num_templates": len(templates), "encode_seconds": seconds}
    store.save_json("dictionary", payload, params)
    return {**payload, "embeddings_path": str(embeddings_path)}


def run_refine_stage(
    store: StageStore, args, matched: Dataset, dictionary: dict[str, Any], class_names: list[str]
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


def run_expand_stage(store: StageStore, args, class_names: list[str], matched_ids: list[int]) -> dict[str, Any]:
    """LLM phrases (once per distinct matched class) and their verbs; returns the persisted payload."""
    from modeling_maxi.text_bags.verb_parsing import extract_verbs, load_spacy_pipeline

    actions = [class_names[class_id] for class_id in matched_ids]
    if args.llm_model is not None:
        source = {
            "kind": "llm",
            "model": args.llm_model,
            "base_url": redact_url(args.llm_base_url),
            "instruction": args.llm_instruction,
            "temperature": args.llm_temperature,
        }
    elif args.llm_phrases_dir is not None:
        source = {"kind": "released", "directory": str(Path(args.llm_phrases_dir).resolve())}
    else:
        source = {"kind": "none"}
    params = {"source": source, "actions": actions}
    payload = store.load_json("expand", params)
    if payload is not None and not (args.retry_llm_failures and payload["failures"]):
        return payload

    failures: dict[str, str] = {}
    num_requests = 0
    if source["kind"] == "llm":
        from modeling_maxi.text_bags.llm_expansion import LLMExpansionConfig, expand_actions

        config = LLMExpansionConfig(
            model=args.llm_model,
            base_url=args.llm_base_url,
            instruction=args.llm_instruction,
            temperature=args.llm_temperature,
            max_concurrency=args.llm_max_concurrency,
            max_retries=args.llm_max_retries,
            initial_backoff=args.llm_initial_backoff,
            timeout=args.llm_timeout,
        )
        cache_dir = args.llm_cache_dir or str(Path(args.output_dir) / "stages" / "llm_cache")
        result = expand_actions(actions, config, cache_dir) if actions else None
        phrases = result.phrases if result else {}
        failures = dict(result.failures) if result else {}
        num_requests = result.num_requests if result else 0
        nlp = load_spacy_pipeline()
        verbs = {action: extract_verbs(action_phrases, nlp) for action, action_phrases in phrases.items()}
    elif source["kind"] == "released":
        from modeling_maxi.text_bags.llm_expansion import load_released_phrases

        released = load_released_phrases(args.llm_phrases_dir)
        phrases = {action: released[action] for action in actions if action in released}
        failures = {action: f"no {action}.txt in the released phrases" for action in actions if action not in released}
        # The released files already hold the final verb forms and phrases.
        verbs = dict(phrases)
    else:
        phrases, verbs = {}, {}
    classes = {
        str(class_id): {"class_name": action, "llm_phrases": phrases[action], "llm_verbs": verbs[action]}
        for class_id, action in zip(matched_ids, actions)
        if action in phrases
    }
    payload = {"classes": classes, "failures": failures, "num_requests": num_requests, "source": source}
    store.save_json("expand", payload, params)
    return payload


def build(args: TextBagBuildArguments) -> dict[str, Any]:
    """Run (or resume) every stage of the build and publish; returns the build record."""
    output_dir = Path(args.output_dir)
    store = StageStore(output_dir / "stages", chunk_size=args.chunk_size)
    class_names, num_extra_verbs = build_dictionary(args.dictionary, args.extra_verbs)
    templates = load_prompt_templates(args.prompt_templates)
    gpu_workers = _gpu_workers(args)

    # The collection is listed on every run (cheap) so that added or removed videos invalidate the stages.
    listed = select_shard(build_video_index(args.videos, args.video_root), args.num_shards, args.shard_index)
    index_params = {
        "videos": str(Path(args.videos).resolve()),
        "video_root": str(Path(args.video_root).resolve()) if args.video_root else None,
        "num_shards": args.num_shards,
        "shard_index": args.shard_index,
        "content": params_digest({"paths": list(listed["video_path"]), "labels": list(listed["label"])}),
    }
    index = store.load("index", index_params)
    if index is None:
        index = store.save("index", listed, index_params)
    if len(index) == 0:
        raise ValueError(f"Shard {args.shard_index}/{args.num_shards} of {args.videos!r} holds no video")

    dictionary = run_dictionary_stage(store, args, class_names, templates)
    refine = args.match_refinement_steps > 0
    match_params = {
        "upstream": [store.digest("index"), store.digest("dictionary")],
        "num_frames": args.num_frames,
        "video_backend": args.video_backend,
        **({"video_embeddings": True} if refine else {}),  # unchanged key (and cache) without refinement
    }
    matched = store.run_map(
        "match",
        index,
        match_videos_batch,
        match_params,
        desc="Matching videos to the dictionary",
        batch_size=args.match_batch_size,
        num_proc=gpu_workers,
        with_rank=True,
        fn_kwargs={
            "model_name_or_path": args.clip_model,
            "class_embeddings_path": dictionary["embeddings_path"],
            "class_names": class_names,
            "num_frames": args.num_frames,
            "dtype": args.dtype,
            "video_backend": args.video_backend,
            "decode_workers": args.decode_workers,
            "return_embeddings": refine,
        },
        new_features={
            **({EMBEDDING_COLUMN: List(Value("float32"))} if refine else {}),
            "matched_label": Value("int64"),
            "matched_text": Value("string"),
            "match_score": Value("float64"),
            "top5_labels": List(Value("int64")),
            "top5_scores": List(Value("float64")),
            "decode_error": Value("string"),
        },
    )
    match_stage, refinement = "match", None
    if refine:
        matched, refinement = run_refine_stage(store, args, matched, dictionary, class_names)
        match_stage = "refine"
    readable = matched.filter(_has_no_decode_error, batched=True, keep_in_memory=True, desc="Dropping unreadable")
    unreadable = [
        {"video_path": row["relative_path"], "error": row["decode_error"]}
        for row in matched.select_columns(["relative_path", "decode_error"])
        if row["decode_error"]
    ]
    if len(readable) == 0:
        raise RuntimeError(f"None of the {len(matched)} videos could be decoded; see the warnings above")

    matched_ids = sorted(set(readable["matched_label"]))
    expansion = run_expand_stage(store, args, class_names, matched_ids)

    if args.has_captions:
        captioned = store.run_map(
            "caption",
            readable,
            caption_videos_batch,
            {
                "upstream": store.digest(match_stage),
                "captioner": args.captioner,
                "caption_frames": args.caption_frames,
                "caption_image_size": args.caption_image_size,
                "max_new_tokens": args.caption_max_new_tokens,
                "num_beams": args.caption_num_beams,
                "dtype": args.dtype,
            },
            desc="Captioning frames",
            batch_size=args.caption_batch_size,
            num_proc=gpu_workers,
            with_rank=True,
            fn_kwargs={
                "captioner": args.captioner,
                "num_frames": args.caption_frames,
                "image_size": args.caption_image_size,
                "max_new_tokens": args.caption_max_new_tokens,
                "num_beams": args.caption_num_beams,
                "dtype": args.dtype,
                "video_backend": args.video_backend,
                "decode_workers": args.decode_workers,
            },
            new_features={"captions": STRING_LIST, "caption_error": Value("string")},
        )
        with_verbs = store.run_map(
            "caption_verbs",
            captioned,
            caption_verbs_batch,
            {"upstream": store.digest("caption")},
            desc="Parsing caption verbs",
            batch_size=64,
            num_proc=args.num_cpu_workers,
            new_features={"caption_verbs": STRING_LIST},
        )
        upstream = store.digest("caption_verbs")
    else:
        with_verbs = readable.map(_empty_caption_columns, batched=True, keep_in_memory=True, desc="No captions")
        upstream = store.digest(match_stage)

    bag_params = {"upstream": upstream, "expansion": params_digest(expansion)}
    bags = store.load("bags", bag_params)
    if bags is None:
        class_phrases = {int(class_id): entry for class_id, entry in expansion["classes"].items()}
        bags = with_verbs.map(
            attach_class_phrases,
            batched=True,
            fn_kwargs={"class_phrases": class_phrases},
            keep_in_memory=True,
            desc="Attaching LLM phrases",
        )
        bags = bags.cast(Features({**bags.features, **BAG_COLUMN_FEATURES}))
        bags = store.save("bags", bags, bag_params)

    to_publish = prepare_for_publishing(bags, UNKNOWN_LABEL)

    record = {
        "pretty_name": f"MAXI text bags ({args.dictionary} dictionary)",
        "parameters": {
            "dictionary": args.dictionary,
            "dictionary_size": len(class_names),
            "extra_verbs": num_extra_verbs,
            "clip_model": args.clip_model,
            "num_frames": args.num_frames,
            "prompt_templates": len(templates),
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
            **(
                {
                    "match_refinement_steps": args.match_refinement_steps,
                    "match_refinement_method": args.match_refinement_method,
                }
                if refine
                else {}
            ),
        },
        "stats": {
            "videos_indexed": len(index),
            "videos_unreadable": len(unreadable),
            "videos_matched": len(readable),
            "distinct_matched_classes": len(matched_ids),
            "llm_requests": expansion["num_requests"],
            "llm_failures": len(expansion["failures"]),
            "dictionary_encode_seconds": round(dictionary["encode_seconds"], 3),
            **({"refinement_changed_matches": refinement["changed_matches"]} if refine else {}),
        },
        "unreadable_videos": unreadable,
        "llm_failures": expansion["failures"],
    }
    configs = available_configs(has_llm=args.has_llm, has_captions=args.has_captions)
    publish_key = params_digest(
        {"bags": store.digest("bags"), "record": record, "p": args.filter_ratio, "score": args.filter_score}
    )
    previous = _read_record(output_dir)
    if previous is not None and previous.get("publish_key") == publish_key and (output_dir / CARD_NAME).is_file():
        logger.info("Published dataset in %s is up to date", output_dir)
        record = previous
    else:
        record["publish_key"] = publish_key
        record = publish_text_bags(to_publish, output_dir, record, args.filter_ratio, configs, args.filter_score)
    logger.info("Stages computed in this run: %s; loaded: %s", store.computed or "none", store.loaded or "none")
    if args.push_to_hub:
        push_text_bags_to_hub(output_dir, args.push_to_hub, private=args.hub_private)
    return record


def _read_record(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / BUILD_RECORD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def setup_logging(output_dir: str | Path) -> logging.Handler:
    """Log to stderr and to OUTPUT_DIR/logs/build.log; returns the file handler (to close it)."""
    log_dir = Path(output_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.FileHandler(log_dir / "build.log", encoding="utf-8")
    file_handler.setFormatter(formatter)
    root = logging.getLogger()
    if not any(isinstance(handler, logging.StreamHandler) for handler in root.handlers):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    return file_handler


def parse_args(argv: list[str] | None = None) -> TextBagBuildArguments:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(TextBagBuildArguments, description=__doc__.split("\n\n")[0])
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        loader = parser.parse_json_file if argv[0].endswith(".json") else parser.parse_yaml_file
        (args,) = loader(os.path.abspath(argv[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    handler = setup_logging(args.output_dir)
    try:
        shown = {**asdict(args), "llm_base_url": redact_url(args.llm_base_url)}
        logger.info("Building text bags with %s", json.dumps(shown, default=str))
        return build(args)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def cli() -> None:
    """Console-script entry point: runs `main` on the command line (its return value stays in Python)."""
    main()


if __name__ == "__main__":
    main()
