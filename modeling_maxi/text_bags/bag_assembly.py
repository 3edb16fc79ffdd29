# SPDX-License-Identifier: Apache-2.0
"""Assemble text bags from the per-class LLM verbs and the per-video caption verbs (paper sec. 3.2, Table 6).

A text bag is the de-duplicated union of its sources, in a deterministic order: the sources in the order given
(LLM verbs, then caption verbs), each in its own order, first occurrence wins. Two entries are duplicates when they
are equal after lower-casing and collapsing whitespace. The matched dictionary text itself is left out: the
training prompt already holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

# Published configurations, one per row of the paper's Table 6 (BLIP object nouns are not built). Each maps to the
# columns whose entries make up the bag; the dictionary text is always the first element of a training bag.
BAG_CONFIGS: dict[str, tuple[str, ...]] = {
    "dictionary": (),
    "dictionary_captions": ("caption_verbs",),
    "dictionary_llm": ("llm_verbs",),
    "dictionary_llm_captions": ("llm_verbs", "caption_verbs"),
}
DEFAULT_BAG_CONFIG = "dictionary_llm_captions"


def normalize_phrase(text: str) -> str:
    """The comparison key of a bag entry: lower case, single spaces, no surrounding whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"bag entries must be strings, got {text!r}")
    return " ".join(text.split()).lower()


def assemble_text_bag(matched_text: str, sources: Sequence[Iterable[str]]) -> list[str]:
    """The de-duplicated union of `sources` (in order), without `matched_text` and without empty entries.

    Entries keep their original spelling with whitespace collapsed; see the module docstring for the order.
    """
    if not isinstance(matched_text, str):
        raise TypeError(f"matched_text must be a string, got {matched_text!r}")
    seen = {normalize_phrase(matched_text)}
    bag = []
    for source in sources:
        if isinstance(source, str):
            raise TypeError(f"each source must be a list of strings, not the string {source!r}")
        for entry in source:
            key = normalize_phrase(entry)
            if key and key not in seen:
                seen.add(key)
                bag.append(" ".join(entry.split()))
    return bag


def sources_for_config(config_name: str) -> tuple[str, ...]:
    """The columns that make up the bags of a published configuration."""
    if config_name not in BAG_CONFIGS:
        raise ValueError(f"Unknown text-bag configuration {config_name!r}; expected one of {sorted(BAG_CONFIGS)}")
    return BAG_CONFIGS[config_name]


def attach_class_phrases(batch: dict[str, list], class_phrases: Mapping[int, Mapping[str, list[str]]]) -> dict:
    """`Dataset.map` function: copy each row's per-class `llm_phrases` / `llm_verbs` from `class_phrases`.

    `class_phrases[matched_label]` holds `{"llm_phrases": [...], "llm_verbs": [...]}`; classes missing from it
    (expansion failed or no LLM source) get empty lists, so their bags fall back to the other sources.
    """
    llm_phrases, llm_verbs = [], []
    for label in batch["matched_label"]:
        entry = class_phrases.get(int(label), {})
        llm_phrases.append(list(entry.get("llm_phrases", [])))
        llm_verbs.append(list(entry.get("llm_verbs", [])))
    return {"llm_phrases": llm_phrases, "llm_verbs": llm_verbs}


def text_bag_batch(batch: dict[str, list], sources: Sequence[str]) -> dict[str, list]:
    """`Dataset.map` function: the `text_bag` column built from the given source columns of each row."""
    missing = [column for column in sources if column not in batch]
    if missing:
        raise ValueError(f"text-bag source columns {missing} are missing from the batch ({sorted(batch)})")
    bags = []
    for row, matched_text in enumerate(batch["matched_text"]):
        bags.append(assemble_text_bag(matched_text, [batch[column][row] or [] for column in sources]))
    return {"text_bag": bags}
