# SPDX-License-Identifier: Apache-2.0
"""Losses for learning from text bags (MAXI, ICCV 2023, Sec. 3.3 and Table 7).

Every objective of Table 7 is a small named function over embeddings, and :data:`TEXT_BAG_LOSSES` maps the variant
names of :data:`LOSS_VARIANTS` to them; :func:`text_bag_loss` picks one by name. Videos are the queries (rows) and
the text bags of the whole batch are the keys (columns): with ``B`` bags of ``N`` texts each, the logits are
``S[i, j, n] = logit_scale * cos(v_i, t_{j,n})`` with shape ``(B_query, B, N)``.

- ``mil_nce``: :func:`mil_nce_loss`, Eq. 2: every bag with the video's pseudo label is positive (Table 7 "MIL-NCE");
- ``mil_nce_instance``: :func:`mil_nce_instance_loss`, only the video's own bag is positive (Table 7);
- ``mil_nce_per_pair``: :func:`mil_nce_per_pair_loss`, the authors' released code: one term per positive pair;
- ``mil_max``: :func:`mil_max_loss`, each bag's best-matching text stands for the bag (Table 7 "MIL-Max");
- ``nce``: :func:`nce_loss`, one text per bag (Table 7 "NCE" = Table 8 bag size 1);
- ``cross_entropy``: :func:`class_prompt_cross_entropy`, classification over the dictionary's class prompts.

Across processes, :func:`distributed_text_bag_loss` has two scopes (:data:`CONTRAST_SCOPES`). ``"global"`` (the
default): :func:`gather_features` collects the bags of every rank while keeping the autograd graph to the local
shard, so that the rank-mean of the returned loss equals the single-process loss on the concatenated batch and DDP's
gradient averaging yields exactly the single-process gradients. ``"local"``: each rank contrasts its own videos with
its own bags only, no gather, as the authors' released code trained; the rank-mean is then the mean of the per-rank
losses, and every video is contrasted with the ``B_local`` bags of its rank instead of the ``B_global`` of the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CONTRAST_SCOPES",
    "LOSS_VARIANTS",
    "TEXT_BAG_LOSSES",
    "GatheredFeatures",
    "class_prompt_cross_entropy",
    "distributed_text_bag_loss",
    "gather_features",
    "mil_max_loss",
    "mil_nce_instance_loss",
    "mil_nce_loss",
    "mil_nce_per_pair_loss",
    "nce_loss",
    "text_bag_loss",
]

REDUCTIONS = ("mean", "sum", "none")
#: Which bags the videos of a process are contrasted with in :func:`distributed_text_bag_loss`: every process's
#: (``"global"``, gathered) or the process's own (``"local"``, the authors' released code).
CONTRAST_SCOPES = ("global", "local")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}.")


def _upcast(tensor: Tensor) -> Tensor:
    """At least float32 (half precision is too coarse for logsumexp over thousands of texts), float64 kept."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _as_scale(logit_scale: Tensor | float, reference: Tensor) -> Tensor:
    scale = torch.as_tensor(logit_scale, dtype=reference.dtype, device=reference.device)
    if scale.numel() != 1:
        raise ValueError(f"`logit_scale` must be a scalar (1/temperature), got a tensor of shape {tuple(scale.shape)}.")
    if not bool(torch.isfinite(scale).all()) or float(scale.detach()) <= 0:
        raise ValueError(f"`logit_scale` must be a positive finite number (1/temperature), got {float(scale)}.")
    return _upcast(scale.reshape(()))


