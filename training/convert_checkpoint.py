#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Convert the authors' MAXI checkpoint (or any OpenAI-format CLIP checkpoint) into a Hub-ready MaxiVideoCLIPModel.

    python training/convert_checkpoint.py --checkpoint maxi_vitb16.pth --base openai/clip-vit-base-patch16 \\
        --output_dir maxi-vitb16 [--ensemble_ratio 0.2] [--num_frames 16] [--cross_frame_layers 0] \\
        [--push_to_hub user/maxi-vitb16]

`python -m training.convert_checkpoint` works the same. Arguments can also come from one JSON or YAML file
(`python training/convert_checkpoint.py args.yaml`), or `--config args.yaml` plus flags that override it. A user error
ends in one line on stderr; `--debug` (or `MAXI_DEBUG=1`) shows the traceback.

The checkpoint is read without executing code from it (see `modeling_maxi.conversion.load_checkpoint_file`); the
output folder holds safetensors weights, the config with `auto_map`, the processor of the base (which samples
`--num_frames` frames per video), a model card and `conversion_report.json` listing where every tensor came from.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging  # noqa: E402
from modeling_maxi.configuration_maxi_video_clip import FRAME_POOLING_MODES  # noqa: E402
from modeling_maxi.conversion import (  # noqa: E402
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
    num_frames: int = field(default=16, metadata={"help": "Frames per video the saved processor samples."})
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
        if self.frame_pooling not in FRAME_POOLING_MODES:
            raise ValueError(f"--frame_pooling must be one of {FRAME_POOLING_MODES}, got {self.frame_pooling!r}.")


def main(argv: list[str] | None = None) -> Path:
    # 1. Arguments and logging.
    (args,) = parse_script_arguments(ConversionArguments, argv, description=__doc__.split("\n\n")[0])
    setup_script_logging()

    # 2. Checkpoint + base -> model; the processor alone holds the number of frames.
    model, report = convert_checkpoint(
        args.checkpoint,
        base=args.base,
        ensemble_ratio=args.ensemble_ratio,
        ignore_patterns=args.ignore_keys,
        cross_frame_layers=args.cross_frame_layers,
        frame_pooling=args.frame_pooling,
    )
    processor = build_processor_from_base(args.base, num_frames=args.num_frames)

    # 3. Hub-ready folder, then the optional upload.
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


if __name__ == "__main__":
    run_script(main)
