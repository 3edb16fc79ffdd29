# SPDX-License-Identifier: Apache-2.0
"""Zero-shot action recognition evaluation of a MAXI (or any CLIP) checkpoint with the protocol of ViFi-CLIP / MAXI:
one view per video (segment-centre frames, centre crop), one prompt per class ("a photo of a {}."), top-1/top-5 accuracy
(mAP on Charades), mean ± std over the official splits.

    python -m training.evaluate_zero_shot --model <dir|hub id> --dataset ucf101 --video-root /data/ucf101/videos \
        [--splits 1 2 3] [--num-frames 16] [--ensemble-base openai/clip-vit-base-patch16 --ensemble-ratio 0.2]

A dataset that is not built in: `--labels classes.csv --split-file test.txt [--multi-label]`. Arguments may also come
from one JSON or YAML file (`python -m training.evaluate_zero_shot eval.yaml`). Writes `<output_dir>/zero_shot_<dataset>
.json` (per-split metrics, video counts, the missing/unreadable videos) and `.md` (a table for the model card).
With `--update_model_card`, the results also go into the model card (README.md) of `--model`, a local checkpoint
folder: its `model-index` metadata (huggingface_hub `EvalResult` entries) and its Evaluation table. Every step is a
call into `modeling_maxi.evaluation` and `modeling_maxi.model_card`.
"""

import logging
from dataclasses import dataclass, field
from typing import Literal

from transformers import set_seed

from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging
from modeling_maxi.evaluation import (
    DEFAULT_TEMPLATE,
    load_evaluation_model,
    load_evaluation_splits,
    run_zero_shot_evaluation,
)
from modeling_maxi.model_card import add_evaluation_to_model_card, model_card_path

logger = logging.getLogger(__name__)


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

    def __post_init__(self):
        if not 0.0 <= self.ensemble_ratio <= 1.0:
            raise ValueError(f"--ensemble-ratio must be in [0, 1], got {self.ensemble_ratio}.")


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
    update_model_card: bool = field(
        default=False,
        metadata={
            "help": "Write the results into the model card (README.md) of --model, a local checkpoint folder: "
            "model-index metadata and the Evaluation table (results of other datasets stay)."
        },
    )


def main(argv: list[str] | None = None) -> dict:
    """Parses `argv` (the command line by default), evaluates, and returns the results dict that is also written."""
    arguments = (ModelArguments, DataArguments, EvaluationArguments)
    model_args, data_args, eval_args = parse_script_arguments(arguments, argv)

    setup_script_logging()
    set_seed(eval_args.seed)
    card_path = model_card_path(model_args.model) if eval_args.update_model_card else None  # checked before evaluating

    splits = load_evaluation_splits(
        data_args.dataset,
        data_args.splits,
        data_args.labels,
        data_args.split_file,
        data_args.multi_label,
        data_args.dataset_name,
        data_args.split_camel_case,
        fix_label_errors=not data_args.keep_protocol_label_errors,
    )
    model, processor = load_evaluation_model(
        model_args.model, model_args.ensemble_base, model_args.ensemble_ratio, model_args.device, model_args.dtype
    )
    ensemble = {"base": model_args.ensemble_base, "ratio": model_args.ensemble_ratio}
    run_info = {
        "model": model_args.model,
        "ensemble": ensemble if model_args.ensemble_base else None,
        "protocol_label_errors_kept": data_args.keep_protocol_label_errors,
        "split_camel_case": data_args.split_camel_case,
    }
    results = run_zero_shot_evaluation(
        model,
        processor,
        splits,
        data_args.video_root,
        eval_args.output_dir,
        run_info,
        num_frames=eval_args.num_frames,
        template=eval_args.template,
        metrics_dir=eval_args.metrics_dir,
        batch_size=eval_args.batch_size,
        num_workers=eval_args.num_workers,
        missing_videos=eval_args.missing_videos,
    )
    if card_path is not None:
        add_evaluation_to_model_card(card_path, results)
        logger.info("Added the results to the model card %s.", card_path)
    return results


if __name__ == "__main__":
    run_script(main)