def _validate_inputs(video_embeds: Tensor, text_embeds: Tensor, pseudo_labels: Tensor, row_offset: int) -> None:
    if not isinstance(video_embeds, Tensor) or video_embeds.dim() != 2:
        shape = tuple(video_embeds.shape) if isinstance(video_embeds, Tensor) else type(video_embeds).__name__
        raise ValueError(f"`video_embeds` must be a (B, D) tensor, got {shape}.")
    if not isinstance(text_embeds, Tensor) or text_embeds.dim() != 3:
        shape = tuple(text_embeds.shape) if isinstance(text_embeds, Tensor) else type(text_embeds).__name__
        raise ValueError(f"`text_embeds` must be a (B, N, D) tensor of text bags, got {shape}.")
    if text_embeds.shape[-1] != video_embeds.shape[-1]:
        raise ValueError(
            f"Embedding sizes differ: video_embeds has D={video_embeds.shape[-1]}, "
            f"text_embeds has D={text_embeds.shape[-1]}."
        )
    if text_embeds.shape[1] < 1:
        raise ValueError(f"Each text bag needs at least one text, got bag size {text_embeds.shape[1]}.")
    if not isinstance(pseudo_labels, Tensor) or pseudo_labels.dim() != 1:
        raise ValueError("`pseudo_labels` must be a 1-D integer tensor with one label per text bag.")
    if pseudo_labels.dtype.is_floating_point or pseudo_labels.dtype == torch.bool:
        raise ValueError(f"`pseudo_labels` must hold integer ids, got dtype {pseudo_labels.dtype}.")
    if pseudo_labels.shape[0] != text_embeds.shape[0]:
        raise ValueError(
            f"`pseudo_labels` has {pseudo_labels.shape[0]} entries but there are {text_embeds.shape[0]} text bags."
        )
    if isinstance(row_offset, bool) or not isinstance(row_offset, int) or row_offset < 0:
        raise ValueError(f"`row_offset` must be a non-negative int, got {row_offset!r}.")
    if row_offset + video_embeds.shape[0] > text_embeds.shape[0]:
        raise ValueError(
            f"Videos {row_offset}..{row_offset + video_embeds.shape[0] - 1} (row_offset={row_offset}, "
            f"{video_embeds.shape[0]} videos) do not all have a text bag: only {text_embeds.shape[0]} bags were given."
        )


def _reduce(terms: Tensor, reduction: str) -> Tensor:
    """`"mean"` (0 for no terms), `"sum"` or `"none"` (the 1-D tensor of per-term losses) of the loss terms."""
    _check_reduction(reduction)
    if reduction == "none":
        return terms
    if reduction == "sum":
        return terms.sum()
    return terms.sum() / max(terms.numel(), 1)


def _score_bags(
    video_embeds: Tensor, text_embeds: Tensor, pseudo_labels: Tensor, logit_scale: Tensor | float, row_offset: int
) -> tuple[Tensor, Tensor]:
    """Checks the inputs; returns the logits `logit_scale * cos(video_i, text_{j,n})` of shape `(B_query, B, N)`
    (at least float32) and the `(B_query, B)` indicator `1(t̂_i = t̂_j)` of Eq. 2: the bags sharing the video's label."""
    _validate_inputs(video_embeds, text_embeds, pseudo_labels, row_offset)
    scale = _as_scale(logit_scale, video_embeds)
    num_bags, bag_size, dim = text_embeds.shape
    video = F.normalize(_upcast(video_embeds), dim=-1)
    text = F.normalize(_upcast(text_embeds), dim=-1).reshape(num_bags * bag_size, dim)
    logits = scale * (video @ text.T).reshape(video.shape[0], num_bags, bag_size)
    query_labels = pseudo_labels[row_offset : row_offset + video.shape[0]]
    return logits, query_labels[:, None] == pseudo_labels[None, :]


def _own_bags(logits: Tensor, row_offset: int) -> Tensor:
    """`(B_query, B)` mask of each query video's own bag (instance level)."""
    num_queries, num_bags = logits.shape[:2]
    rows = torch.arange(num_queries, device=logits.device)
    positive = torch.zeros(num_queries, num_bags, dtype=torch.bool, device=logits.device)
    positive[rows, row_offset + rows] = True
    return positive


