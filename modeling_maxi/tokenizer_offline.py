# SPDX-License-Identifier: Apache-2.0
"""Build the exact CLIP tokenizer without network access.

OpenAI CLIP's byte-level BPE is defined by one merges file, ``bpe_simple_vocab_16e6.txt.gz``, shipped with this
package in ``modeling_maxi/data/`` (unchanged from https://github.com/openai/CLIP, MIT licence: see
``bpe_simple_vocab_16e6.LICENSE.txt`` next to it). The vocabulary is not stored anywhere: it is derived from the
merges (256 byte symbols, the same symbols with the ``</w>`` end-of-word suffix, the first 48,894 merges joined, then
the two special tokens), which gives the 49,408 ids used by every CLIP checkpoint. This module rebuilds that
vocabulary and hands it to transformers' [`CLIPTokenizer`], so offline runs and tests tokenize text exactly like
``openai/clip-vit-base-patch16``.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.utils import logging

logger = logging.get_logger(__name__)

MERGES_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77
# 49,408 ids = 2 * 256 byte symbols + 48,894 merges + 2 special tokens.
NUM_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """The 256 printable unicode symbols byte-level BPE uses for the bytes 0..255, in CLIP's vocabulary order.

    Printable Latin-1 bytes stand for themselves; every other byte is mapped, in increasing byte order, to a code point
    from 256 upwards. The vocabulary lists the printable ones first (by byte value), then the remapped ones.
    """
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    printable_set = set(printable)
    remapped = [b for b in range(256) if b not in printable_set]
    return [chr(b) for b in printable] + [chr(256 + offset) for offset in range(len(remapped))]


def default_merges_path() -> str:
    """Path of the CLIP merges file shipped with this package (``modeling_maxi/data/bpe_simple_vocab_16e6.txt.gz``)."""
    path = Path(__file__).resolve().parent / "data" / MERGES_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"The package's CLIP merges file is missing: {str(path)!r}; reinstall maxi-video-clip.")
    return str(path)


@functools.lru_cache(maxsize=4)
def _load_vocab_and_merges(merges_path: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    with gzip.open(merges_path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # The first line is a "#version" header; CLIP uses the first NUM_MERGES merges after it.
    raw_merges = [line for line in lines[1 : NUM_MERGES + 1] if line.strip()]
    if len(raw_merges) != NUM_MERGES:
        raise ValueError(f"'{merges_path}' holds {len(raw_merges)} merges, CLIP needs {NUM_MERGES}.")
    merges = []
    for line_number, line in enumerate(raw_merges, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"Line {line_number} of '{merges_path}' is not a merge pair: {line!r}")
        merges.append((parts[0], parts[1]))
    symbols = _byte_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + [left + right for left, right in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return tuple(merges), tuple(tokens)


def build_offline_clip_tokenizer(merges_path: str | os.PathLike | None = None) -> CLIPTokenizer:
    """Rebuild OpenAI CLIP's tokenizer (vocabulary of 49,408, context length 77) from the BPE merges file.

    Args:
        merges_path (`str` or `os.PathLike`, *optional*):
            Path to ``bpe_simple_vocab_16e6.txt.gz``. Defaults to the copy shipped with this package.

    Returns:
        [`CLIPTokenizer`]: a tokenizer whose ids match ``CLIPTokenizer.from_pretrained("openai/clip-vit-base-patch16")``
        (bos 49406, eos/pad 49407, lower-casing, ``</w>`` end-of-word suffix).
    """
    if merges_path is None:
        merges_path = default_merges_path()
    merges_path = os.fspath(merges_path)
    if not os.path.isfile(merges_path):
        raise FileNotFoundError(f"CLIP merges file not found: '{merges_path}'.")
    merges, tokens = _load_vocab_and_merges(os.path.abspath(merges_path))
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(
            f"Rebuilt vocabulary from '{merges_path}' has {len(vocab)} entries, expected {CLIP_VOCAB_SIZE}."
        )
    logger.debug("Built the offline CLIP tokenizer from %s", merges_path)
    return CLIPTokenizer(
        vocab=vocab,
        merges=list(merges),
        model_max_length=CLIP_CONTEXT_LENGTH,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
    )


__all__ = ["build_offline_clip_tokenizer", "default_merges_path"]
