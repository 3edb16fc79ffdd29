# SPDX-License-Identifier: Apache-2.0
"""The offline MAXI demo: the whole pipeline, end to end, on a generated toy world, on CPU, in minutes.

Steps (each reuses its output when rerun with the same settings):

1. generate the toy action-video world (`toy_world.world`: real H.264 mp4 files, labels for evaluation only): by
   default the compound world, 24 actions "<direction> while <manner>" of which the dictionary names 18, the other 6
   shown by a tenth of the training clips (`--novel_pair_weight`; `--compound_actions false`: the world of ten single
   actions);
2. pretrain or load the object-biased base model (`toy_world.base_pretraining`, cached by settings hash): the
   world's "CLIP", one for every world seed (`--base_seed`, as the paper fine-tunes one CLIP whatever the videos);
3. train or load the toy frame captioner (`toy_world.captioner`: a small BLIP trained on captioned stills, cached,
   one for every world seed like the base);
4. build the text bags with the real pipeline (`modeling_maxi.text_bags.build_text_bags`: CLIP matching with prompt
   ensembling -> transductive refinement of the classes over the unlabeled clips (one Gaussian per action with a
   shared covariance, fitted by EM from the matches; not in the paper, see `modeling_maxi.text_bags.refinement`) ->
   expansion through the OpenAI client, answered by a loopback server that serves a static, clearly
   labelled phrase table (`toy_world.phrase_table`, an honest stand-in for the LLM) -> BLIP captions of the frames
   -> verb parsing with spaCy -> filtering by match score);
5. fine-tune with MIL-NCE through `accelerate launch training/train.py` (weight-space ensembling and a Hub-ready
   export included); with `--compare_paper_matching` (the default) steps 4-5 run a second time with the paper's
   matching (`match_refinement_steps` 0), reusing the world, the base, the captioner and the matching stage;
6. evaluate base and MAXI zero-shot on held-out videos: the dictionary actions (by their names and by held-out
   phrasings) and the actions no dictionary entry, match or label names (`toy_world.world`): in the compound world
   its 6 novel pairs and the 3 secondary elements (orbit, wave, leak), in the single world its 3 novel actions;
7. print the comparison table (also written to `<output_dir>/demo_results.{json,md}`); `--launch_space` then serves the
   Gradio demo on the fine-tuned model.

Usage::

    python -m toy_world.demo                       # or: maxi-demo
    python -m toy_world.demo --output_dir my_run --seed 1 --launch_space
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from transformers.hf_argparser import string_to_bool

from modeling_maxi.cli import parse_script_arguments
from modeling_maxi.text_bags.filtering import filter_score_field, validate_filter_score
from modeling_maxi.text_bags.refinement import (
    refinement_method_field,
    validate_refinement_method,
    validate_refinement_steps,
)
from modeling_maxi.training.data import TEXT_SOURCE_COLUMNS, unknown_text_sources

logger = logging.getLogger(__name__)

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train.py"
PHRASE_TABLE_MODEL = "toy-phrase-table"
TOY_CAPTIONER = "toy"  # `--captioner toy`: train (or load from cache) the toy world's own BLIP captioner
FINE_TUNE_RECORD = "demo_fine_tune_arguments.json"


def default_cache_dir(kind: str = "toy_base") -> str:
    """Where the pretrained toy base models (or captioners, `kind` "toy_captioner") are cached across runs
    (`$MAXI_CACHE`, else `~/.cache/maxi`)."""
    root = os.environ.get("MAXI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "maxi")
    return os.path.join(root, kind)


PER_WORLD_BASE_SEED = -1  # `--base_seed -1`: the base and the captioner take the world's seed

# The world of ten single actions with the recipe the main job ran on it until 2026-12-07: the benchmarks that study
# that world (its novel elements, forgetting, label noise) pin it, so their commands in benchmarks/RESULTS.md reproduce.
SINGLE_ACTION_WORLD = {
    "compound_actions": False,
    "base_steps": 1000,
    "captioner_steps": 1000,
    "train_steps": 200,
    "base_seed": PER_WORLD_BASE_SEED,
}


@dataclass
class DemoArguments:
    """Settings of the offline demo. The defaults are the documented main job (README command 1)."""

    output_dir: str = field(default="maxi_demo_output", metadata={"help": "Where every artefact of the run goes."})
    base_cache_dir: str | None = field(
        default=None, metadata={"help": "Cache of pretrained toy base models (default: $MAXI_CACHE or ~/.cache/maxi)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the world and of the fine-tuning."})
    base_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the base model and the toy captioner, the world's 'CLIP' and 'BLIP': pretrained once and "
            "shared by every world seed, as the paper fine-tunes one CLIP. -1: each world seed pretrains its own (the "
            "recipe until 2026-12-07, pinned by the benchmarks of the world of single actions)."
        },
    )
    num_train_videos: int = field(default=1500, metadata={"help": "Unlabeled training clips."})
    num_test_videos: int = field(default=300, metadata={"help": "Held-out evaluation clips of dictionary actions."})
    num_test_novel_videos: int = field(default=150, metadata={"help": "Held-out clips of the novel actions."})
    novel_action_prob: float = field(
        default=0.4,
        metadata={
            "help": "Probability that a training clip also shows a novel action, unlabelled (toy_world/world.py)."
        },
    )
    compound_actions: bool = field(
        default=True,
        metadata={
            "help": "The compound world: clips move one way while doing one thing more ('moving left while spinning'); "
            "the dictionary names 18 of the 24 pairs, the other 6 are evaluated as novel actions (toy_world/world.py). "
            "false: the world of ten single actions."
        },
    )
    novel_pair_weight: float = field(
        default=0.333,
        metadata={
            "help": "Compound world: training clips of each novel pair per clip of a dictionary pair. 0.333: a tenth "
            "of the clips show a novel pair, as K400's clips mostly show actions its dictionary names; 1: a quarter "
            "(toy_world/world.py). Not used in the world of single actions."
        },
    )
    base_steps: int = field(default=1000, metadata={"help": "Pretraining steps of the object-biased base model."})
    base_images: int = field(default=8000, metadata={"help": "Captioned still frames for base pretraining."})
    action_caption_prob: float = field(
        default=0.3, metadata={"help": "How often a pretraining caption names the action (the object-bias knob)."}
    )
    mark_caption_prob: float = field(
        default=0.9, metadata={"help": "How often a pretraining caption describes the motion marks it shows."}
    )
    context_bias: float = field(
        default=0.0,
        metadata={
            "help": "Probability that a clip (and a pretraining still) shows its action's typical scene: background "
            "and object colour (see toy_world/world.py)."
        },
    )
    min_action_visibility: float = field(
        default=1.0,
        metadata={
            "help": "Each clip (and pretraining still) shows its motion marks and trail at an opacity drawn from "
            "[min_action_visibility, 1] (see toy_world/world.py); 1 = every action fully visible."
        },
    )
    clear_pretraining_stills: bool = field(
        default=False,
        metadata={"help": "Pretrain the base on stills whose action is fully visible, whatever min_action_visibility."},
    )
    captioner: str = field(
        default=TOY_CAPTIONER,
        metadata={
            "help": "Frame captioner of the text-bag build: 'toy' (the toy world's BLIP, trained on stills and "
            "cached), a BLIP checkpoint folder, or 'none' (no captions)."
        },
    )
    captioner_steps: int = field(default=600, metadata={"help": "Training steps of the toy captioner."})
    compare_paper_matching: bool = field(
        default=True,
        metadata={"help": "Also build and fine-tune with the paper's matching (match_refinement_steps 0)."},
    )
    num_frames: int = field(default=8, metadata={"help": "Frames per video for matching, training and evaluation."})
    filter_ratio: float = field(default=0.9, metadata={"help": "Fraction p of videos kept by CLIP match score."})
    filter_score: str = filter_score_field("margin")
    match_refinement_steps: int = field(
        default=10,
        metadata={
            "help": "Refine the classes over the unlabeled clips in this many steps of match_refinement_method before "
            "filtering (0 = the paper's matching; see modeling_maxi/text_bags/refinement.py)."
        },
    )
    match_refinement_method: str = refinement_method_field()
    loss_variant: str = field(default="mil_nce", metadata={"help": "Training objective (see modeling_maxi.loss)."})
    bag_size: int = field(default=8, metadata={"help": "Texts per video bag in a training step."})
    train_steps: int = field(default=140, metadata={"help": "MIL-NCE fine-tuning steps."})
    train_batch_size: int = field(default=32, metadata={"help": "Videos per step (global batch)."})
    learning_rate: float = field(default=3e-4, metadata={"help": "Peak AdamW learning rate of the fine-tuning."})
    augmentations: list[str] = field(
        default_factory=lambda: ["multiscale_crop"],
        metadata={
            "help": "Fine-tuning augmentations (see training/train.py). The toy actions are defined by direction and "
            "by the ink of their motion marks, so flips and colour changes would corrupt the pseudo-labels."
        },
    )
    text_sources: list[str] | None = field(
        default=None,
        metadata={
            "help": "Bag sources to fine-tune on ('dictionary' plus any of 'llm', 'captions'; see training/train.py); "
            "default: the whole bag the pipeline built. 'dictionary' alone trains on the bare class prompt."
        },
    )
    freeze_vision_encoder: bool = field(
        default=False, metadata={"help": "Fine-tune the text tower only (the vision tower stays the base model's)."}
    )
    freeze_text_encoder: bool = field(
        default=False, metadata={"help": "Fine-tune the vision tower only (the text tower stays the base model's)."}
    )
    ensemble_ratio: float = field(
        default=0.2, metadata={"help": "Weight-space ensembling with the base model (paper: 0.2; 0 = off)."}
    )
    num_processes: int = field(default=1, metadata={"help": "accelerate processes for fine-tuning (CPU: 1 or 2)."})
    dataloader_num_workers: int = field(default=1, metadata={"help": "Video-decoding workers per process."})
    launch_space: bool = field(default=False, metadata={"help": "Serve the Gradio demo on the result at the end."})

    def __post_init__(self):
        for name in (
            "num_train_videos",
            "num_test_videos",
            "base_steps",
            "base_images",
            "captioner_steps",
            "num_frames",
            "bag_size",
            "train_steps",
            "train_batch_size",
            "num_processes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name in ("seed", "num_test_novel_videos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        if isinstance(self.base_seed, bool) or not isinstance(self.base_seed, int) or self.base_seed < -1:
            raise ValueError(
                f"`base_seed` must be a non-negative integer or {PER_WORLD_BASE_SEED} (the world's seed), got "
                f"{self.base_seed!r}."
            )
        if not 0.0 < self.filter_ratio <= 1.0:
            raise ValueError(f"`filter_ratio` must be in (0, 1], got {self.filter_ratio!r}.")
        validate_filter_score(self.filter_score)
        validate_refinement_steps(self.match_refinement_steps)
        validate_refinement_method(self.match_refinement_method)
        if not 0.0 <= self.context_bias <= 1.0:
            raise ValueError(f"`context_bias` must be in [0, 1], got {self.context_bias!r}.")
        if not 0.0 <= self.min_action_visibility <= 1.0:
            raise ValueError(f"`min_action_visibility` must be in [0, 1], got {self.min_action_visibility!r}.")
        if not 0.0 <= self.novel_action_prob <= 1.0:
            raise ValueError(f"`novel_action_prob` must be in [0, 1], got {self.novel_action_prob!r}.")
        if not 0.0 <= self.novel_pair_weight <= 1.0:
            raise ValueError(f"`novel_pair_weight` must be in [0, 1], got {self.novel_pair_weight!r}.")
        if self.text_sources is not None:
            if unknown_text_sources(self.text_sources) or "dictionary" not in self.text_sources:
                raise ValueError(
                    f"`text_sources` must list 'dictionary' and any of {sorted(TEXT_SOURCE_COLUMNS)}, got "
                    f"{self.text_sources!r}."
                )
        if not 0.0 <= self.ensemble_ratio <= 1.0:
            raise ValueError(f"`ensemble_ratio` must be in [0, 1], got {self.ensemble_ratio!r}.")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        if self.freeze_vision_encoder and self.freeze_text_encoder:
            raise ValueError("`freeze_vision_encoder` and `freeze_text_encoder` are both set: nothing would train.")
        if self.train_batch_size % self.num_processes:
            raise ValueError(
                f"`train_batch_size` ({self.train_batch_size}) must be divisible by `num_processes` "
                f"({self.num_processes})."
            )


def pretraining_seed(args: DemoArguments) -> int:
    """The seed of the base model and the toy captioner: `base_seed`, or the world's seed where it is -1."""
    return args.seed if args.base_seed == PER_WORLD_BASE_SEED else args.base_seed