def _multiple_instance_nce(logits: Tensor, positive_bags: Tensor) -> Tensor:
    """The terms of every MIL-NCE form: `-log(sum exp over the texts of the positive bags / sum exp over all texts)`.

    Args:
        logits (`Tensor` of shape `(B_query, B, N)`): scaled cosines of the query videos to every text.
        positive_bags (`Tensor` of shape `(B_query, B)`, bool): the bags positive for each query video.

    Returns:
        `Tensor` of shape `(B_query,)`.
    """
    num_queries, num_bags, bag_size = logits.shape
    flat = logits.reshape(num_queries, num_bags * bag_size)
    positive_texts = positive_bags[:, :, None].expand(-1, -1, bag_size).reshape(num_queries, num_bags * bag_size)
    return flat.logsumexp(dim=-1) - flat.masked_fill(~positive_texts, -math.inf).logsumexp(dim=-1)


def mil_nce_loss(video_embeds, text_embeds, pseudo_labels, logit_scale, *, row_offset=0, reduction="mean") -> Tensor:
    r"""MIL-NCE with pseudo-label positives, the paper's Eq. 2 (Table 7 "MIL-NCE").

    For video `i` the numerator sums `exp(cos(v_i, t_{j,n}) / sigma)` over every text of every bag `j` whose pseudo
    label equals `i`'s (`1(t̂_i = t̂_j)`), the denominator over every text of every bag; `-log` of the ratio,
    averaged over the videos.

    Args:
        video_embeds (`Tensor` of shape `(B_query, D)`):
            Video embeddings, not necessarily normalised (L2-normalised here). Usually `B_query == B`; in the
            distributed case these are the local videos and `row_offset` places them in the global batch.
        text_embeds (`Tensor` of shape `(B, N, D)`):
            Embeddings of the `N` texts of each of the `B` bags of the batch, not necessarily normalised.
        pseudo_labels (`Tensor` of shape `(B,)`):
            Integer id of each bag's best-matched dictionary text `t̂`.
        logit_scale (`Tensor` or `float`):
            `1 / sigma`, the multiplier of the cosines (e.g. `model.logit_scale.exp()`; 50 for sigma = 0.02).
        row_offset (`int`, defaults to 0):
            Index of the first query video in the batch of bags (rank offset when the bags are gathered globally).
        reduction (`str`, defaults to `"mean"`):
            `"mean"` (the loss; 0 without videos), `"sum"` or `"none"` (one loss term per video, shape `(B_query,)`).

    Returns:
        `Tensor`: the loss, at least float32.
    """
    logits, same_label_bags = _score_bags(video_embeds, text_embeds, pseudo_labels, logit_scale, row_offset)
    return _reduce(_multiple_instance_nce(logits, same_label_bags), reduction)


def mil_nce_instance_loss(
    video_embeds, text_embeds, pseudo_labels, logit_scale, *, row_offset=0, reduction="mean"
) -> Tensor:
    """MIL-NCE at instance level (Table 7 "MIL-NCE only instance-level"): only the video's own bag is positive.

    Arguments as for :func:`mil_nce_loss`; `pseudo_labels` are checked but do not change the loss.
    """
    logits, _ = _score_bags(video_embeds, text_embeds, pseudo_labels, logit_scale, row_offset)
    return _reduce(_multiple_instance_nce(logits, _own_bags(logits, row_offset)), reduction)


def mil_nce_per_pair_loss(
    video_embeds, text_embeds, pseudo_labels, logit_scale, *, row_offset=0, reduction="mean"
) -> Tensor:
    """The authors' released formulation of MIL-NCE: one term per positive (video, bag) pair.

    `log p(bag j | video i)` is the softmax over all `B * N` texts, summed inside bag `j`; the loss is `-log p`
    averaged over every pair whose pseudo labels agree. Arguments as for :func:`mil_nce_loss`; with
    `reduction="none"` the terms are those of the positive pairs, row by row.
    """
    logits, same_label_bags = _score_bags(video_embeds, text_embeds, pseudo_labels, logit_scale, row_offset)
    log_bag_probability = logits.logsumexp(dim=-1) - logits.flatten(1).logsumexp(dim=-1)[:, None]
    return _reduce(-log_bag_probability[same_label_bags], reduction)


