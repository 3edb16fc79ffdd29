# SPDX-License-Identifier: Apache-2.0
"""Telling a state dict's layout and renaming its tensors to transformers' CLIP names.

[`detect_layout`] tells the authors' layout (`image_encoder.` / `text_encoder.`) from the plain OpenAI layout
(`visual.` / `transformer.`) and from a state dict that already uses transformers' CLIP names. [`map_state_dict`]
renames every tensor (fused attention `in_proj` split into q/k/v, projection matrices transposed) and checks names and
shapes against the target model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .errors import ShapeMismatchError, UnexpectedKeysError, UnknownLayoutError

__all__ = [
    "LAYOUTS",
    "LAYOUT_MAXI",
    "LAYOUT_OPENAI",
    "LAYOUT_TRANSFORMERS",
    "MappedWeights",
    "detect_layout",
    "map_state_dict",
]

LAYOUT_MAXI = "maxi"
LAYOUT_OPENAI = "openai"
LAYOUT_TRANSFORMERS = "transformers"
LAYOUTS = (LAYOUT_MAXI, LAYOUT_OPENAI, LAYOUT_TRANSFORMERS)

# How many offending keys an error message lists.
_LISTED_IN_ERRORS = 10


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the layout of a flat state dict: `"maxi"` (the authors' MAXI / ViFi-CLIP wrapper: `image_encoder.`,
    `text_encoder.`), `"openai"` (OpenAI CLIP / open_clip: `visual.`, `transformer.`, `token_embedding.weight`) or
    `"transformers"` (`vision_model.`, `text_model.`)."""
    keys = list(state_dict)
    if any(k.startswith(("image_encoder.", "text_encoder.")) for k in keys):
        layout = LAYOUT_MAXI
        vision_prefix = "image_encoder."
    elif any(k.startswith("visual.") for k in keys) and any(
        k.startswith(("transformer.", "token_embedding.", "ln_final.")) for k in keys
    ):
        layout = LAYOUT_OPENAI
        vision_prefix = "visual."
    elif any(k.startswith(("vision_model.", "text_model.")) for k in keys):
        return LAYOUT_TRANSFORMERS
    else:
        raise UnknownLayoutError(
            "Unrecognised checkpoint layout: expected the authors' MAXI/ViFi-CLIP keys ('image_encoder.*', "
            "'text_encoder.*'), OpenAI CLIP keys ('visual.*', 'transformer.*', 'token_embedding.weight') or "
            f"transformers CLIP keys ('vision_model.*', 'text_model.*'); the first keys are {sorted(keys)[:8]}."
        )
    if any(k.startswith((vision_prefix + "layer1.", vision_prefix + "attnpool.")) for k in keys):
        raise UnknownLayoutError(
            "The checkpoint's vision tower is a ResNet (OpenAI's RN50/RN101 family: 'layer1.*', 'attnpool.*'); only "
            "ViT vision towers can become a MaxiVideoCLIPModel."
        )
    if any(k.startswith(vision_prefix + "trunk.") for k in keys):
        raise UnknownLayoutError(
            "The checkpoint's vision tower is a timm model ('visual.trunk.*'); only OpenAI-architecture ViT towers "
            "are supported."
        )
    return layout


# --------------------------------------------------------------------------------------------------------------------
# Renaming one key
# --------------------------------------------------------------------------------------------------------------------

_BLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_FUSED_ATTENTION = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
_VISION_RENAMES = {
    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "class_embedding": "vision_model.embeddings.class_embedding",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "ln_post.weight": "vision_model.post_layernorm.weight",
    "ln_post.bias": "vision_model.post_layernorm.bias",
}
_TEXT_RENAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
}
# Projections are stored as `x @ P` matrices (in_features, out_features); transformers uses nn.Linear weights.
_TRANSPOSED = {"proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_BLOCK_PATTERN = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")

# The ops of a `(target, op)` row: None copies the tensor; "transpose"; "q"/"k"/"v" take a third of a fused tensor.
_OP_TRANSPOSE = "transpose"
_FUSED_PARTS = ("q", "k", "v")

# Entries that are not model weights, per layout: the authors' prompt-learner buffers (precomputed prompt embeddings,
# token prefix/suffix), the scalar metadata OpenAI's TorchScript archives keep in their state dict, and the constant
# causal mask buffer that traced open_clip models carry.
_IGNORED_BY_LAYOUT = {
    LAYOUT_MAXI: (r"^prompt_learner\.", r"(^|\.)attn_mask$"),
    LAYOUT_OPENAI: (r"^input_resolution$", r"^context_length$", r"^vocab_size$", r"(^|\.)attn_mask$"),
    LAYOUT_TRANSFORMERS: (r"(^|\.)position_ids$",),
}