def generate_world(args: DemoArguments) -> Path:
    from toy_world.world import ToyWorldConfig, generate_toy_world

    world_dir = Path(args.output_dir) / "world"
    config = ToyWorldConfig(
        seed=args.seed,
        num_train=args.num_train_videos,
        num_test=args.num_test_videos,
        context_bias=args.context_bias,
        min_action_visibility=args.min_action_visibility,
        novel_action_prob=args.novel_action_prob,
        num_test_novel=args.num_test_novel_videos,
        compound_actions=args.compound_actions,
        novel_pair_weight=args.novel_pair_weight if args.compound_actions else 1.0,
    )
    generate_toy_world(world_dir, config)
    return world_dir


def pretrain_base(args: DemoArguments, world_dir: Path) -> Path:
    from toy_world.base_pretraining import ToyBaseArguments, load_world_config, pretrain_toy_base

    base_args = ToyBaseArguments(
        cache_dir=args.base_cache_dir or default_cache_dir(),
        seed=pretraining_seed(args),
        num_images=args.base_images,
        num_steps=args.base_steps,
        action_caption_prob=args.action_caption_prob,
        mark_caption_prob=args.mark_caption_prob,
        num_frames=args.num_frames,
        clear_stills=args.clear_pretraining_stills,
    )
    return Path(pretrain_toy_base(base_args, load_world_config(world_dir)))