def mil_max_loss(video_embeds, text_embeds, pseudo_labels, logit_scale, *, row_offset=0, reduction="mean") -> Tensor:
    """MIL-Max (Table 7): each bag is represented by its text most similar to the video, in a contrastive loss over
    bags with the pseudo-label positives. Arguments as for :func:`mil_nce_loss`.
    """
    logits, same_label_bags = _score_bags(video_embeds, text_embeds, pseudo_labels, logit_scale, row_offset)
    best_text_logits = logits.max(dim=-1, keepdim=True).values  # (B_query, B, 1): a bag of one text
    return _reduce(_multiple_instance_nce(best_text_logits, same_label_bags), reduction)


def nce_loss(video_embeds, text_embeds, pseudo_labels, logit_scale, *, row_offset=0, reduction="mean") -> Tensor:
    """NCE (Table 7): one text per video, the first of its bag (the data pipeline samples bags at random, so it is a
    uniformly sampled one); equals :func:`mil_nce_loss` with bag size 1 (Table 8). Arguments as for
    :func:`mil_nce_loss`.
    """
    _validate_inputs(video_embeds, text_embeds, pseudo_labels, row_offset)
    first_texts = text_embeds[:, :1]
    return mil_nce_loss(
        video_embeds, first_texts, pseudo_labels, logit_scale, row_offset=row_offset, reduction=reduction
    )