def _rename_tower_key(key: str, tower: str) -> list[tuple[str, str | None]]:
    """Target names for one key inside a tower (`key` without its tower prefix), as `(target, op)` rows where op is
    None (copy), "transpose" or "q"/"k"/"v" (one third of a fused attention tensor); [] if the key is unknown."""
    model_prefix = "vision_model" if tower == "vision" else "text_model"
    renames = _VISION_RENAMES if tower == "vision" else _TEXT_RENAMES
    if key in renames:
        return [(renames[key], None)]
    if tower == "vision" and key == "proj":
        return [(_TRANSPOSED["proj"], _OP_TRANSPOSE)]
    match = _BLOCK_PATTERN.match(key)
    if match is None:
        return []
    layer, rest = match.groups()
    layer_prefix = f"{model_prefix}.encoder.layers.{layer}."
    if rest in _BLOCK_RENAMES:
        return [(layer_prefix + _BLOCK_RENAMES[rest], None)]
    if rest in _FUSED_ATTENTION:
        kind = _FUSED_ATTENTION[rest]
        return [(f"{layer_prefix}self_attn.{part}_proj.{kind}", part) for part in _FUSED_PARTS]
    return []


def _source_targets(key: str, layout: str) -> list[tuple[str, str | None]]:
    """The `(target, op)` rows of one checkpoint key (see [`_rename_tower_key`]); [] if the key is unknown."""
    if layout == LAYOUT_TRANSFORMERS:
        return [(key, None)]
    if key == "logit_scale":
        return [("logit_scale", None)]
    if layout == LAYOUT_MAXI:
        if key.startswith("image_encoder."):
            return _rename_tower_key(key[len("image_encoder.") :], "vision")
        if key.startswith("text_encoder."):
            inner = key[len("text_encoder.") :]
        else:
            # The token embedding lives outside the authors' text encoder when a fork saves it at all.
            inner = key if key == "token_embedding.weight" else None
        if inner is None:
            return []
    else:
        if key.startswith("visual."):
            return _rename_tower_key(key[len("visual.") :], "vision")
        inner = key
    if inner == "text_projection":
        return [(_TRANSPOSED["text_projection"], _OP_TRANSPOSE)]
    return _rename_tower_key(inner, "text")


# --------------------------------------------------------------------------------------------------------------------
# Converting one tensor
# --------------------------------------------------------------------------------------------------------------------


def _unconvertible_reason(key: str, value: torch.Tensor, ops: set[str | None]) -> str | None:
    """Why `value` cannot undergo `ops` (a projection that is not a matrix, a fused q/k/v tensor not divisible by 3),
    or None."""
    if _OP_TRANSPOSE in ops and value.ndim != 2:
        return f"{key}: expected a 2-D projection matrix, got shape {tuple(value.shape)}"
    if ops & set(_FUSED_PARTS) and value.shape[0] % 3 != 0:
        return f"{key}: fused q/k/v tensor of shape {tuple(value.shape)} is not divisible by 3 on dim 0"
    return None


def _converted_tensor(key: str, value: torch.Tensor, op: str | None) -> tuple[torch.Tensor, str]:
    """The tensor `op` makes of `value`, and its source description (`key.T`, `key[q]`, or `key`)."""
    if op == _OP_TRANSPOSE:
        return value.t(), f"{key}.T"
    if op in _FUSED_PARTS:
        return value.chunk(3, dim=0)[_FUSED_PARTS.index(op)], f"{key}[{op}]"
    return value, key


def _describe_layer_counts(keys: Iterable[str]) -> str:
    counts = {}
    for tower in ("vision_model", "text_model"):
        layers = {int(m.group(1)) for k in keys if (m := re.match(rf"^{tower}\.encoder\.layers\.(\d+)\.", k))}
        counts[tower] = max(layers) + 1 if layers else 0
    return f"{counts['vision_model']} vision / {counts['text_model']} text layers"


def _listed(items: Sequence) -> str:
    return f"{list(items[:_LISTED_IN_ERRORS])}{' ...' if len(items) > _LISTED_IN_ERRORS else ''}"


@dataclass
class _MappingProblems:
    """What [`map_state_dict`] found wrong, collected over all keys so that one error lists every problem."""

    unknown: list[str] = field(default_factory=list)
    missing_in_target: list[tuple[str, str]] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    targets_seen: set[str] = field(default_factory=set)

    def raise_if_any(self, layout: str, target_shapes: Mapping[str, object]) -> None:
        if self.unknown:
            raise UnexpectedKeysError(
                f"{len(self.unknown)} checkpoint tensor(s) have no counterpart in a CLIP model ({layout} layout): "
                f"{_listed(self.unknown)}. If they belong to extra modules you want to drop, pass them as ignore "
                "patterns (--ignore_keys)."
            )
        if self.missing_in_target:
            listed = [f"{k} -> {t}" for k, t in self.missing_in_target[:_LISTED_IN_ERRORS]]
            raise UnexpectedKeysError(
                f"{len(self.missing_in_target)} checkpoint tensor(s) map to names the target model lacks: {listed}. "
                f"The checkpoint has {_describe_layer_counts(self.targets_seen)}, the base config "
                f"{_describe_layer_counts(target_shapes)}: use a base with the checkpoint's architecture."
            )
        if self.mismatched:
            raise ShapeMismatchError(
                f"{len(self.mismatched)} checkpoint tensor(s) do not fit the target model: {_listed(self.mismatched)}"
                ". The base model's architecture (width, patch size, image size, context length, projection size) "
                "must match the checkpoint's."
            )


