# SPDX-License-Identifier: Apache-2.0
"""Linear weight-space ensembling of a fine-tuned model with the original CLIP (paper sec. 4.2, ratio 0.2)."""

import copy

import torch
from torch import nn


@torch.no_grad()
def weight_space_ensemble(base_model: nn.Module, finetuned_model: nn.Module, ratio: float = 0.2) -> nn.Module:
    """
    Weight-space ensembling (paper sec. 4.2): returns a copy of `finetuned_model` whose every floating-point parameter
    and buffer is `ratio * base + (1 - ratio) * finetuned`. The inputs are left unchanged.

    Args:
        base_model (`nn.Module`): The model before fine-tuning (e.g. the original CLIP, as `CLIPModel` or
            `MaxiVideoCLIPModel`).
        finetuned_model (`nn.Module`): The fine-tuned model; its class and config are kept.
        ratio (`float`, defaults to 0.2): Weight of the base model, in [0, 1]. 0 returns a copy of `finetuned_model`.

    Raises:
        ValueError: when the two models do not hold the same tensors (names and shapes) or `ratio` is out of range.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"`ratio` must be a number in [0, 1], got {ratio!r}.")
    base_state = base_model.state_dict()
    finetuned_state = finetuned_model.state_dict()
    missing = sorted(set(finetuned_state) - set(base_state))
    unexpected = sorted(set(base_state) - set(finetuned_state))
    if missing or unexpected:
        raise ValueError(
            "Cannot ensemble models with different architectures: "
            f"tensors only in the fine-tuned model: {missing[:5]}{'...' if len(missing) > 5 else ''}; "
            f"only in the base model: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}."
        )
    mismatched = [
        f"{name}: {tuple(base_state[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in finetuned_state.items()
        if base_state[name].shape != tensor.shape
    ]
    if mismatched:
        raise ValueError(f"Cannot ensemble models with different tensor shapes: {mismatched[:5]}.")
    ensembled = copy.deepcopy(finetuned_model)
    mixed_state = {}
    for name, tensor in finetuned_state.items():
        if tensor.is_floating_point():
            base_tensor = base_state[name].to(device=tensor.device, dtype=tensor.dtype)
            mixed_state[name] = torch.lerp(tensor, base_tensor, float(ratio))
        else:
            mixed_state[name] = tensor
    ensembled.load_state_dict(mixed_state, strict=True)
    return ensembled


__all__ = ["weight_space_ensemble"]