def prepare_captioner(args: DemoArguments, world_dir: Path) -> str:
    """The captioner the build uses: the toy BLIP (trained here or loaded from its cache), a given one, or 'none'."""
    if args.captioner != TOY_CAPTIONER:
        return args.captioner
    from toy_world.base_pretraining import load_world_config
    from toy_world.captioner import ToyCaptionerArguments, train_toy_captioner

    cache_dir = os.path.join(os.path.dirname(args.base_cache_dir or default_cache_dir()), "toy_captioner")
    captioner_args = ToyCaptionerArguments(
        cache_dir=cache_dir, seed=pretraining_seed(args), num_steps=args.captioner_steps
    )
    return train_toy_captioner(captioner_args, load_world_config(world_dir))


def build_text_bags(
    args: DemoArguments, world_dir: Path, base_dir: Path, captioner: str = "none", name: str = "text_bags"
) -> tuple[Path, dict]:
    """Runs the real text-bag build into `<output_dir>/<name>`; the LLM is the loopback phrase-table server (see the
    module docstring). A folder `text_bags` already built beside it lends its resumable stages (the matching stage
    is shared by every build of the same world, base and frames)."""
    from modeling_maxi import text_bags
    from toy_world.llm_server import OpenAICompatibleServer
    from toy_world.phrase_table import TOY_COMPOUND_PHRASE_TABLE, TOY_PHRASE_TABLE
    from toy_world.world import TOY_CAPTION_TEMPLATES

    bags_dir = Path(args.output_dir) / name
    shared_stages = Path(args.output_dir) / "text_bags" / "stages"
    if name != "text_bags" and shared_stages.is_dir() and not (bags_dir / "stages").exists():
        shutil.copytree(shared_stages, bags_dir / "stages")
    # Matching ensembles over the sentence frames of the base model's caption corpus, as real CLIP's 28 Kinetics
    # templates are sentence frames of its web data.
    templates_path = Path(args.output_dir) / "prompt_templates.txt"
    templates_path.parent.mkdir(parents=True, exist_ok=True)
    templates_path.write_text("\n".join(TOY_CAPTION_TEMPLATES) + "\n", encoding="utf-8")
    with OpenAICompatibleServer(phrase_table={**TOY_PHRASE_TABLE, **TOY_COMPOUND_PHRASE_TABLE}) as server:
        build_args = text_bags.TextBagBuildArguments(
            videos=str(world_dir / "splits" / "train.txt"),
            video_root=str(world_dir),
            dictionary=str(world_dir / "labels" / "actions.csv"),
            prompt_templates=str(templates_path),
            clip_model=str(base_dir),
            num_frames=args.num_frames,
            llm_model=PHRASE_TABLE_MODEL,
            llm_base_url=server.base_url,
            llm_cache_dir=str(Path(args.output_dir) / "llm_cache"),
            captioner=captioner,  # every video is published; p is applied once, at training
            caption_image_size=64,  # the toy captioner's input size
            caption_frames=4,
            caption_max_new_tokens=20,
            match_refinement_steps=args.match_refinement_steps,
            match_refinement_method=args.match_refinement_method,
            output_dir=str(bags_dir),
        )
        with text_bags.build_log(bags_dir):
            record = text_bags.build_text_bags(build_args)
    return bags_dir, record


