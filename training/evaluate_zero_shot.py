"""Zero-shot action recognition evaluation of a MAXI (or any CLIP) checkpoint with the protocol of ViFi-CLIP / MAXI:
one view per video (segment-centre frames, centre crop), one prompt per class ("a photo of a {}."), top-1/top-5 accuracy
(mAP on Charades), mean ± std over the official splits.

    python -m training.evaluate_zero_shot --model <dir|hub id> --dataset ucf101 --video-root /data/ucf101/videos \
        [--splits 1 2 3] [--num-frames 16] [--ensemble-base openai/clip-vit-base-patch16 --ensemble-ratio 0.2]

A dataset that is not built in: `--labels classes.csv --split-file test.txt [--multi-label]`. Arguments may also come
from one JSON or YAML file (`python -m training.evaluate_zero_shot eval.yaml`). Writes `<output_dir>/zero_shot_<dataset>
.json` (per-split metrics, video counts, the missing/unreadable videos) and `.md` (a table for the model card).
"""

import logging
import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
import transformers
from transformers import set_seed

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor, weight_space_ensemble
from modeling_maxi.cli import parse_script_arguments
from modeling_maxi.evaluation import (
    DEFAULT_TEMPLATE,
    evaluate_splits,
    format_markdown_table,
    get_dataset_spec,
    load_custom_split,
    load_split,
    save_results,
)

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ModelArguments:
    model: str = field(metadata={"help": "Folder or Hub id of a MaxiVideoCLIPModel (or any CLIP checkpoint)."})
    ensemble_base: str | None = field(
        default=None,
        metadata={
            "help": "Folder or Hub id of the original CLIP to ensemble with in weight space (paper sec. 4.2), e.g. "
            "openai/clip-vit-base-patch16. Off by default."
        },
    )
    ensemble_ratio: float = field(
        default=0.2, metadata={"help": "Weight of --ensemble-base: ratio * base + (1 - ratio) * model."}
    )
    device: str | None = field(default=None, metadata={"help": "Torch device; cuda when available by default."})
    dtype: Literal["float32", "float16", "bfloat16"] = field(
        default="float32", metadata={"help": "Model weights' dtype for inference."}
    )


@dataclass
class DataArguments:
    video_root: str = field(metadata={"help": "Folder the split file's video paths are relative to."})
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Built-in dataset: ucf101, hmdb51, k600, minissv2, ssv2, charades, uav_human, moments_in_time. "
            "Leave out and give --labels and --split-file for another dataset."
        },
    )
    splits: list[str] | None = field(
        default=None, metadata={"help": "Splits to evaluate (e.g. 1 2 3); all splits of the dataset by default."}
    )
    labels: str | None = field(default=None, metadata={"help": "Custom dataset: class list (id,name CSV or txt)."})
    split_file: str | None = field(default=None, metadata={"help": "Custom dataset: split file (path label...)."})
    multi_label: bool = field(default=False, metadata={"help": "Custom dataset: multi-label split file (mAP)."})
    dataset_name: str = field(default="custom", metadata={"help": "Custom dataset: name used in the results."})
    split_camel_case: bool = field(
        default=False,
        metadata={"help": "Split CamelCase class names into words (UCF101: ApplyEyeMakeup -> Apply Eye Makeup)."},
    )
    keep_protocol_label_errors: bool = field(
        default=False,
        metadata={
            "help": "Use the protocol's label lists exactly as shipped, including HMDB51's swapped names of ids "
            "20/21 (kick ball/kick) and 44/45 (sword exercise/sword), as the published numbers were computed."
        },
    )


@dataclass
class EvaluationArguments:
    output_dir: str = field(default="eval_results", metadata={"help": "Where the JSON and Markdown results go."})
    num_frames: int = field(default=16, metadata={"help": "Frames per video (one view, segment centres)."})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "The single prompt template."})
    batch_size: int = field(default=8, metadata={"help": "Videos per forward pass."})
    num_workers: int = field(default=4, metadata={"help": "DataLoader workers decoding videos."})
    missing_videos: Literal["skip", "error"] = field(
        default="skip",
        metadata={"help": "skip: leave missing/unreadable videos out and report them; error: stop at the first."},
    )
    metrics_dir: str | None = field(
        default=None, metadata={"help": "Folder of the metric modules (default: the ones shipped in the package)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed (evaluation itself is deterministic)."})


