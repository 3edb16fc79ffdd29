# SPDX-License-Identifier: Apache-2.0
"""MAXI text bags (paper sec. 3.2): the build as one call, `build_text_bags(TextBagBuildArguments(...))`, and its
building blocks (index, match, refine, expand, caption, parse, filter, publish, stages), shard merging, the import
of the authors' released bags, and the corpus verbs of an over-specified dictionary."""

from .build import build_dictionary, build_log, build_text_bags
from .build_arguments import TextBagBuildArguments
from .corpus_verbs import count_corpus_verbs, load_caption_corpus, select_corpus_verbs
from .llm_expansion import (
    DEFAULT_INSTRUCTION,
    ExpansionResult,
    LLMExpansionConfig,
    cache_key,
    expand_actions,
    load_released_phrases,
    parse_phrases,
)
from .merging import merge_shards
from .publishing import load_text_bags, publish_text_bags, push_text_bags_to_hub
from .released_bags import import_released_bags
from .verb_parsing import extract_verbs, extract_verbs_batch, load_spacy_pipeline, verb_forms

__all__ = [
    "DEFAULT_INSTRUCTION",
    "ExpansionResult",
    "LLMExpansionConfig",
    "TextBagBuildArguments",
    "build_dictionary",
    "build_log",
    "build_text_bags",
    "cache_key",
    "count_corpus_verbs",
    "expand_actions",
    "extract_verbs",
    "extract_verbs_batch",
    "import_released_bags",
    "load_caption_corpus",
    "load_released_phrases",
    "load_spacy_pipeline",
    "load_text_bags",
    "merge_shards",
    "parse_phrases",
    "publish_text_bags",
    "push_text_bags_to_hub",
    "select_corpus_verbs",
    "verb_forms",
]