def fine_tune(
    args: DemoArguments,
    world_dir: Path,
    base_dir: Path,
    bags_dir: Path,
    loss_variant: str | None = None,
    run_name: str = "maxi_model",
    keep_checkpoints_every: int | None = None,
) -> Path:
    """`accelerate launch training/train.py ...` in a subprocess, exactly as a user would run it.

    By default one checkpoint at half-way is kept until the end, so that an interrupted run resumes. With
    `keep_checkpoints_every` a checkpoint is saved every that many steps and all are kept, to follow how the model
    changes during fine-tuning (`toy_world/benchmarks/toy_fine_tune_trajectory.py`).
    """
    if keep_checkpoints_every is not None and (
        isinstance(keep_checkpoints_every, bool)
        or not isinstance(keep_checkpoints_every, int)
        or keep_checkpoints_every < 1
    ):
        raise ValueError(f"`keep_checkpoints_every` must be a positive integer, got {keep_checkpoints_every!r}.")
    loss_variant = loss_variant or args.loss_variant
    if keep_checkpoints_every is None:
        save_steps, save_total_limit = max(args.train_steps // 2, 1), 1
    else:
        save_steps = keep_checkpoints_every
        save_total_limit = -(-args.train_steps // keep_checkpoints_every)  # every checkpoint of the run
    run_dir = Path(args.output_dir) / run_name
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_processes",
        str(args.num_processes),
    ]
    launcher += ["--multi_gpu"] if args.num_processes > 1 else ["--cpu"]
    command = launcher + [
        str(TRAIN_SCRIPT),
        "--model_name_or_path",
        str(base_dir),
        "--dataset_name",
        str(bags_dir),
        "--video_root",
        str(world_dir),
        "--num_frames",
        str(args.num_frames),
        "--bag_size",
        str(args.bag_size),
        "--loss_variant",
        loss_variant,
        "--class_names",
        str(world_dir / "labels" / "actions.csv"),  # used by the cross_entropy objective
        "--filter_ratio",
        str(args.filter_ratio),  # p, applied once, here: the build published every video
        "--filter_score",
        args.filter_score,
        "--augmentations",
        *(args.augmentations or ["none"]),
        *(["--text_sources", *args.text_sources] if args.text_sources else []),
        "--ensemble_ratio",
        str(args.ensemble_ratio),
        "--freeze_vision_encoder",
        str(args.freeze_vision_encoder).lower(),
        # Only when set, so that the runs recorded before the option existed keep their recorded arguments.
        *(["--freeze_text_encoder", "true"] if args.freeze_text_encoder else []),
        "--output_dir",
        str(run_dir),
        "--max_steps",
        str(args.train_steps),
        "--per_device_train_batch_size",
        str(args.train_batch_size // args.num_processes),
        "--learning_rate",
        str(args.learning_rate),
        "--lr_scheduler_type",
        "cosine",
        "--warmup_steps",
        "0.1",
        "--weight_decay",
        "0.0",
        "--logging_steps",
        "10",
        "--save_strategy",
        "steps",
        "--save_steps",
        str(save_steps),
        "--save_total_limit",
        str(save_total_limit),
        "--dataloader_num_workers",
        str(args.dataloader_num_workers),
        "--seed",
        str(args.seed),
        "--report_to",
        "none",
        "--use_cpu",
        str(not torch.cuda.is_available()).lower(),
        "--disable_tqdm",
        "true",
    ]
    # The arguments and the text bags' publish key are recorded before launching: a finished run is reused and an
    # interrupted one resumes from its last checkpoint (train.py does that) only under exactly these arguments (the
    # interpreter aside) and bags (the same folder may hold bags filtered otherwise); a run made with other settings
    # is removed first, so that it can neither be reused nor resumed by mistake.
    record_path = run_dir / FINE_TUNE_RECORD
    arguments = {"arguments": command[1:], "text_bags": _publish_key(bags_dir)}
    recorded = json.loads(record_path.read_text()) if record_path.is_file() else None
    finished = (run_dir / "model.safetensors").is_file() and (run_dir / "train_results.json").is_file()
    if recorded == arguments and finished:
        logger.info("Reusing the fine-tuned model in %s", run_dir)
        return run_dir
    if run_dir.exists() and recorded != arguments:
        logger.info("Removing %s: it was fine-tuned with other settings", run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(arguments, indent=1))
    logger.info("Fine-tuning: %s", " ".join(command))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_repo_root()), os.environ.get("PYTHONPATH")]))}
    subprocess.run(command, check=True, env=env)
    return run_dir