def _check_class_embeds(class_embeds: Tensor | None, labels: Tensor, dim: int) -> None:
    if not isinstance(class_embeds, Tensor) or class_embeds.dim() != 2:
        raise ValueError("`class_embeds` must be a (C, D) tensor with one embedding per class prompt.")
    if class_embeds.shape[-1] != dim:
        raise ValueError(
            f"Embedding sizes differ: video embeddings have D={dim}, class_embeds has D={class_embeds.shape[-1]}."
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= class_embeds.shape[0]):
        raise ValueError(
            f"Pseudo labels must be class indices in [0, {class_embeds.shape[0]}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )


def class_prompt_cross_entropy(
    video_embeds: Tensor,
    class_embeds: Tensor,
    pseudo_labels: Tensor,
    logit_scale: Tensor | float,
    *,
    reduction: str = "mean",
) -> Tensor:
    """Cross entropy of videos over a fixed class space of prompt embeddings (Table 7, "Cross entropy").

    Args:
        video_embeds (`Tensor` of shape `(B, D)`): video embeddings (normalised inside).
        class_embeds (`Tensor` of shape `(C, D)`): one embedding per dictionary class prompt (normalised inside).
        pseudo_labels (`Tensor` of shape `(B,)`): matched class index of each video, in `[0, C)`.
        logit_scale (`Tensor` or `float`): `1 / sigma`.
        reduction (`str`, defaults to `"mean"`): `"mean"`, `"sum"` or `"none"` (one term per video).
    """
    if not isinstance(video_embeds, Tensor) or video_embeds.dim() != 2:
        raise ValueError("`video_embeds` must be a (B, D) tensor.")
    if not isinstance(pseudo_labels, Tensor) or pseudo_labels.shape != video_embeds.shape[:1]:
        raise ValueError(f"`pseudo_labels` must have shape ({video_embeds.shape[0]},), one class index per video.")
    _check_reduction(reduction)
    scale = _as_scale(logit_scale, video_embeds)
    _check_class_embeds(class_embeds, pseudo_labels, video_embeds.shape[-1])
    video = F.normalize(_upcast(video_embeds), dim=-1)
    logits = scale * video @ F.normalize(_upcast(class_embeds), dim=-1).T
    return _reduce(F.cross_entropy(logits, pseudo_labels.long(), reduction="none"), reduction)


def _class_prompt_cross_entropy_of_bags(
    video_embeds, text_embeds, pseudo_labels, logit_scale, *, class_embeds, row_offset=0, reduction="mean"
) -> Tensor:
    """:func:`class_prompt_cross_entropy` called as the other objectives are: the bags are only checked, the query
    videos' pseudo labels are their class indices."""
    _validate_inputs(video_embeds, text_embeds, pseudo_labels, row_offset)
    if class_embeds is None:
        raise ValueError("The 'cross_entropy' variant needs `class_embeds` (C, D): one embedding per class prompt.")
    query_labels = pseudo_labels[row_offset : row_offset + video_embeds.shape[0]]
    return class_prompt_cross_entropy(video_embeds, class_embeds, query_labels, logit_scale, reduction=reduction)


#: The objective of every loss variant (Table 7 of the paper plus the authors' released formulation).
TEXT_BAG_LOSSES: dict[str, Callable[..., Tensor]] = {
    "mil_nce": mil_nce_loss,
    "mil_nce_instance": mil_nce_instance_loss,
    "mil_nce_per_pair": mil_nce_per_pair_loss,
    "mil_max": mil_max_loss,
    "nce": nce_loss,
    "cross_entropy": _class_prompt_cross_entropy_of_bags,
}

#: Loss variants accepted by :func:`text_bag_loss` and :func:`distributed_text_bag_loss`.
LOSS_VARIANTS = tuple(TEXT_BAG_LOSSES)


def _check_variant(variant: str) -> None:
    if variant not in TEXT_BAG_LOSSES:
        raise ValueError(f"Unknown loss variant {variant!r}; expected one of {', '.join(LOSS_VARIANTS)}.")


def text_bag_loss(
    video_embeds: Tensor,
    text_embeds: Tensor,
    pseudo_labels: Tensor,
    logit_scale: Tensor | float,
    variant: str = "mil_nce",
    *,
    class_embeds: Tensor | None = None,
    row_offset: int = 0,
    reduction: str = "mean",
) -> Tensor:
    """The loss of one variant of :data:`LOSS_VARIANTS` between videos and text bags (see :data:`TEXT_BAG_LOSSES`).

    Args:
        video_embeds, text_embeds, pseudo_labels, logit_scale, row_offset, reduction: as for :func:`mil_nce_loss`;
            for `"cross_entropy"` the pseudo labels are class indices into `class_embeds` and `text_embeds` are only
            checked.
        variant (`str`, defaults to `"mil_nce"`): the objective, a key of :data:`TEXT_BAG_LOSSES`.
        class_embeds (`Tensor` of shape `(C, D)`, *optional*):
            Class-prompt embeddings, required by `"cross_entropy"` and ignored by the other variants.

    Returns:
        `Tensor`: the loss (or its terms with `reduction="none"`).
    """
    _check_variant(variant)
    _check_reduction(reduction)
    options = {"row_offset": row_offset, "reduction": reduction}
    if variant == "cross_entropy":  # the one objective over a fixed class space instead of the bags
        options["class_embeds"] = class_embeds
    return TEXT_BAG_LOSSES[variant](video_embeds, text_embeds, pseudo_labels, logit_scale, **options)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the incoming gradients of every rank and keeps this rank's slice.

    Every rank's loss depends on every shard, so the gradient of the summed losses with respect to the local shard
    is the sum over ranks of their gradients for that slice: an all-reduce, then the local slice.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        world_size = dist.get_world_size(group=group)
        ctx.rank = dist.get_rank(group=group)
        ctx.group = group
        ctx.local_size = tensor.shape[0]
        tensor = tensor.contiguous()
        gathered = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(gathered, tensor, group=group)
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = ctx.rank * ctx.local_size
        return grad[start : start + ctx.local_size], None


@dataclass
class GatheredFeatures:
    """Global batch assembled from all ranks.

    Attributes:
        video_embeds (`Tensor` of shape `(B_global, D)`): gathered video embeddings.
        text_embeds (`Tensor` of shape `(B_global, N, D)`): gathered text-bag embeddings.
        pseudo_labels (`Tensor` of shape `(B_global,)`): gathered pseudo labels.
        row_offset (`int`): index of this rank's first video in the global batch.
        local_size (`int`): number of videos on this rank.
    """

    video_embeds: Tensor
    text_embeds: Tensor
    pseudo_labels: Tensor
    row_offset: int
    local_size: int


def gather_features(video_embeds: Tensor, text_embeds: Tensor, pseudo_labels: Tensor, group=None) -> GatheredFeatures:
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

    def pad(tensor: Tensor) -> Tensor:
        if tensor.shape[0] == max_size:
            return tensor
        filler = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
        return torch.cat([tensor, filler], dim=0)

    def unpad(tensor: Tensor) -> Tensor:
        return torch.cat([tensor[r * max_size : r * max_size + sizes[r]] for r in range(world_size)], dim=0)

    all_video = unpad(_GatherWithGrad.apply(pad(video_embeds), group))
    all_text = unpad(_GatherWithGrad.apply(pad(text_embeds), group))
    labels = pad(pseudo_labels).contiguous()
    label_list = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(label_list, labels, group=group)
    all_labels = unpad(torch.cat(label_list, dim=0))
    return GatheredFeatures(all_video, all_text, all_labels, sum(sizes[:rank]), local_size)


def distributed_text_bag_loss(
    video_embeds,
    text_embeds,
    pseudo_labels,
    logit_scale,
    variant="mil_nce",
    *,
    class_embeds=None,
    group=None,
    contrast_scope="global",
) -> Tensor:
    """Text-bag loss of the local videos against the bags of the **global** batch, or of the local one.

    `contrast_scope="global"`: each rank scores only its own videos (rows) against every gathered bag (columns). The
    local term is rescaled so that the mean of the returned values over ranks equals :func:`text_bag_loss` on the
    concatenated batch even when ranks hold different numbers of videos. Gradients reach the local shard twice:
    directly through the local rows and, through the all-gather's backward (an all-reduce), from every other rank's
    rows; DDP's averaging of parameter gradients then reproduces the single-process gradients exactly.

    `contrast_scope="local"`: :func:`text_bag_loss` of the local videos against the local bags, nothing gathered;
    DDP's averaging then gives the gradient of the mean of the per-rank losses, each rank weighted alike whatever
    its number of videos. This is how the authors' released code trained (4 GPUs x 16 videos): every video is
    contrasted with the 16 bags of its GPU, not the 64 of the step.

    Args are those of :func:`text_bag_loss` for the local shard; `group` is the process group (default: world);
    `contrast_scope` is one of :data:`CONTRAST_SCOPES`. With one process both scopes are :func:`text_bag_loss`.
    """
    _check_variant(variant)
    if contrast_scope not in CONTRAST_SCOPES:
        raise ValueError(f"Unknown contrast_scope {contrast_scope!r}; expected one of {', '.join(CONTRAST_SCOPES)}.")
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size(group=group) > 1
    if contrast_scope == "local" or not distributed:
        return text_bag_loss(video_embeds, text_embeds, pseudo_labels, logit_scale, variant, class_embeds=class_embeds)
    gathered = gather_features(video_embeds, text_embeds, pseudo_labels, group=group)
    terms = text_bag_loss(
        video_embeds,
        gathered.text_embeds,
        gathered.pseudo_labels,
        logit_scale,
        variant,
        class_embeds=class_embeds,
        row_offset=gathered.row_offset,
        reduction="none",
    )
    global_count = torch.tensor([float(terms.numel())], device=video_embeds.device)
    dist.all_reduce(global_count, op=dist.ReduceOp.SUM, group=group)
    world_size = dist.get_world_size(group=group)
    return terms.sum() * world_size / global_count.clamp(min=1.0).squeeze(0)
