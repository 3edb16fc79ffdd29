#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Import the text bags released by the MAXI authors into the dataset format of `build_text_bags.py`.

    python dataset_scripts/import_released_bags.py --gpt3-verbs DIR --caption-verbs DIR \\
        [--match-list FILE] --dictionary k400 --output-dir OUT

Released layout: `gpt3_verbs/<class name>.txt` and `caption_verbs_bag/<class id>/<video stem>.txt`, imported
verbatim; see `modeling_maxi.text_bags.released_bags` for the format and what a release does not hold.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging  # noqa: E402
from modeling_maxi.text_bags import import_released_bags  # noqa: E402


@dataclass
class ImportArguments:
    """Arguments of the importer."""

    output_dir: str = field(metadata={"help": "Folder of the published dataset."})
    gpt3_verbs: str | None = field(default=None, metadata={"help": "Released `gpt3_verbs` directory."})
    caption_verbs: str | None = field(default=None, metadata={"help": "Released `caption_verbs_bag` directory."})
    match_list: str | None = field(default=None, metadata={"help": "`relative/path label` list of matched videos."})
    dictionary: str = field(default="k400", metadata={"help": "Dictionary the class ids and names refer to."})
    video_prefix: str = field(
        default="", metadata={"help": "Prefix of `video_path` without a match list (e.g. `train/`)."}
    )
    video_extension: str = field(default=".mp4", metadata={"help": "Extension of `video_path` without a match list."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the dataset to this Hub repo."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    (args,) = parse_script_arguments(ImportArguments, argv, description=__doc__.split("\n\n")[0])
    setup_script_logging()
    return import_released_bags(
        args.output_dir,
        gpt3_verbs=args.gpt3_verbs,
        caption_verbs=args.caption_verbs,
        match_list=args.match_list,
        dictionary=args.dictionary,
        video_prefix=args.video_prefix,
        video_extension=args.video_extension,
        push_to_hub=args.push_to_hub,
        hub_private=args.hub_private,
    )


if __name__ == "__main__":
    run_script(main)
