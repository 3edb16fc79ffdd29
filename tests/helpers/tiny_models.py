# SPDX-License-Identifier: Apache-2.0
"""Tiny MAXI models, processors and CLIP's real tokenizer, built offline for the tests."""

import functools
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from modeling_maxi import MaxiVideoCLIPConfig, MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.tokenizer_offline import build_offline_clip_tokenizer

TINY_IMAGE_SIZE = 32
TINY_NUM_FRAMES = 4


def tiny_maxi_config(**overrides) -> MaxiVideoCLIPConfig:
    """A 2+2-layer, 32-wide CLIP on 32 px frames (patch 8 -> a 4x4 grid), 16-d joint space."""
    vision_config = {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "image_size": TINY_IMAGE_SIZE,
        "patch_size": 8,
        **overrides.pop("vision_config", {}),
    }
    text_config = {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        **overrides.pop("text_config", {}),
    }
    settings = {"projection_dim": 16, **overrides}
    return MaxiVideoCLIPConfig(vision_config=vision_config, text_config=text_config, **settings)


def tiny_model(seed: int = 0, **overrides) -> MaxiVideoCLIPModel:
    """A randomly initialised tiny model (seeded), in eval mode."""
    torch.manual_seed(seed)
    return MaxiVideoCLIPModel(tiny_maxi_config(**overrides)).eval()


@functools.lru_cache(maxsize=1)
def _cached_tokenizer() -> CLIPTokenizer:
    return build_offline_clip_tokenizer()


def build_clip_tokenizer() -> CLIPTokenizer:
    """CLIP's exact BPE tokenizer (49,408 ids), rebuilt offline from the merges file shipped with modeling_maxi."""
    return _cached_tokenizer()


def tiny_image_processor(image_size: int = TINY_IMAGE_SIZE) -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def tiny_processor(image_size: int = TINY_IMAGE_SIZE, num_frames: int = TINY_NUM_FRAMES) -> MaxiVideoProcessor:
    """CLIP image processing at `image_size` px + CLIP's real tokenizer, `num_frames` frames per video."""
    return MaxiVideoProcessor(
        image_processor=tiny_image_processor(image_size), tokenizer=build_clip_tokenizer(), num_frames=num_frames
    )


def save_tiny_model(directory: str | Path, seed: int = 0, num_frames: int = TINY_NUM_FRAMES, **overrides) -> Path:
    """Saves a tiny model and its processor (sampling `num_frames` frames per video); returns the directory."""
    directory = Path(directory)
    tiny_model(seed=seed, **overrides).save_pretrained(directory)
    tiny_processor(num_frames=num_frames).save_pretrained(directory)
    return directory


def tiny_clip_model(seed: int = 1) -> CLIPModel:
    """A plain `CLIPModel` made from a `CLIPConfig` (model_type "clip") with the tiny architecture, in eval mode."""
    maxi_config = tiny_maxi_config()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=maxi_config.text_config.to_dict(),
        vision_config=maxi_config.vision_config.to_dict(),
        projection_dim=maxi_config.projection_dim,
    )
    return CLIPModel(config).eval()


def save_tiny_clip(directory: str | Path, seed: int = 1) -> Path:
    """A tiny plain CLIP saved like `openai/clip-vit-base-patch16` (weights, preprocessor_config.json, tokenizer)."""
    directory = Path(directory)
    tiny_clip_model(seed).save_pretrained(directory)
    tiny_image_processor().save_pretrained(directory)
    build_clip_tokenizer().save_pretrained(directory)
    return directory


BLIP_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] [DEC] a the man woman dog is playing riding jumping running walking holding "
    "ball horse bike guitar on in with"
).split()


def save_tiny_blip(directory) -> str:
    """A tiny BLIP captioner (random weights, seed 0) with a BERT word-piece tokenizer built from `BLIP_WORDS`, saved
    with its processor (32 px images) under `directory/model`; returns that folder."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    directory = Path(directory)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(BLIP_WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), bos_token="[DEC]")
    ids = tokenizer.convert_tokens_to_ids(["[DEC]", "[SEP]", "[PAD]"])
    text = {"vocab_size": len(BLIP_WORDS), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text.update(intermediate_size=37, max_position_embeddings=40, bos_token_id=ids[0], sep_token_id=ids[1])
    text.update(eos_token_id=ids[1], pad_token_id=ids[2])
    vision = {"hidden_size": 32, "image_size": 32, "patch_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision["intermediate_size"] = 37
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=16))
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    model.save_pretrained(directory / "model")
    processor.save_pretrained(directory / "model")
    return str(directory / "model")
