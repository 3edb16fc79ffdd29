# Copyright 2026 The MAXI authors and contributors. Licensed under the Apache License, Version 2.0.
"""Losses for learning from text bags (MAXI, ICCV 2023, Sec. 3.3 and Table 7).

Every loss here is a small free function over embeddings. Videos are the queries (rows) and the text bags of the
whole batch are the keys (columns): with ``B`` videos, bags of ``N`` texts each and ``D``-dimensional embeddings,
the similarity tensor is ``S[i, j, n] = logit_scale * <v_i, t_{j,n}>`` with shape ``(B, B, N)``.

Across processes, :func:`gather_features` collects the global batch from every rank while keeping the autograd
graph to the local shard, and :func:`distributed_text_bag_loss` combines both so that the rank-mean of the returned
loss equals the single-process loss on the concatenated batch and DDP's gradient averaging yields exactly the
single-process gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "LOSS_VARIANTS",
    "GatheredFeatures",
    "class_prompt_cross_entropy",
    "distributed_text_bag_loss",
    "gather_features",
    "mil_nce_loss",
]

#: Loss variants accepted by :func:`mil_nce_loss` (Table 7 of the paper plus the authors' released formulation).
LOSS_VARIANTS = ("mil_nce", "mil_nce_instance", "mil_nce_per_pair", "mil_max", "nce", "cross_entropy")


def _upcast(tensor: torch.Tensor) -> torch.Tensor:
    """At least float32 (half precision is too coarse for logsumexp over thousands of texts), float64 kept."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _check_variant(variant: str) -> None:
    if variant not in LOSS_VARIANTS:
        raise ValueError(f"Unknown loss variant {variant!r}; expected one of {', '.join(LOSS_VARIANTS)}.")


def _as_scale(logit_scale: torch.Tensor | float, reference: torch.Tensor) -> torch.Tensor:
    scale = torch.as_tensor(logit_scale, dtype=reference.dtype, device=reference.device)
    if scale.numel() != 1:
        raise ValueError(f"`logit_scale` must be a scalar (1/temperature), got a tensor of shape {tuple(scale.shape)}.")
    if not bool(torch.isfinite(scale).all()) or float(scale.detach()) <= 0:
        raise ValueError(f"`logit_scale` must be a positive finite number (1/temperature), got {float(scale)}.")
    return scale.reshape(())


def _validate_inputs(
    video_embeds: torch.Tensor, text_embeds: torch.Tensor, pseudo_labels: torch.Tensor, row_offset: int
) -> None:
    if not isinstance(video_embeds, torch.Tensor) or video_embeds.dim() != 2:
        shape = tuple(video_embeds.shape) if isinstance(video_embeds, torch.Tensor) else type(video_embeds).__name__
        raise ValueError(f"`video_embeds` must be a (B, D) tensor, got {shape}.")
    if not isinstance(text_embeds, torch.Tensor) or text_embeds.dim() != 3:
        shape = tuple(text_embeds.shape) if isinstance(text_embeds, torch.Tensor) else type(text_embeds).__name__
        raise ValueError(f"`text_embeds` must be a (B, N, D) tensor of text bags, got {shape}.")
    if text_embeds.shape[-1] != video_embeds.shape[-1]:
        raise ValueError(
            f"Embedding sizes differ: video_embeds has D={video_embeds.shape[-1]}, "
            f"text_embeds has D={text_embeds.shape[-1]}."
        )
    if text_embeds.shape[1] < 1:
        raise ValueError(f"Each text bag needs at least one text, got bag size {text_embeds.shape[1]}.")
    if not isinstance(pseudo_labels, torch.Tensor) or pseudo_labels.dim() != 1:
        raise ValueError("`pseudo_labels` must be a 1-D integer tensor with one label per text bag.")
    if pseudo_labels.dtype.is_floating_point or pseudo_labels.dtype == torch.bool:
        raise ValueError(f"`pseudo_labels` must hold integer ids, got dtype {pseudo_labels.dtype}.")
    if pseudo_labels.shape[0] != text_embeds.shape[0]:
        raise ValueError(
            f"`pseudo_labels` has {pseudo_labels.shape[0]} entries but there are {text_embeds.shape[0]} text bags."
        )
    if not isinstance(row_offset, int) or row_offset < 0:
        raise ValueError(f"`row_offset` must be a non-negative int, got {row_offset!r}.")
    if row_offset + video_embeds.shape[0] > text_embeds.shape[0]:
        raise ValueError(
            f"Videos {row_offset}..{row_offset + video_embeds.shape[0] - 1} (row_offset={row_offset}, "
            f"{video_embeds.shape[0]} videos) do not all have a text bag: only {text_embeds.shape[0]} bags were given."
        )


