# SPDX-License-Identifier: Apache-2.0
"""The real-size tower settings (CLIP ViT-B/16, BLIP-large) the benchmarks build their random models from."""

VIT_B16_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 16,
}
CLIP_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8}
#: BLIP ViT-L/16 captioner (Salesforce/blip-image-captioning-large): vision tower sizes; the text decoder is
#: transformers' default `BlipTextConfig` (BERT-base sized, 30,524 ids).
BLIP_LARGE_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 16,
}
