# Copyright 2026 The MAXI release authors.
# Licensed under the Apache License, Version 2.0.
"""Building blocks of MAXI text bags: LLM expansion of action names, and verb parsing."""

from .llm_expansion import (
    DEFAULT_INSTRUCTION,
    ExpansionResult,
    LLMExpansionConfig,
    cache_key,
    expand_actions,
    load_released_phrases,
    parse_phrases,
)
from .verb_parsing import extract_verbs, extract_verbs_batch, load_spacy_pipeline, verb_forms

__all__ = [
    "DEFAULT_INSTRUCTION",
    "ExpansionResult",
    "LLMExpansionConfig",
    "cache_key",
    "expand_actions",
    "extract_verbs",
    "extract_verbs_batch",
    "load_released_phrases",
    "load_spacy_pipeline",
    "parse_phrases",
    "verb_forms",
]
