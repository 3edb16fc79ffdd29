# SPDX-License-Identifier: Apache-2.0
"""The arguments of a text-bag build (paper sec. 3.2), validated on construction.

Like transformers' `TrainingArguments`, the dataclass lives in the library: `build_text_bags(args)` takes it from
Python, and `dataset_scripts/build_text_bags.py` parses it from flags or from one JSON/YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .captioning import DEFAULT_CAPTIONER
from .filtering import filter_score_field, validate_filter_ratio, validate_filter_score
from .frame_pass import validate_decode_workers
from .matching import DTYPES
from .refinement import refinement_method_field, validate_refinement_method, validate_refinement_steps
from .sharding import validate_shard_arguments

__all__ = ["TextBagBuildArguments"]


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
    llm_max_concurrency: int = field(
        default=1,
        metadata={"help": "Concurrent LLM requests (each reply is cached on disk as it comes; 1: a kill loses one)."},
    )
    llm_max_retries: int = field(
        default=5, metadata={"help": "Retries by the openai client on 408/409/429/5xx, timeouts, connection errors."}
    )
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
    filter_ratio: float = field(
        default=1.0,
        metadata={
            "help": "Fraction p of videos published, by match confidence, in (0, 1]. Default 1: every readable video, "
            "with its scores; the paper's p = 0.9 is applied once, at training (training/train.py --filter_ratio)."
        },
    )
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
    rank_wait_timeout: float = field(
        default=3600.0,
        metadata={
            "help": "With N processes (accelerate launch): seconds a process waits for another's stage or chunks "
            "before it stops with an error."
        },
    )
    decode_workers: int = field(
        default=4,
        metadata={
            "help": "Threads per GPU process decoding and preparing the next batches of videos while the models run "
            "on the current one (0 = decode inline)."
        },
    )
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
        for name in ("caption_max_new_tokens", "caption_num_beams", "chunk_size"):
            _check_positive(name, getattr(self, name))
        validate_decode_workers(self.decode_workers)
        for name in ("num_gpu_workers", "num_cpu_workers"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        if isinstance(self.rank_wait_timeout, bool) or not self.rank_wait_timeout > 0:
            raise ValueError(
                f"--rank-wait-timeout must be a positive number of seconds, got {self.rank_wait_timeout!r}"
            )
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