def _loss_terms(
    video_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    pseudo_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    variant: str,
    row_offset: int,
    class_embeds: torch.Tensor | None,
) -> tuple[torch.Tensor, int]:
    """Return ``(sum of the per-term losses, number of terms)`` for the query videos; the loss is their ratio."""
    _check_variant(variant)
    _validate_inputs(video_embeds, text_embeds, pseudo_labels, row_offset)
    scale = _as_scale(logit_scale, video_embeds)
    num_queries = video_embeds.shape[0]
    query_labels = pseudo_labels[row_offset : row_offset + num_queries]
    video = F.normalize(_upcast(video_embeds), dim=-1)
    scale = _upcast(scale)

    if variant == "cross_entropy":
        if class_embeds is None:
            raise ValueError("The 'cross_entropy' variant needs `class_embeds` (C, D): one embedding per class prompt.")
        return _class_cross_entropy_sum(video, class_embeds, query_labels, scale), num_queries

    if variant == "nce":
        # One text per video (Table 7 "NCE" = Table 8 bag size 1): the data pipeline samples bags at random, so the
        # first text is a uniformly sampled one.
        text_embeds = text_embeds[:, :1]

    num_bags, bag_size, dim = text_embeds.shape
    text = F.normalize(_upcast(text_embeds), dim=-1)
    # (Bq, B, N): similarity of every query video to every text of every bag.
    sims = scale * (video @ text.reshape(num_bags * bag_size, dim).T).reshape(num_queries, num_bags, bag_size)

    if variant == "mil_nce_instance":
        positive = torch.zeros(num_queries, num_bags, dtype=torch.bool, device=video.device)
        positive[torch.arange(num_queries, device=video.device), row_offset + torch.arange(num_queries)] = True
    else:
        positive = query_labels[:, None] == pseudo_labels[None, :]

    if variant == "mil_max":
        # The best-matching text of each bag stands for the bag in an ordinary contrastive loss over bags.
        bag_logits = sims.max(dim=-1).values
        numerator = bag_logits.masked_fill(~positive, -math.inf).logsumexp(dim=-1)
        return (bag_logits.logsumexp(dim=-1) - numerator).sum(), num_queries

    flat = sims.reshape(num_queries, num_bags * bag_size)
    log_denominator = flat.logsumexp(dim=-1)
    if variant == "mil_nce_per_pair":
        # log p(bag j | video i): softmax over all B*N texts, summed inside each bag; one term per positive pair.
        log_bag_prob = sims.logsumexp(dim=-1) - log_denominator[:, None]
        return -(log_bag_prob * positive).sum(), int(positive.sum())

    # "mil_nce" (Eq. 2), "mil_nce_instance" and "nce": positives are all texts of all positive bags.
    positive_texts = positive[:, :, None].expand(-1, -1, bag_size).reshape(num_queries, num_bags * bag_size)
    log_numerator = flat.masked_fill(~positive_texts, -math.inf).logsumexp(dim=-1)
    return (log_denominator - log_numerator).sum(), num_queries


