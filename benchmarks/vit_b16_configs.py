# SPDX-License-Identifier: Apache-2.0
"""The real-size CLIP ViT-B/16 tower settings every benchmark builds its randomly initialised models from."""

VIT_B16_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 16,
}
CLIP_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8}
