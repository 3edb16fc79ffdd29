"""Convert the authors' MAXI checkpoint (or any OpenAI-format CLIP checkpoint) into a Hub-ready MaxiVideoCLIPModel.

    python -m training.convert_checkpoint --checkpoint maxi_vitb16.pth --base openai/clip-vit-base-patch16 \
        --output-dir maxi-vitb16 [--ensemble-ratio 0.2] [--num-frames 16] [--cross-frame-layers 0] \
        [--push-to-hub user/maxi-vitb16]

Arguments can also come from one JSON or YAML file: `python -m training.convert_checkpoint args.yaml`.
The checkpoint is read without executing code from it (see `modeling_maxi.conversion.load_checkpoint_file`); the
output folder holds safetensors weights, the config with `auto_map`, the processor of the base, a model card and
`conversion_report.json` listing where every tensor came from.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import HfArgumentParser

from modeling_maxi.conversion import (
    REPORT_FILE_NAME,
    build_processor_from_base,
    convert_checkpoint,
    push_converted_to_hub,
    save_converted_model,
)

logger = logging.getLogger(__name__)


@dataclass
class ConversionArguments:
    """Arguments of the checkpoint conversion."""

    checkpoint: str = field(
        metadata={
            "help": "Checkpoint to convert: the authors' MAXI/ViFi-CLIP .pth, an OpenAI CLIP state dict or TorchScript "
            "archive, an open_clip 'OpenAI' state dict, or a safetensors file in one of these layouts."
        }
    )
    output_dir: str = field(metadata={"help": "Folder to write the converted model, processor and model card to."})
    base: str = field(
        default="openai/clip-vit-base-patch16",
        metadata={
            "help": "Hub id or folder of the CLIP model with the checkpoint's architecture. It gives the config, the "
            "processor and every tensor the checkpoint lacks (e.g. the token embedding)."
        },
    )
    ensemble_ratio: float | None = field(
        default=None,
        metadata={
            "help": "If set, every parameter becomes ratio * base + (1 - ratio) * checkpoint (the paper evaluates "
            "with 0.2). Leave unset to keep the checkpoint's weights."
        },
    )
    num_frames: int = field(default=16, metadata={"help": "Frames per video in the converted config and processor."})
    cross_frame_layers: int = field(
        default=0, metadata={"help": "Last vision layers using parameter-free cross-frame attention (0 = plain CLIP)."}
    )
    frame_pooling: str = field(default="mean", metadata={"help": "Frame pooling: 'mean', 'max' or 'none'."})
    ignore_keys: list[str] = field(
        default_factory=list,
        metadata={"help": "Regular expressions of checkpoint keys to skip (extra modules of CLIP forks)."},
    )
    license: str = field(
        default="other",
        metadata={"help": "Hub license id for the model card ('other': the authors' checkpoint has its own terms)."},
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Hub repository id ('namespace/name') to upload the converted folder to."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})
    hub_token: str | None = field(
        default=None, metadata={"help": "Hub token; defaults to the one saved by `hf auth login`."}
    )

    def __post_init__(self):
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"--checkpoint {self.checkpoint!r} is not a file.")
        if self.ensemble_ratio is not None and not 0.0 <= self.ensemble_ratio <= 1.0:
            raise ValueError(f"--ensemble_ratio must be in [0, 1], got {self.ensemble_ratio}.")
        if self.num_frames < 1:
            raise ValueError(f"--num_frames must be >= 1, got {self.num_frames}.")
        if self.cross_frame_layers < 0:
            raise ValueError(f"--cross_frame_layers must be >= 0, got {self.cross_frame_layers}.")
        if self.frame_pooling not in ("mean", "max", "none"):
            raise ValueError(f"--frame_pooling must be 'mean', 'max' or 'none', got {self.frame_pooling!r}.")


def parse_args(argv: list[str] | None = None) -> ConversionArguments:
    parser = HfArgumentParser(ConversionArguments)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(json_file=argv[0])
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        (args,) = parser.parse_yaml_file(yaml_file=argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()

    model, report = convert_checkpoint(
        args.checkpoint,
        base=args.base,
        ensemble_ratio=args.ensemble_ratio,
        ignore_patterns=args.ignore_keys,
        num_frames=args.num_frames,
        cross_frame_layers=args.cross_frame_layers,
        frame_pooling=args.frame_pooling,
    )
    processor = build_processor_from_base(args.base, num_frames=args.num_frames)
    output_dir = save_converted_model(
        model, report, args.output_dir, processor=processor, model_id=args.push_to_hub, license=args.license
    )
    logger.info(
        "%d tensors from the checkpoint, %d from the base, %d initialised; details in %s",
        len(report.from_checkpoint),
        len(report.from_base),
        len(report.initialised),
        output_dir / REPORT_FILE_NAME,
    )
    if args.push_to_hub:
        url = push_converted_to_hub(output_dir, args.push_to_hub, private=args.hub_private, token=args.hub_token)
        logger.info("Uploaded to %s", url)
    return output_dir


def cli() -> None:
    """Console-script entry point: runs `main` on the command line (its return value stays in Python)."""
    main()


if __name__ == "__main__":
    main()
