# SPDX-License-Identifier: Apache-2.0
"""Verbs and verb phrases of a caption corpus, as the extra entries of an over-specified dictionary.

MAXI's robustness study (paper sec. 4.5.2, Tables 5 and 9) parses verbs from the captions of a text corpus
(WebVid2.5M validation captions), samples 400 / 800 / 1200 of them at random and adds them to the K400 action
dictionary as noise. Here any caption corpus is parsed with spaCy (`Dataset.map`, one pipeline per process), each
entry counted once per caption it occurs in, and the entries are selected either at random with a seed, as the
paper does (`"random"`), or by frequency (`"most_frequent"`). The written file (one entry per line) is what
`TextBagBuildArguments.extra_verbs` takes.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from datasets import Dataset

from .verb_parsing import VERB_FORMS, extract_verbs_batch, load_spacy_pipeline

logger = logging.getLogger(__name__)

CORPUS_BUILDERS = {
    ".txt": "text",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
VERB_SELECTIONS = ("random", "most_frequent")

__all__ = [
    "CORPUS_BUILDERS",
    "VERB_SELECTIONS",
    "caption_corpus_builder",
    "count_corpus_verbs",
    "load_caption_corpus",
    "parse_verb_forms",
    "select_corpus_verbs",
    "verbs_of_batch",
    "write_lines_atomic",
]


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def caption_corpus_builder(files: Sequence[str | os.PathLike]) -> str:
    """The `datasets` builder that reads `files` (all of one format, all existing), e.g. `"csv"`."""
    if isinstance(files, (str, os.PathLike)) or not files:
        raise ValueError(f"captions must be a non-empty list of files, got {files!r}")
    suffixes = {Path(path).suffix.lower() for path in files}
    unknown = sorted(suffixes - set(CORPUS_BUILDERS))
    if unknown:
        raise ValueError(f"captions has unsupported file types {unknown}; use one of {sorted(CORPUS_BUILDERS)}")
    if len({CORPUS_BUILDERS[suffix] for suffix in suffixes}) > 1:
        raise ValueError(f"captions files must all have one format, got {sorted(suffixes)}")
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"captions file not found: {str(path)!r}")
    return CORPUS_BUILDERS[suffixes.pop()]


def load_caption_corpus(
    files: Sequence[str | os.PathLike], text_column: str = "caption", cache_dir: str | None = None
) -> tuple[Dataset, str]:
    """The captions of `files` as a `Dataset`, and the column holding them.

    `.txt` files hold one caption per line (column `text`); `.csv`/`.tsv`, `.json`/`.jsonl` and `.parquet` files
    hold them in `text_column`.
    """
    from datasets import load_dataset

    builder = caption_corpus_builder(files)
    builder_kwargs = {"delimiter": "\t"} if Path(files[0]).suffix.lower() == ".tsv" else {}
    dataset = load_dataset(
        builder, data_files=[str(path) for path in files], split="train", cache_dir=cache_dir, **builder_kwargs
    )
    column = "text" if builder == "text" else text_column
    if column not in dataset.column_names:
        raise ValueError(f"text_column {column!r} is not a column of the captions; columns: {dataset.column_names}")
    return dataset, column


def parse_verb_forms(forms: str) -> tuple[str, ...]:
    """`"lemma,gerund"` -> `("lemma", "gerund")`, each one of `VERB_FORMS`."""
    parsed = tuple(form.strip() for form in forms.split(",") if form.strip())
    if not parsed or any(form not in VERB_FORMS for form in parsed):
        raise ValueError(f"forms must be a comma-separated list of {VERB_FORMS}, got {forms!r}")
    return parsed


def verbs_of_batch(
    batch: dict[str, list], text_column: str, pipeline: str | None, forms: tuple[str, ...], include_phrases: bool
) -> dict[str, list]:
    """`Dataset.map` function: the verbs of each caption (the spaCy pipeline is loaded once per process)."""
    nlp = load_spacy_pipeline(pipeline)
    texts = [[text] if isinstance(text, str) and text.strip() else [] for text in batch[text_column]]
    return {"verbs": extract_verbs_batch(texts, nlp, forms=forms, include_phrases=include_phrases)}


def count_corpus_verbs(
    corpus: Dataset,
    text_column: str,
    spacy_pipeline: str | None = None,
    forms: Sequence[str] = ("gerund",),
    include_phrases: bool = True,
    batch_size: int = 1000,
    num_proc: int | None = None,
) -> Counter:
    """In how many captions of `corpus[text_column]` each verb (in `forms`) or verb phrase occurs."""
    forms = tuple(forms)
    if not forms or any(form not in VERB_FORMS for form in forms):
        raise ValueError(f"forms must be a non-empty subset of {VERB_FORMS}, got {forms!r}")
    _check_positive("batch_size", batch_size)
    if num_proc is not None:
        _check_positive("num_proc", num_proc)
    if text_column not in corpus.column_names:
        raise ValueError(f"text_column {text_column!r} is not a column of the corpus; columns: {corpus.column_names}")
    logger.info("Parsing %d captions.", len(corpus))
    verbs = corpus.map(
        verbs_of_batch,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=corpus.column_names,
        fn_kwargs={
            "text_column": text_column,
            "pipeline": spacy_pipeline,
            "forms": forms,
            "include_phrases": include_phrases,
        },
        desc="Extracting verbs",
    )
    counts: Counter = Counter()
    for rows in verbs.iter(batch_size=10_000):
        for caption_verbs in rows["verbs"]:
            counts.update(caption_verbs)  # each caption's entries are distinct: a caption counts an entry once
    return counts


def select_corpus_verbs(
    counts: Counter,
    num_verbs: int | None = None,
    selection: str = "random",
    min_count: int = 1,
    exclude: Iterable[str] = (),
    seed: int = 0,
) -> list[str]:
    """The entries found in at least `min_count` captions and not in `exclude` (case-insensitive), most frequent
    first (ties alphabetically); of those, `num_verbs` (default: all) sampled at random with `seed` (`"random"`, the
    paper's; kept in frequency order) or the `num_verbs` most frequent (`"most_frequent"`)."""
    if selection not in VERB_SELECTIONS:
        raise ValueError(f"selection must be one of {VERB_SELECTIONS}, got {selection!r}")
    _check_positive("min_count", min_count)
    if num_verbs is not None:
        _check_positive("num_verbs", num_verbs)
    excluded = {name.casefold() for name in exclude}
    candidates = [
        verb
        for verb, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= min_count and verb.casefold() not in excluded
    ]
    if num_verbs is None:
        return candidates
    if selection == "most_frequent":
        return candidates[:num_verbs]
    if num_verbs > len(candidates):
        raise ValueError(
            f"num_verbs {num_verbs} exceeds the {len(candidates)} distinct entries found (after min_count {min_count} "
            f"and the {len(excluded)} excluded names)"
        )
    sampled = set(random.Random(seed).sample(candidates, num_verbs))
    return [verb for verb in candidates if verb in sampled]


def write_lines_atomic(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write `lines` to `path`, one per line, through a temporary file (no half-written file on failure)."""
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