def _class_cross_entropy_sum(
    video: torch.Tensor, class_embeds: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    if not isinstance(class_embeds, torch.Tensor) or class_embeds.dim() != 2:
        raise ValueError("`class_embeds` must be a (C, D) tensor with one embedding per class prompt.")
    if class_embeds.shape[-1] != video.shape[-1]:
        raise ValueError(
            f"Embedding sizes differ: video embeddings have D={video.shape[-1]}, class_embeds has "
            f"D={class_embeds.shape[-1]}."
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= class_embeds.shape[0]):
        raise ValueError(
            f"Pseudo labels must be class indices in [0, {class_embeds.shape[0]}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    logits = scale * video @ F.normalize(_upcast(class_embeds), dim=-1).T
    return F.cross_entropy(logits, labels.long(), reduction="sum")


def mil_nce_loss(
    video_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    pseudo_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    variant: str = "mil_nce",
    *,
    class_embeds: torch.Tensor | None = None,
    row_offset: int = 0,
) -> torch.Tensor:
    """Multiple-instance contrastive loss between videos and text bags.

    Args:
        video_embeds (`torch.Tensor` of shape `(Bq, D)`):
            Video embeddings, not necessarily normalised (the function L2-normalises). Usually `Bq == B`; in the
            distributed case these are the local videos and `row_offset` places them in the global batch.
        text_embeds (`torch.Tensor` of shape `(B, N, D)`):
            Embeddings of the `N` texts of each of the `B` bags of the batch, not necessarily normalised.
        pseudo_labels (`torch.Tensor` of shape `(B,)`):
            Integer id of each bag's best-matched dictionary text. For `"cross_entropy"` these are class indices
            into `class_embeds`.
        logit_scale (`torch.Tensor` or `float`):
            Multiplier of the cosine similarities, `1 / sigma` (e.g. `model.logit_scale.exp()`; 50 for sigma 0.02).
        variant (`str`, defaults to `"mil_nce"`):
            - `"mil_nce"`: paper Eq. 2. For video `i`, the numerator sums `exp(sim / sigma)` over every text of every
              bag whose pseudo label equals `i`'s, the denominator over every text of every bag; mean over videos.
            - `"mil_nce_instance"`: the same with only the video's own bag positive (Table 7, instance level).
            - `"mil_nce_per_pair"`: the authors' released formulation. Softmax over all `B * N` texts, summed inside
              each bag; `-log` of that for every positive (video, bag) pair, averaged over all positive pairs.
            - `"mil_max"`: each bag is represented by its most similar text; contrastive loss over bags with the
              pseudo-label positives (Table 7, MIL-Max).
            - `"nce"`: one text per video (the first of each bag, which the data pipeline samples at random);
              equals `"mil_nce"` with bag size 1 (Table 7 NCE = Table 8 bag size 1).
            - `"cross_entropy"`: classification over the dictionary's class prompts `class_embeds` (Table 7 row 1);
              `text_embeds` are then only used for shape checks.
        class_embeds (`torch.Tensor` of shape `(C, D)`, *optional*):
            Class-prompt embeddings, required by `"cross_entropy"`.
        row_offset (`int`, defaults to 0):
            Index of the first query video in the batch of bags (rank offset when the bags are gathered globally).

    Returns:
        `torch.Tensor`: scalar loss.
    """
    total, count = _loss_terms(video_embeds, text_embeds, pseudo_labels, logit_scale, variant, row_offset, class_embeds)
    return total / max(count, 1)


def class_prompt_cross_entropy(
    video_embeds: torch.Tensor,
    class_embeds: torch.Tensor,
    pseudo_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
) -> torch.Tensor:
    """Cross entropy of videos over a fixed class space of prompt embeddings (Table 7, "Cross entropy").

    Args:
        video_embeds (`torch.Tensor` of shape `(B, D)`): video embeddings (normalised inside).
        class_embeds (`torch.Tensor` of shape `(C, D)`): one embedding per dictionary class prompt.
        pseudo_labels (`torch.Tensor` of shape `(B,)`): matched class index of each video, in `[0, C)`.
        logit_scale (`torch.Tensor` or `float`): `1 / sigma`.
    """
    if not isinstance(video_embeds, torch.Tensor) or video_embeds.dim() != 2:
        raise ValueError("`video_embeds` must be a (B, D) tensor.")
    if not isinstance(pseudo_labels, torch.Tensor) or pseudo_labels.shape != video_embeds.shape[:1]:
        raise ValueError(f"`pseudo_labels` must have shape ({video_embeds.shape[0]},), one class index per video.")
    scale = _upcast(_as_scale(logit_scale, video_embeds))
    video = F.normalize(_upcast(video_embeds), dim=-1)
    return _class_cross_entropy_sum(video, class_embeds, pseudo_labels, scale) / max(video.shape[0], 1)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the incoming gradients of every rank and keeps this rank's slice.

    Every rank's loss depends on every shard, so the gradient of the summed losses with respect to the local shard
    is the sum over ranks of their gradients for that slice: an all-reduce, then the local slice.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        world_size = dist.get_world_size(group=group)
        ctx.rank = dist.get_rank(group=group)
        ctx.group = group
        ctx.local_size = tensor.shape[0]
        tensor = tensor.contiguous()
        gathered = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(gathered, tensor, group=group)
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = ctx.rank * ctx.local_size
        return grad[start : start + ctx.local_size], None


@dataclass
class GatheredFeatures:
    """Global batch assembled from all ranks.

    Attributes:
        video_embeds (`torch.Tensor` of shape `(B_global, D)`): gathered video embeddings.
        text_embeds (`torch.Tensor` of shape `(B_global, N, D)`): gathered text-bag embeddings.
        pseudo_labels (`torch.Tensor` of shape `(B_global,)`): gathered pseudo labels.
        row_offset (`int`): index of this rank's first video in the global batch.
        local_size (`int`): number of videos on this rank.
    """

    video_embeds: torch.Tensor
    text_embeds: torch.Tensor
    pseudo_labels: torch.Tensor
    row_offset: int
    local_size: int


def gather_features(
    video_embeds: torch.Tensor, text_embeds: torch.Tensor, pseudo_labels: torch.Tensor, group=None
) -> GatheredFeatures:
    """Gather embeddings and pseudo labels from all ranks, keeping gradients to the local shard.

    Ranks may hold different numbers of videos (e.g. after skipping unreadable videos): shards are padded to the
    largest one for the collective and the padding is dropped afterwards. Without an initialised process group (or
    with one process) the inputs are returned unchanged.
    """
    if video_embeds.shape[0] != text_embeds.shape[0] or video_embeds.shape[0] != pseudo_labels.shape[0]:
        raise ValueError(
            f"Local batch is misaligned: {video_embeds.shape[0]} videos, {text_embeds.shape[0]} text bags, "
            f"{pseudo_labels.shape[0]} pseudo labels."
        )
    local_size = video_embeds.shape[0]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group=group) == 1:
        return GatheredFeatures(video_embeds, text_embeds, pseudo_labels, 0, local_size)

    world_size = dist.get_world_size(group=group)
    rank = dist.get_rank(group=group)
    size = torch.tensor([local_size], dtype=torch.long, device=video_embeds.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    max_size = max(sizes)

    def pad(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.shape[0] == max_size:
            return tensor
        filler = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
        return torch.cat([tensor, filler], dim=0)

    def unpad(tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor[r * max_size : r * max_size + sizes[r]] for r in range(world_size)], dim=0)

    all_video = unpad(_GatherWithGrad.apply(pad(video_embeds), group))
    all_text = unpad(_GatherWithGrad.apply(pad(text_embeds), group))
    labels = pad(pseudo_labels).contiguous()
    label_list = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(label_list, labels, group=group)
    all_labels = unpad(torch.cat(label_list, dim=0))
    return GatheredFeatures(all_video, all_text, all_labels, sum(sizes[:rank]), local_size)


def distributed_text_bag_loss(
    video_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    pseudo_labels: torch.Tensor,
    logit_scale: torch.Tensor | float,
    variant: str = "mil_nce",
    *,
    class_embeds: torch.Tensor | None = None,
    group=None,
) -> torch.Tensor:
    """Text-bag loss of the local videos against the bags of the **global** batch.

    Each rank scores only its own videos (rows) against every gathered bag (columns). The local term is rescaled
    so that the mean of the returned values over ranks equals :func:`mil_nce_loss` on the concatenated batch even
    when ranks hold different numbers of videos. Gradients reach the local shard twice: directly through the local
    rows and, through the all-gather's backward (an all-reduce), from every other rank's rows; DDP's averaging of
    parameter gradients then reproduces the single-process gradients exactly.

    Args are those of :func:`mil_nce_loss` for the local shard; `group` is the process group (default: world).
    """
    _check_variant(variant)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group=group) == 1:
        return mil_nce_loss(video_embeds, text_embeds, pseudo_labels, logit_scale, variant, class_embeds=class_embeds)
    gathered = gather_features(video_embeds, text_embeds, pseudo_labels, group=group)
    total, count = _loss_terms(
        video_embeds,
        gathered.text_embeds,
        gathered.pseudo_labels,
        logit_scale,
        variant,
        gathered.row_offset,
        class_embeds,
    )
    global_count = torch.tensor([float(count)], device=video_embeds.device)
    dist.all_reduce(global_count, op=dist.ReduceOp.SUM, group=group)
    world_size = dist.get_world_size(group=group)
    return total * world_size / global_count.clamp(min=1.0).squeeze(0)
