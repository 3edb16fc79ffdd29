#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Build MAXI text bags for a collection of unlabeled videos (paper sec. 3.2).

    python dataset_scripts/build_text_bags.py --videos DIR_OR_LIST --dictionary k400 --output-dir OUT \\
        [--llm-model gpt-3.5-turbo --llm-base-url URL] [--captioner Salesforce/blip-image-captioning-large]
    python dataset_scripts/build_text_bags.py build.yaml          # or --config build.yaml plus overriding flags
    accelerate launch --num_processes 8 dataset_scripts/build_text_bags.py ...   # N processes, one dataset

Stages (each persisted under OUT/stages/<stage> and skipped when already complete with the same parameters):
index -> dictionary (prompt-ensembled text embeddings) -> match (CLIP, and BLIP captions of frames from the same
decode of each video) -> caption_verbs (spaCy) -> expand (LLM, once per matched class, each reply cached before the
next request) -> bags; then publish (parquet configurations + dataset card in OUT, loadable with
`datasets.load_dataset(OUT)`). Every readable video is published with its `match_score`, `top5_scores` and
`match_margin` (`--filter-ratio` defaults to 1); the paper's p = 0.9 by similarity is applied once, at training
(`training/train.py --filter_ratio 0.9 --filter_score similarity`).

Under `accelerate launch --num_processes N` the chunks of the match and caption-verb stages are split round-robin over
the N processes (each resumes its own after an interruption, logging to OUT/logs/build.rank<i>.log) and the main
process runs the other stages and publishes one dataset. `--num-shards/--shard-index` and
`dataset_scripts/merge_shards.py` split a build over machines (job arrays). The LLM key is read from
`OPENAI_API_KEY` and never written anywhere. The same build from Python:
`modeling_maxi.text_bags.build_text_bags(TextBagBuildArguments(...))`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_maxi.cli import parse_script_arguments, run_script  # noqa: E402
from modeling_maxi.text_bags import TextBagBuildArguments, build_log, build_text_bags  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    (args,) = parse_script_arguments(TextBagBuildArguments, argv, description=__doc__.split("\n\n")[0])
    with build_log(args.output_dir):
        return build_text_bags(args)


if __name__ == "__main__":
    run_script(main)
