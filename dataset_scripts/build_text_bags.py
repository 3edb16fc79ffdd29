#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Build MAXI text bags for a collection of unlabeled videos (paper sec. 3.2).

    python dataset_scripts/build_text_bags.py --videos DIR_OR_LIST --dictionary k400 --output-dir OUT \\
        [--llm-model gpt-3.5-turbo --llm-base-url URL] [--captioner Salesforce/blip-image-captioning-large]
    python dataset_scripts/build_text_bags.py build.yaml          # or --config build.yaml plus overriding flags

Stages (each persisted under OUT/stages/<stage> and skipped when already complete with the same parameters):
index -> dictionary (prompt-ensembled text embeddings) -> match (CLIP) -> expand (LLM, once per matched class)
-> caption (BLIP) -> caption_verbs (spaCy) -> bags; then filter (top p by match score) and publish (parquet
configurations + dataset card in OUT). The LLM key is read from `OPENAI_API_KEY` and never written anywhere. The
same build from Python: `modeling_maxi.text_bags.build_text_bags(TextBagBuildArguments(...))`.
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
