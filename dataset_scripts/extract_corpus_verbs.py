"""Extract the most frequent verbs of a caption corpus with spaCy, as an `--extra-verbs` file for `build_text_bags`.

    python -m dataset_scripts.extract_corpus_verbs --captions captions.txt --output extra_verbs.txt --top-k 400

This is how an over-specified dictionary is made (paper Table 5, "K400 + WebVid2.5M"): the verb lemmas of a large
caption corpus, most frequent first, without those already in the dictionary. Each caption counts a verb once.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger("dataset_scripts.extract_corpus_verbs")


@dataclass
class CorpusVerbsArguments:
    """Arguments of the corpus verb extraction."""

    captions: str = field(metadata={"help": "Text file, one caption per line."})
    output: str = field(metadata={"help": "Output text file, one verb per line (most frequent first)."})
    top_k: int = field(default=400, metadata={"help": "Number of verbs written."})
    min_count: int = field(default=2, metadata={"help": "Minimum number of captions a verb must appear in."})
    exclude_dictionary: str | None = field(
        default="k400", metadata={"help": "Leave out the classes of this dictionary (`none` keeps everything)."}
    )
    chunk_size: int = field(default=10_000, metadata={"help": "Captions parsed per spaCy pass."})


def count_corpus_verbs(captions: Iterable[str], nlp, chunk_size: int = 10_000) -> Counter:
    """In how many captions each verb lemma appears (auxiliaries excluded)."""
    from modeling_maxi.text_bags.verb_parsing import extract_verbs_batch

    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    counts: Counter = Counter()
    iterator = iter(captions)
    with tqdm(desc="Parsing captions", unit="caption") as progress:
        while chunk := [text for text in itertools.islice(iterator, chunk_size) if text.strip()]:
            per_caption = extract_verbs_batch([[text] for text in chunk], nlp, forms=("lemma",), include_phrases=False)
            for verbs in per_caption:
                counts.update(set(verbs))
            progress.update(len(chunk))
    return counts


def select_verbs(counts: Counter, top_k: int, min_count: int = 1, exclude: Iterable[str] = ()) -> list[str]:
    """The `top_k` most frequent verbs with at least `min_count` captions (ties alphabetical), minus `exclude`."""
    for name, value in (("top_k", top_k), ("min_count", min_count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    excluded = {item.lower() for item in exclude}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [verb for verb, count in ranked if count >= min_count and verb.lower() not in excluded][:top_k]


def main(argv: list[str] | None = None) -> list[str]:
    from transformers import HfArgumentParser

    from modeling_maxi.dictionaries import load_class_names
    from modeling_maxi.text_bags.verb_parsing import load_spacy_pipeline

    parser = HfArgumentParser(CorpusVerbsArguments, description=__doc__.split("\n\n")[0])
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    captions_path = Path(args.captions)
    if not captions_path.is_file():
        raise FileNotFoundError(f"--captions {args.captions!r} is not a file")
    exclude = []
    if args.exclude_dictionary and args.exclude_dictionary.lower() != "none":
        exclude = load_class_names(args.exclude_dictionary)
    with captions_path.open(encoding="utf-8") as handle:
        counts = count_corpus_verbs((line.rstrip("\n") for line in handle), load_spacy_pipeline(), args.chunk_size)
    verbs = select_verbs(counts, args.top_k, args.min_count, exclude)
    Path(args.output).write_text("".join(f"{verb}\n" for verb in verbs), encoding="utf-8")
    logger.info("Wrote %d verbs (of %d distinct) to %s", len(verbs), len(counts), args.output)
    return verbs


if __name__ == "__main__":
    main()