def _publish_key(bags_dir: Path) -> str | None:
    """The publish key of the text bags in `bags_dir` (it changes whenever their content or filtering does)."""
    from modeling_maxi.text_bags.publishing import BUILD_RECORD_NAME

    record_path = Path(bags_dir) / BUILD_RECORD_NAME
    return json.loads(record_path.read_text()).get("publish_key") if record_path.is_file() else None


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


NOVEL_PAIRS_SET = "novel compound actions"  # the compound world's 6 novel pairs, its novel actions of the claim


def label_set_titles(label_sets: Sequence[str]) -> dict[str, str]:
    """Column titles of the evaluation sets: in the compound world its novel pairs are the novel actions of the claim
    ("novel pairs") and the secondary elements stay beside them ("novel elements"); elsewhere the names themselves."""
    compound = {"novel actions": "novel elements", NOVEL_PAIRS_SET: "novel pairs"}
    return {name: compound.get(name, name) if NOVEL_PAIRS_SET in label_sets else name for name in label_sets}


EVALUATION_SETS = (  # (label set, class file, split file) of the held-out evaluation
    ("dictionary names", "actions.csv", "test.txt"),
    ("held-out phrasings", "actions_heldout.csv", "test.txt"),
    ("novel actions", "novel_actions.csv", "test_novel.txt"),
    (NOVEL_PAIRS_SET, "novel_compound_actions.csv", "test_novel_compound.txt"),  # compound world only
)