def _mapped_tensors(
    key: str,
    value: torch.Tensor,
    targets: list[tuple[str, str | None]],
    target_shapes: Mapping[str, torch.Size | Sequence[int]],
    problems: _MappingProblems,
) -> list[tuple[str, str, torch.Tensor]]:
    """`(target, source, tensor)` for every target of one checkpoint tensor that fits the model; what does not fit
    goes to `problems`."""
    problems.targets_seen.update(target for target, _ in targets)
    reason = _unconvertible_reason(key, value, {op for _, op in targets})
    if reason is not None:
        problems.mismatched.append(reason)
        return []
    rows = []
    for target, op in targets:
        converted, source = _converted_tensor(key, value, op)
        if target not in target_shapes:
            problems.missing_in_target.append((key, target))
            continue
        expected = tuple(target_shapes[target])
        if tuple(converted.shape) != expected:
            problems.mismatched.append(f"{source} -> {target}: checkpoint {tuple(converted.shape)}, model {expected}")
            continue
        rows.append((target, source, converted.contiguous()))
    return rows


# --------------------------------------------------------------------------------------------------------------------
# The whole state dict
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class MappedWeights:
    """Result of [`map_state_dict`].

    Attributes:
        tensors (`dict[str, torch.Tensor]`): checkpoint tensors under transformers' CLIP names, ready for
            `load_state_dict`.
        sources (`dict[str, str]`): for every entry of `tensors`, the checkpoint key it was made from (with
            `[q]`/`[k]`/`[v]` for a third of a fused attention tensor and `.T` for transposed projections).
        ignored (`dict[str, str]`): checkpoint keys that are not model weights, with the reason.
        layout (`str`): the detected layout.
    """

    tensors: dict[str, torch.Tensor]
    sources: dict[str, str]
    ignored: dict[str, str]
    layout: str


def _compiled_ignore_patterns(layout: str, ignore_patterns: Sequence[str]) -> dict[str, list[re.Pattern]]:
    """The layout's own non-weight patterns and the user's, keyed by the reason a matching key is ignored."""
    try:
        user_patterns = [re.compile(p) for p in ignore_patterns]
    except re.error as err:
        raise ValueError(f"Invalid ignore pattern in {list(ignore_patterns)!r}: {err}") from err
    return {
        f"not a model weight in the {layout} layout": [re.compile(p) for p in _IGNORED_BY_LAYOUT[layout]],
        "matched a user ignore pattern": user_patterns,
    }


def _ignore_reason(key: str, patterns_by_reason: Mapping[str, list[re.Pattern]]) -> str | None:
    for reason, patterns in patterns_by_reason.items():
        if any(p.search(key) for p in patterns):
            return reason
    return None


def map_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, torch.Size | Sequence[int]],
    layout: str | None = None,
    ignore_patterns: Sequence[str] = (),
) -> MappedWeights:
    """Rename an OpenAI-format (or authors' format) CLIP state dict to transformers' CLIP names.

    Args:
        state_dict: flat state dict, e.g. from [`extract_state_dict`].
        target_shapes: `{name: shape}` of the model that will receive the tensors (`model.state_dict()` works).
        layout: one of `LAYOUTS`; detected with [`detect_layout`] when None.
        ignore_patterns: extra regular expressions (matched with `re.search` on checkpoint keys) of tensors to skip,
            for forks that add modules MAXI does not have.

    Raises:
        UnknownLayoutError: the layout is not recognised, or `layout` is not one of `LAYOUTS`.
        UnexpectedKeysError: checkpoint tensors that map to nothing, or to a name the target model lacks.
        ShapeMismatchError: tensors whose (converted) shape differs from the target's; every mismatch is listed.
    """
    if layout is None:
        layout = detect_layout(state_dict)
    elif layout not in LAYOUTS:
        raise UnknownLayoutError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    patterns_by_reason = _compiled_ignore_patterns(layout, ignore_patterns)

    tensors: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    ignored: dict[str, str] = {}
    problems = _MappingProblems()
    for key in sorted(state_dict):
        reason = _ignore_reason(key, patterns_by_reason)
        if reason is not None:
            ignored[key] = reason
            continue
        targets = _source_targets(key, layout)
        if not targets:
            problems.unknown.append(key)
            continue
        for target, source, tensor in _mapped_tensors(key, state_dict[key], targets, target_shapes, problems):
            tensors[target] = tensor
            sources[target] = source

    problems.raise_if_any(layout, target_shapes)
    if not tensors:
        raise UnknownLayoutError("No checkpoint tensor could be mapped to the target model.")
    return MappedWeights(tensors=tensors, sources=sources, ignored=ignored, layout=layout)
