# SPDX-License-Identifier: Apache-2.0
"""The offline CLIP tokenizer must produce exactly OpenAI CLIP's ids."""

import gzip
import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import modeling_maxi
from modeling_maxi.tokenizer_offline import CLIP_VOCAB_SIZE, build_offline_clip_tokenizer, default_merges_path

REPO = Path(__file__).resolve().parents[1]
# Reference ids from OpenAI CLIP's own tokenizer (open_clip.tokenizer.SimpleTokenizer, with start/end tokens).
REFERENCE_IDS = {
    "a photo of a dog.": [49406, 320, 1125, 539, 320, 1929, 269, 49407],
    "Sliding LEFT quickly!!": [49406, 21468, 1823, 7787, 748, 49407],
    "naïve café 123 don't": [49406, 1097, 35689, 563, 15304, 272, 273, 274, 847, 713, 49407],
    "a red circle moving left, growing": [49406, 320, 736, 7117, 3584, 1823, 267, 4425, 49407],
    "   multiple   spaces\tand\nnewlines": [49406, 6470, 9006, 537, 1218, 3418, 49407],
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_offline_clip_tokenizer()


@pytest.mark.parametrize("text", sorted(REFERENCE_IDS))
def test_ids_match_openai_clip(tokenizer, text):
    assert tokenizer(text)["input_ids"] == REFERENCE_IDS[text]


def test_vocabulary_and_special_tokens(tokenizer):
    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    assert tokenizer.model_max_length == 77
    # 511 = 256 + 255: the end-of-word form of the last of the 68 remapped (non-printable) bytes, U+0143.
    assert tokenizer.convert_ids_to_tokens([320, 256, 511]) == ["a</w>", "!</w>", "\u0143</w>"]
    assert tokenizer.decode(REFERENCE_IDS["a photo of a dog."], skip_special_tokens=True) == "a photo of a dog ."


def test_padding_and_truncation(tokenizer):
    batch = tokenizer(["a b", "a longer sentence here"], padding=True)
    assert batch["input_ids"][0] == [49406, 320, 321, 49407, 49407, 49407]
    assert batch["attention_mask"][0] == [1, 1, 1, 1, 0, 0]
    long = tokenizer(" ".join(["word"] * 200), truncation=True)["input_ids"]
    assert len(long) == 77 and long[-1] == 49407


def test_missing_or_truncated_merges_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt.gz"):
        build_offline_clip_tokenizer(tmp_path / "nowhere.txt.gz")
    with gzip.open(default_merges_path(), "rt", encoding="utf-8") as handle:
        head = [next(handle) for _ in range(1000)]
    truncated = tmp_path / "short.txt.gz"
    with gzip.open(truncated, "wt", encoding="utf-8") as handle:
        handle.writelines(head)
    with pytest.raises(ValueError, match="999 merges"):
        build_offline_clip_tokenizer(truncated)


def test_the_merges_file_ships_with_the_package_and_its_licence():
    path = Path(default_merges_path())
    assert path.parent == Path(modeling_maxi.__file__).parent / "data" and path.name == "bpe_simple_vocab_16e6.txt.gz"
    notice = (path.parent / "bpe_simple_vocab_16e6.LICENSE.txt").read_text(encoding="utf-8")
    assert "MIT License" in notice and "Copyright (c) 2021 OpenAI" in notice and "github.com/openai/CLIP" in notice
    spec = importlib.util.find_spec("open_clip")  # where installed (dev extra): the very same bytes
    if spec is not None:
        peer = Path(spec.submodule_search_locations[0]) / path.name
        assert hashlib.sha256(peer.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_library_never_imports_open_clip_or_its_dependencies(tmp_path, tiny_model_dir):
    """Building the tokenizer, loading a checkpoint and classifying: open_clip, timm and ftfy stay unimported."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import modeling_maxi
        from modeling_maxi.tokenizer_offline import build_offline_clip_tokenizer
        from transformers import pipeline
        ids = build_offline_clip_tokenizer()("a photo of a dog.")["input_ids"]
        classifier = pipeline("zero-shot-video-classification", model={str(tiny_model_dir)!r})
        classifier(np.zeros((4, 32, 32, 3), dtype=np.uint8), candidate_labels=["a", "b"])
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("open_clip", "timm", "ftfy"))
        print(ids, loaded)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"{REFERENCE_IDS['a photo of a dog.']} []"