def evaluate(
    model_dir: Path, world_dir: Path, num_frames: int, evaluation_sets: Sequence[tuple[str, str, str]] = EVALUATION_SETS
) -> dict[str, dict]:
    """Zero-shot top-1/top-5 on the held-out clips of `evaluation_sets` ((name, class file in ``labels/``, split file
    in ``splits/``); by default the dictionary actions with their names and with held-out phrasings, and the novel
    actions' clips over the novel actions' names). A set whose split file is missing or empty is skipped."""
    from transformers import AutoModel, AutoProcessor

    from modeling_maxi.evaluation import evaluate_splits, load_custom_split

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    results = {}
    for name, labels, split_file in evaluation_sets:
        if not (world_dir / "splits" / split_file).is_file() or not (world_dir / "splits" / split_file).stat().st_size:
            continue
        split = load_custom_split(world_dir / "labels" / labels, world_dir / "splits" / split_file, name="toy_world")
        summary = evaluate_splits(model, processor, [split], world_dir, num_frames=num_frames, num_workers=0)
        results[name] = {
            metric: value["mean"] for metric, value in summary["summary"].items() if isinstance(value, dict)
        }
    return results


def kept_bags(bags_dir: Path, args: DemoArguments):
    """The published bags the fine-tuning keeps: the top `args.filter_ratio` by `args.filter_score` (the build
    publishes every clip; the filter is applied once, at training)."""
    from modeling_maxi.text_bags.filtering import filter_by_confidence
    from modeling_maxi.text_bags.publishing import load_text_bags

    bags = load_text_bags(bags_dir, "dictionary")
    return filter_by_confidence(bags, args.filter_ratio, args.filter_score).dataset


