#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Merge the shards of a multi-machine text-bag build into one published dataset.

    python dataset_scripts/merge_shards.py --shard-dirs OUT_0 OUT_1 ... --output-dir MERGED [--filter-ratio 0.9]

Every shard directory is the `--output-dir` of one `build_text_bags.py --num-shards N --shard-index i` run. The
unfiltered `bags` stages of the N shards are concatenated (ordered by video path), then the filter is applied to the
whole collection (the top fraction p is a property of all videos, not of a shard) and the result is published as
by `build_text_bags.py` (see `modeling_maxi.text_bags.merge_shards`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging  # noqa: E402
from modeling_maxi.text_bags import merge_shards  # noqa: E402


@dataclass
class MergeArguments:
    """Arguments of the shard merge."""

    output_dir: str = field(metadata={"help": "Folder of the merged, published dataset."})
    shard_dirs: list[str] = field(default_factory=list, metadata={"help": "Output folders of the shard builds."})
    filter_ratio: float | None = field(
        default=None, metadata={"help": "Fraction p kept over all shards (default: the shards' own p)."}
    )
    filter_score: str | None = field(
        default=None,
        metadata={"help": "Confidence the filter ranks by, 'similarity' or 'margin' (default: the shards' own)."},
    )
    push_to_hub: str | None = field(default=None, metadata={"help": "Push the merged dataset to this Hub repo."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    (args,) = parse_script_arguments(MergeArguments, argv, description=__doc__.split("\n\n")[0])
    setup_script_logging()
    return merge_shards(
        args.shard_dirs,
        args.output_dir,
        filter_ratio=args.filter_ratio,
        filter_score=args.filter_score,
        push_to_hub=args.push_to_hub,
        hub_private=args.hub_private,
    )


if __name__ == "__main__":
    run_script(main)
