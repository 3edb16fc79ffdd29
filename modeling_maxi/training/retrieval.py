# SPDX-License-Identifier: Apache-2.0
"""Video-to-bag retrieval accuracy: a quick check of what MIL-NCE training optimises, on the training bags."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from .data import TextBagCollator, TextBagVideoDataset


@torch.no_grad()
def embed_videos_and_bags(
    model, dataset: TextBagVideoDataset, collator: TextBagCollator, batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised video embeddings `(V, D)`, bag text embeddings `(V, N, D)` and pseudo labels `(V,)`.

    Unreadable videos are left out (as in training).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    videos, bags, labels = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator):
        if batch["pixel_values"].shape[0] == 0:
            continue
        outputs = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            pixel_values=batch["pixel_values"].to(device),
        )
        num_videos = batch["pixel_values"].shape[0]
        videos.append(outputs.video_embeds)
        bags.append(outputs.text_embeds.reshape(num_videos, -1, outputs.text_embeds.shape[-1]))
        labels.append(batch["pseudo_labels"])
    model.train(was_training)
    if not videos:
        raise ValueError("No readable video in the dataset.")
    return torch.cat(videos), torch.cat(bags), torch.cat(labels).to(device)


def video_to_bag_retrieval_accuracy(
    model, dataset: TextBagVideoDataset, collator: TextBagCollator, batch_size: int = 16
) -> float:
    """Fraction of videos whose best-scoring bag (mean cosine similarity over the bag's texts, among the bags of all
    videos) has the video's pseudo label. With K balanced labels, an untrained model scores about 1/K."""
    videos, bags, labels = embed_videos_and_bags(model, dataset, collator, batch_size)
    scores = torch.einsum("vd,bnd->vbn", videos, bags).mean(dim=-1)
    best = scores.argmax(dim=-1)
    return float((labels[best] == labels).float().mean())