def matching_accuracy(bags_dir: Path, args: DemoArguments) -> dict:
    """Accuracy of the CLIP matches kept by the filter, against the world's ground truth (for reporting only)."""
    bags = kept_bags(bags_dir, args)
    correct = sum(int(m == g) for m, g in zip(bags["matched_label"], bags["label"]))
    return {"kept_videos": len(bags), "matching_accuracy": correct / len(bags)}


def caption_verb_counts(bags_dir: Path, args: DemoArguments, top: int = 12) -> dict:
    """How many kept videos' bags hold each caption verb (the most frequent `top`), and how many hold any."""
    from collections import Counter

    bags = kept_bags(bags_dir, args)
    if "caption_verbs" not in bags.column_names:
        return {"videos_with_caption_verbs": 0, "kept_videos": len(bags), "verbs": {}}
    verbs = [set(row or []) for row in bags["caption_verbs"]]
    counts = Counter(verb for row in verbs for verb in row)
    return {
        "videos_with_caption_verbs": sum(bool(row) for row in verbs),
        "kept_videos": len(bags),
        "verbs": dict(counts.most_common(top)),
    }


MAXI_ROWS = (("maxi", "MAXI, refined matching"), ("maxi_paper_matching", "MAXI, paper's matching"))


def _cell(metrics: dict) -> str:
    """Top-1, with top-5 in parentheses where the label set has more than 5 classes."""
    return f"{metrics['top1']:.1f}" + (f" ({metrics['top5']:.1f})" if "top5" in metrics else "")


def format_table(results: dict, args: DemoArguments) -> str:
    """Markdown table of top-1 (top-5) per model and evaluation set, and the matching accuracy of each build."""
    label_sets = [name for name, _, _ in EVALUATION_SETS if name in results["base"]]
    titles = label_set_titles(label_sets)
    rows = ["| model | " + " | ".join(titles.values()) + " |", "|---" * (len(label_sets) + 1) + "|"]
    models = [("base", "base (object-biased CLIP)")] + [row for row in MAXI_ROWS if row[0] in results]
    for key, title in models:
        cells = [_cell(results[key][s]) for s in label_sets]
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    rows.append("")
    if NOVEL_PAIRS_SET in label_sets:
        note = (
            "Top-1 (top-5) zero-shot accuracy in %; novel pairs: the 6 actions the dictionary lacks, pairs of parts it "
            "names, over their names; novel elements: top-1 over the 3 secondary elements' names (orbit, wave, leak)"
        )
    else:
        note = "Top-1 (top-5) zero-shot accuracy in %; novel actions: top-1 over the 3 novel actions' names"
    rows.append(note + ".")
    for key, title in MAXI_ROWS:
        if key not in results:
            continue
        matching = results["matching"][key]
        steps = args.match_refinement_steps if key == "maxi" else 0
        refined = f"after {steps} {args.match_refinement_method} refinement steps and " if steps else "after "
        verbs = results["caption_verbs"][key]
        rows.append(
            f"{title}: CLIP matching accuracy {refined}filtering (p = {args.filter_ratio:g} by {args.filter_score}): "
            f"{100 * matching['matching_accuracy']:.1f}% of {matching['kept_videos']} kept videos (ground truth used "
            f"for this report only); {verbs['videos_with_caption_verbs']} bags hold caption verbs."
        )
    return "\n".join(rows)


def build_and_fine_tune(
    args: DemoArguments, world_dir: Path, base_dir: Path, captioner: str, timed, paper_matching: bool = False
) -> tuple[Path, Path, dict]:
    """One text-bag build and the fine-tuning on it: the default refined matching, or the paper's (no refinement)."""
    suffix = "_paper_matching" if paper_matching else ""
    build_args = replace(args, match_refinement_steps=0) if paper_matching else args
    bags_dir, record = timed(
        f"text bags{suffix}", build_text_bags, build_args, world_dir, base_dir, captioner, f"text_bags{suffix}"
    )
    run_dir = timed(
        f"fine-tuning{suffix}", fine_tune, build_args, world_dir, base_dir, bags_dir, None, f"maxi_model{suffix}"
    )
    return bags_dir, run_dir, record