def load_model_and_processor(args: ModelArguments) -> tuple[MaxiVideoCLIPModel, MaxiVideoProcessor]:
    """Loads the model (weight-space ensembled with `ensemble_base` when given) and its processor."""
    if not 0.0 <= args.ensemble_ratio <= 1.0:
        raise ValueError(f"--ensemble-ratio must be in [0, 1], got {args.ensemble_ratio}.")
    model = MaxiVideoCLIPModel.from_pretrained(args.model)
    processor = MaxiVideoProcessor.from_pretrained(args.model)
    if args.ensemble_base is not None:
        base = MaxiVideoCLIPModel.from_pretrained(args.ensemble_base)
        model = weight_space_ensemble(base, model, ratio=args.ensemble_ratio)
        del base
        logger.info("Ensembled %s with %s (base ratio %.2f).", args.model, args.ensemble_base, args.ensemble_ratio)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(device=device, dtype=DTYPES[args.dtype]).eval(), processor


def load_eval_splits(args: DataArguments) -> list:
    """The splits to evaluate: a built-in dataset's (all, or `--splits`) or one custom split."""
    if args.dataset is not None and (args.labels or args.split_file):
        raise ValueError("Give either --dataset or --labels with --split-file, not both.")
    if args.dataset is None:
        if not (args.labels and args.split_file):
            raise ValueError("Give --dataset (a built-in dataset) or both --labels and --split-file.")
        if args.splits:
            raise ValueError(f"--splits {args.splits} only applies to built-in datasets; a custom dataset has one.")
        split = load_custom_split(
            args.labels, args.split_file, args.multi_label, args.dataset_name, args.split_camel_case
        )
        return [split]
    spec = get_dataset_spec(args.dataset)
    names = args.splits or list(spec.splits)
    unknown = [name for name in names if name not in spec.splits]
    if unknown:
        raise ValueError(f"{spec.name} has splits {sorted(spec.splits)}; unknown --splits {unknown}.")
    return [
        load_split(spec.name, name, args.split_camel_case, fix_label_errors=not args.keep_protocol_label_errors)
        for name in names
    ]


def run_evaluation(argv: list[str] | None = None) -> dict:
    """Parses `argv` (the command line by default), runs, and returns the results dict that is also written."""
    arguments = (ModelArguments, DataArguments, EvaluationArguments)
    model_args, data_args, eval_args = parse_script_arguments(arguments, argv)

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=logging.INFO,
    )
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    set_seed(eval_args.seed)

    splits = load_eval_splits(data_args)
    logger.info(
        "Evaluating %s on %s splits %s (%s videos).",
        model_args.model,
        splits[0].display_name,
        [s.split for s in splits],
        [len(s.samples) for s in splits],
    )
    model, processor = load_model_and_processor(model_args)
    results = evaluate_splits(
        model,
        processor,
        splits,
        data_args.video_root,
        num_frames=eval_args.num_frames,
        template=eval_args.template,
        metrics_dir=eval_args.metrics_dir,
        batch_size=eval_args.batch_size,
        num_workers=eval_args.num_workers,
        missing_videos=eval_args.missing_videos,
    )
    results["model"] = model_args.model
    results["ensemble"] = (
        {"base": model_args.ensemble_base, "ratio": model_args.ensemble_ratio} if model_args.ensemble_base else None
    )
    results["protocol_label_errors_kept"] = data_args.keep_protocol_label_errors
    results["split_camel_case"] = data_args.split_camel_case
    json_path, markdown_path = save_results(results, eval_args.output_dir)
    logger.info("Results written to %s and %s\n%s", json_path, markdown_path, format_markdown_table(results))
    return results


def main() -> None:
    """Console entry point."""
    run_evaluation()


if __name__ == "__main__":
    main()