def run_demo(args: DemoArguments) -> dict:
    """Runs every step; returns the results that are also written to `<output_dir>/demo_results.json`."""
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    timings = {}

    def timed(name, function, *function_args):
        step_start = time.perf_counter()
        result = function(*function_args)
        timings[name] = round(time.perf_counter() - step_start, 1)
        logger.info("Step '%s' done in %.1fs", name, timings[name])
        return result

    world_dir = timed("world", generate_world, args)
    base_dir = timed("base model", pretrain_base, args, world_dir)
    captioner = timed("captioner", prepare_captioner, args, world_dir)
    builds = {"maxi": build_and_fine_tune(args, world_dir, base_dir, captioner, timed)}
    if args.compare_paper_matching:
        builds["maxi_paper_matching"] = build_and_fine_tune(args, world_dir, base_dir, captioner, timed, True)
    results = {
        "arguments": asdict(args),
        "base_model": str(base_dir),
        "captioner": captioner,
        "maxi_model": str(builds["maxi"][1]),
        "text_bags": str(builds["maxi"][0]),
        "base": timed("evaluate base", evaluate, base_dir, world_dir, args.num_frames),
        "matching": {},
        "caption_verbs": {},
        "text_bag_stats": builds["maxi"][2].get("stats", {}),
    }
    for key, (bags_dir, run_dir, _) in builds.items():
        results[key] = timed(f"evaluate {key}", evaluate, run_dir, world_dir, args.num_frames)
        results["matching"][key] = matching_accuracy(bags_dir, args)
        results["caption_verbs"][key] = caption_verb_counts(bags_dir, args)
    if "maxi_paper_matching" in builds:
        results["maxi_paper_matching_model"] = str(builds["maxi_paper_matching"][1])
        results["text_bag_stats_paper_matching"] = builds["maxi_paper_matching"][2].get("stats", {})
    results["timings_seconds"] = {**timings, "total": round(time.perf_counter() - started, 1)}
    table = format_table(results, args)
    (output_dir / "demo_results.json").write_text(json.dumps(results, indent=1))
    (output_dir / "demo_results.md").write_text(table + "\n")
    novel = "novel pairs and as many of the novel elements" if args.compound_actions else "novel actions"
    sys.stdout.write(
        f"\nMAXI offline demo: zero-shot action recognition on {args.num_test_videos} held-out clips of the "
        f"dictionary actions and {args.num_test_novel_videos} of the {novel}\n\n"
    )
    sys.stdout.write(table + "\n\n")
    sys.stdout.write(
        f"Hub-ready MAXI checkpoint: {results['maxi_model']}  (total {results['timings_seconds']['total']:.0f}s)\n"
    )
    return results


_SETTING_TYPES = {int: int, float: float, str: str, bool: string_to_bool}  # how argparse reads each type


def add_demo_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add the `DemoArguments` settings `names` (numbers, strings or booleans, the latter given as ``--name true``)
    to a benchmark's `argparse` parser, with the demo's defaults, help and choices, so that the benchmarks that vary
    the demo's world or recipe stay in step with it."""
    settings = {setting.name: setting for setting in fields(DemoArguments)}
    types = typing.get_type_hints(DemoArguments)  # resolved: `field.type` may still be a string annotation
    for name in names:
        setting = settings.get(name)
        if setting is None or types[name] not in _SETTING_TYPES:
            raise ValueError(f"{name!r} is not a number, string or boolean setting of DemoArguments")
        parser.add_argument(
            f"--{name}",
            type=_SETTING_TYPES[types[name]],
            default=setting.default,
            choices=setting.metadata.get("choices"),
            help=setting.metadata.get("help"),
        )


def parse_args(argv: list[str] | None = None) -> DemoArguments:
    (args,) = parse_script_arguments(DemoArguments, argv)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    results = run_demo(args)
    if args.launch_space:
        from space_app.app import main as launch_space

        os.environ["MAXI_MODEL_ID"] = results["maxi_model"]
        os.environ["MAXI_BASE_MODEL_ID"] = results["base_model"]
        launch_space()
    return results


def cli() -> None:
    """Console entry point (`maxi-demo`)."""
    main()


if __name__ == "__main__":
    cli()
