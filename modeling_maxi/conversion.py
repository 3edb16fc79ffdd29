"""Convert OpenAI-format CLIP checkpoints (the MAXI / ViFi-CLIP release, plain OpenAI CLIP, open_clip "OpenAI" models)
into a [`MaxiVideoCLIPModel`] folder that `AutoModel.from_pretrained` can read.

The conversion is split in small steps that can be used (and tested) one by one:

1. [`load_checkpoint_file`] reads an *untrusted* file safely: `torch.load(weights_only=True)`, `torch.jit.load` for
   TorchScript archives only, or safetensors. Anything that needs arbitrary code to unpickle is refused before it runs.
2. [`extract_state_dict`] unwraps training containers (`{"model": ...}`, `{"state_dict": ...}`) and the DDP `module.`
   prefix.
3. [`detect_layout`] tells the authors' layout (`image_encoder.` / `text_encoder.`) from the plain OpenAI layout
   (`visual.` / `transformer.`) and from a state dict that already uses transformers' CLIP names.
4. [`map_state_dict`] renames every tensor to transformers' CLIP names (fused attention `in_proj` split into q/k/v,
   projection matrices transposed) and checks names and shapes against the target model.
5. [`convert_checkpoint`] puts it together with a base CLIP: tensors the checkpoint lacks (e.g. the token embedding,
   which the authors never saved) come from the base, optionally followed by the weight-space ensemble the paper uses
   for evaluation; [`save_converted_model`] writes a Hub-ready folder with a conversion report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers.utils import logging

logger = logging.get_logger(__name__)

LAYOUT_MAXI = "maxi"
LAYOUT_OPENAI = "openai"
LAYOUT_TRANSFORMERS = "transformers"
LAYOUTS = (LAYOUT_MAXI, LAYOUT_OPENAI, LAYOUT_TRANSFORMERS)

FORMAT_TORCH = "torch"
FORMAT_TORCHSCRIPT = "torchscript"
FORMAT_SAFETENSORS = "safetensors"

REPORT_FILE_NAME = "conversion_report.json"

# Config fields [`convert_checkpoint`] accepts as overrides: the video settings MAXI adds to CLIP's config.
VIDEO_CONFIG_FIELDS = ("num_frames", "frame_pooling", "cross_frame_layers", "cross_frame_offsets")


class CheckpointConversionError(ValueError):
    """Base class of every error raised while converting a checkpoint."""


class UnsafeCheckpointError(CheckpointConversionError):
    """The file needs arbitrary code to be unpickled; it was refused without running any of it."""


class CorruptCheckpointError(CheckpointConversionError):
    """The file is truncated, empty or not a checkpoint at all."""


class UnknownLayoutError(CheckpointConversionError):
    """The state dict is neither the authors' layout, the OpenAI layout nor transformers' CLIP layout."""


class UnexpectedKeysError(CheckpointConversionError):
    """Some checkpoint tensors have no counterpart in the target model."""


class ShapeMismatchError(CheckpointConversionError):
    """Some checkpoint tensors do not have the shape the target model expects."""


# --------------------------------------------------------------------------------------------------------------------
# 1. Safe loading
# --------------------------------------------------------------------------------------------------------------------


class _InertPickledObject:
    """Stand-in for harmless metadata classes found in training checkpoints (a yacs `CfgNode` config, an
    `argparse.Namespace`). Unpickling it builds a plain `OrderedDict` and runs none of the original class's code."""

    def __new__(cls, *args, **kwargs):
        return OrderedDict()


# Classes whose pickled instances only carry metadata (dict items / attributes). They are rebuilt as inert dicts.
INERT_METADATA_GLOBALS = ("yacs.config.CfgNode", "argparse.Namespace")

# Globals `torch.load(weights_only=True)` accepts by default outside the `torch` namespace (used only to name the
# offending globals of a legacy pickle in error messages; torch itself enforces the real allowlist).
_SAFE_NON_TORCH_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
    }
)

# Protocol 0-2 pickles name some modules as Python 2 did.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _inert_safe_globals() -> list[tuple[type, str]]:
    return [(_InertPickledObject, name) for name in INERT_METADATA_GLOBALS]


def _is_safetensors_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header_size = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 0 < header_size <= path.stat().st_size - 8


def _is_torchscript_archive(names: Sequence[str]) -> bool:
    for name in names:
        inner = name.split("/", 1)[1] if "/" in name else name
        if inner == "constants.pkl" or inner.startswith("code/"):
            return True
    return False


def _scan_pickle_globals(path: Path) -> list[str]:
    """Statically list the globals a (non-zip) pickle stream refers to, without unpickling anything.

    Legacy `torch.save` files are several pickles in a row followed by raw storage bytes: consecutive pickles are
    scanned while they start with a protocol marker. Raises `CorruptCheckpointError` if the first pickle cannot be
    parsed.
    """
    found: list[str] = []
    string_ops = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
    with open(path, "rb") as handle:
        pickles_read = 0
        while True:
            start = handle.tell()
            marker = handle.read(1)
            handle.seek(start)
            if not marker or (pickles_read > 0 and marker != b"\x80"):
                break
            recent: list[str | None] = []
            memo: dict[int, str | None] = {}
            try:
                for opcode, arg, _ in pickletools.genops(handle):
                    name = opcode.name
                    if name in string_ops:
                        recent.append(arg if isinstance(arg, str) else None)
                    elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                        memo[int(arg)] = recent[-1] if recent else None
                    elif name == "MEMOIZE":
                        memo[len(memo)] = recent[-1] if recent else None
                    elif name in ("BINGET", "LONG_BINGET", "GET"):
                        recent.append(memo.get(int(arg)))
                    elif name in ("GLOBAL", "INST"):
                        module, _, qualname = str(arg).partition(" ")
                        found.append(f"{_PY2_MODULES.get(module, module)}.{qualname}")
                    elif name == "STACK_GLOBAL":
                        module, qualname = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
                        found.append(f"{module}.{qualname}" if module and qualname else "<dynamic global>")
            except Exception as err:  # noqa: BLE001 - any parse failure means "not a pickle" here
                if pickles_read == 0:
                    raise CorruptCheckpointError(
                        f"{str(path)!r} is not a readable PyTorch checkpoint (not a zip archive, not a pickle, not "
                        f"safetensors): {err}"
                    ) from err
                break
            pickles_read += 1
    return found


def _unsafe_message(path: Path, globals_found: Iterable[str]) -> str:
    names = ", ".join(sorted(set(globals_found)))
    return (
        f"Refusing to load {str(path)!r}: unpickling it would import or call {names}, which may run arbitrary code. "
        "Nothing from the file was executed. If you trust its origin, extract the bare state dict in a separate "
        "process (torch.save(torch.load(path, weights_only=False)['model'], 'weights.pt')) or save it as safetensors, "
        "and convert that file instead."
    )


def _torch_load(path: Path, mmap: bool) -> object:
    with torch.serialization.safe_globals(_inert_safe_globals()):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


# Phrases of torch's weights-only unpickler when it meets something outside its allowlist (not a damaged file).
_ALLOWLIST_REFUSALS = ("Unsupported global", "reduce for unrecognized", "Can only build", "Can only create new object")


def _raise_load_error(path: Path, err: Exception) -> None:
    if isinstance(err, pickle.UnpicklingError) and any(phrase in str(err) for phrase in _ALLOWLIST_REFUSALS):
        raise UnsafeCheckpointError(_unsafe_message(path, ["<objects outside torch's allowlist>"])) from err
    raise CorruptCheckpointError(f"{str(path)!r} is not a readable PyTorch checkpoint: {err}") from err


def load_checkpoint_file(path: str | os.PathLike) -> tuple[object, str]:
    """Load an untrusted checkpoint file without executing code from it.

    Supported formats: `torch.save` archives (zip and legacy), read with `torch.load(weights_only=True)`; TorchScript
    archives such as OpenAI's released `ViT-B-16.pt`, read with `torch.jit.load` (detected from the archive's
    `constants.pkl` / `code/` entries before anything is loaded); safetensors files. Metadata objects of the classes
    in `INERT_METADATA_GLOBALS` (the yacs config the authors save next to the weights) are rebuilt as plain dicts.

    Args:
        path: the checkpoint file.

    Returns:
        `(obj, file_format)` where `file_format` is `"torch"`, `"torchscript"` or `"safetensors"`; for TorchScript and
        safetensors `obj` is already a flat state dict.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: unpickling would import a class or call a function outside torch's allowlist.
        CorruptCheckpointError: the file is empty, truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {str(path)!r} does not exist.")
    if not path.is_file():
        raise CheckpointConversionError(f"Checkpoint {str(path)!r} is not a file (got a directory or a device).")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"Checkpoint file {str(path)!r} is empty (0 bytes).")

    if _is_safetensors_file(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu"), FORMAT_SAFETENSORS
        except (SafetensorError, OSError, ValueError) as err:
            raise CorruptCheckpointError(f"Safetensors file {str(path)!r} is corrupt: {err}") from err

    with open(path, "rb") as handle:
        starts_like_zip = handle.read(4) == b"PK\x03\x04"
    if starts_like_zip and not zipfile.is_zipfile(path):
        raise CorruptCheckpointError(
            f"Checkpoint archive {str(path)!r} is corrupt: it starts like a zip archive (torch.save format) but has no "
            "readable central directory, so it is probably truncated (interrupted download or copy)."
        )
    if starts_like_zip:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise CorruptCheckpointError(f"Checkpoint archive {str(path)!r} is corrupt: {err}") from err
        if _is_torchscript_archive(names):
            logger.info("%s is a TorchScript archive; reading its tensors with torch.jit.load", path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but OpenAI ships it
                    scripted = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as err:
                raise CorruptCheckpointError(f"TorchScript archive {str(path)!r} could not be read: {err}") from err
            return {name: tensor.detach().clone() for name, tensor in scripted.state_dict().items()}, FORMAT_TORCHSCRIPT
        try:
            with torch.serialization.safe_globals(_inert_safe_globals()):
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as err:  # noqa: BLE001 - torch raises RuntimeError/ValueError/UnpicklingError here
            raise CorruptCheckpointError(f"Checkpoint archive {str(path)!r} is corrupt: {err}") from err
        if unsafe:
            raise UnsafeCheckpointError(_unsafe_message(path, unsafe))
        try:
            return _torch_load(path, mmap=True), FORMAT_TORCH
        except Exception as err:  # noqa: BLE001
            _raise_load_error(path, err)

    # Legacy torch.save format or a bare pickle: scan it statically first, then let torch enforce its allowlist.
    globals_found = _scan_pickle_globals(path)
    allowed = _SAFE_NON_TORCH_GLOBALS.union(INERT_METADATA_GLOBALS)
    unsafe = [name for name in globals_found if not name.startswith("torch.") and name not in allowed]
    if unsafe:
        raise UnsafeCheckpointError(_unsafe_message(path, unsafe))
    try:
        return _torch_load(path, mmap=False), FORMAT_TORCH
    except Exception as err:  # noqa: BLE001
        _raise_load_error(path, err)


# --------------------------------------------------------------------------------------------------------------------
# 2. Container unwrapping and layout detection
# --------------------------------------------------------------------------------------------------------------------


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def extract_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """Return the flat `{name: tensor}` state dict inside a loaded checkpoint.

    Accepts a bare state dict or a training container holding it under `"model"`, `"state_dict"` or
    `"model_state_dict"` (the authors' `{"model": ..., "optimizer": ..., "config": ...}` included). Non-tensor entries
    of the state dict are dropped and a DDP `module.` prefix shared by all keys is removed.
    """
    if not isinstance(obj, Mapping):
        raise UnknownLayoutError(
            f"Expected the checkpoint to hold a dict of tensors, got an object of type {type(obj).__name__}."
        )
    candidate: object = obj
    if not _is_tensor_dict(obj):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                candidate = obj[key]
                break
        else:
            raise UnknownLayoutError(
                "The checkpoint is neither a state dict nor a container with a 'model' / 'state_dict' entry; its "
                f"top-level keys are {sorted(map(str, obj))[:12]}."
            )
    state_dict = {str(k): v for k, v in candidate.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        raise UnknownLayoutError("The checkpoint's state dict holds no tensors.")
    if all(key.startswith("module.") for key in state_dict):
        state_dict = {key[len("module.") :]: value for key, value in state_dict.items()}
    return state_dict


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
# 3. Renaming to transformers' CLIP names
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
        return [(_TRANSPOSED["proj"], "transpose")]
    match = _BLOCK_PATTERN.match(key)
    if match is None:
        return []
    layer, rest = match.groups()
    layer_prefix = f"{model_prefix}.encoder.layers.{layer}."
    if rest in _BLOCK_RENAMES:
        return [(layer_prefix + _BLOCK_RENAMES[rest], None)]
    if rest in _FUSED_ATTENTION:
        kind = _FUSED_ATTENTION[rest]
        return [(f"{layer_prefix}self_attn.{part}_proj.{kind}", part) for part in ("q", "k", "v")]
    return []


def _source_targets(key: str, layout: str) -> list[tuple[str, str | None]]:
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
        return [(_TRANSPOSED["text_projection"], "transpose")]
    return _rename_tower_key(inner, "text")


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


def _describe_layer_counts(keys: Iterable[str]) -> str:
    counts = {}
    for tower in ("vision_model", "text_model"):
        layers = {int(m.group(1)) for k in keys if (m := re.match(rf"^{tower}\.encoder\.layers\.(\d+)\.", k))}
        counts[tower] = max(layers) + 1 if layers else 0
    return f"{counts['vision_model']} vision / {counts['text_model']} text layers"


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
    try:
        user_patterns = [re.compile(p) for p in ignore_patterns]
    except re.error as err:
        raise ValueError(f"Invalid ignore pattern in {list(ignore_patterns)!r}: {err}") from err
    layout_patterns = [re.compile(p) for p in _IGNORED_BY_LAYOUT[layout]]

    tensors: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    missing_in_target: list[tuple[str, str]] = []
    mismatched: list[str] = []
    all_targets: set[str] = set()
    for key in sorted(state_dict):
        value = state_dict[key]
        if any(p.search(key) for p in layout_patterns):
            ignored[key] = f"not a model weight in the {layout} layout"
            continue
        if any(p.search(key) for p in user_patterns):
            ignored[key] = "matched a user ignore pattern"
            continue
        targets = _source_targets(key, layout)
        if not targets:
            unknown.append(key)
            continue
        for target, op in targets:
            all_targets.add(target)
            if op == "transpose":
                if value.ndim != 2:
                    mismatched.append(f"{key}: expected a 2-D projection matrix, got shape {tuple(value.shape)}")
                    continue
                converted, source = value.t(), f"{key}.T"
            elif op in ("q", "k", "v"):
                if value.shape[0] % 3 != 0:
                    mismatched.append(
                        f"{key}: fused q/k/v tensor of shape {tuple(value.shape)} is not divisible by 3 on dim 0"
                    )
                    break
                converted, source = value.chunk(3, dim=0)["qkv".index(op)], f"{key}[{op}]"
            else:
                converted, source = value, key
            if target not in target_shapes:
                missing_in_target.append((key, target))
                continue
            expected = tuple(target_shapes[target])
            if tuple(converted.shape) != expected:
                mismatched.append(f"{source} -> {target}: checkpoint {tuple(converted.shape)}, model {expected}")
                continue
            tensors[target] = converted.contiguous()
            sources[target] = source

    if unknown:
        raise UnexpectedKeysError(
            f"{len(unknown)} checkpoint tensor(s) have no counterpart in a CLIP model ({layout} layout): "
            f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}. If they belong to extra modules you want to drop, "
            "pass them as ignore patterns (--ignore_keys)."
        )
    if missing_in_target:
        listed = [f"{k} -> {t}" for k, t in missing_in_target[:10]]
        raise UnexpectedKeysError(
            f"{len(missing_in_target)} checkpoint tensor(s) map to names the target model lacks: {listed}. The "
            f"checkpoint has {_describe_layer_counts(all_targets)}, the base config "
            f"{_describe_layer_counts(target_shapes)}: use a base with the checkpoint's architecture."
        )
    if mismatched:
        raise ShapeMismatchError(
            f"{len(mismatched)} checkpoint tensor(s) do not fit the target model: {mismatched[:10]}"
            f"{' ...' if len(mismatched) > 10 else ''}. The base model's architecture (width, patch size, image size, "
            "context length, projection size) must match the checkpoint's."
        )
    if not tensors:
        raise UnknownLayoutError("No checkpoint tensor could be mapped to the target model.")
    return MappedWeights(tensors=tensors, sources=sources, ignored=ignored, layout=layout)


# --------------------------------------------------------------------------------------------------------------------
# 4. Full conversion with a base model
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class ConversionReport:
    """Where every tensor of a converted model came from. Saved as `conversion_report.json` next to the weights.

    Attributes:
        checkpoint: path of the converted file; `checkpoint_sha256`: its SHA-256.
        checkpoint_format: "torch", "torchscript" or "safetensors"; `layout`: "maxi", "openai" or "transformers".
        base: the base CLIP (Hub id or folder) that filled what the checkpoint lacks.
        ensemble_ratio: weight of the base in `ratio * base + (1 - ratio) * checkpoint`, or None when not ensembled.
        config_overrides: the video settings given to the converted config (num_frames, ...).
        from_checkpoint: model tensor -> checkpoint key it came from.
        from_base: model tensors copied from the base because the checkpoint lacks them.
        initialised: model tensors neither in the checkpoint nor in the base (freshly initialised modules, e.g.
            cross-frame attention added on top of a plain CLIP).
        ignored: checkpoint keys that were skipped, with the reason.
    """

    checkpoint: str
    checkpoint_sha256: str
    checkpoint_format: str
    layout: str
    base: str
    ensemble_ratio: float | None
    config_overrides: dict
    from_checkpoint: dict[str, str] = field(default_factory=dict)
    from_base: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        summary = {
            "num_from_checkpoint": len(self.from_checkpoint),
            "num_from_base": len(self.from_base),
            "num_initialised": len(self.initialised),
            "num_ignored": len(self.ignored),
        }
        return {**asdict(self), "summary": summary}

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _validate_ratio(ensemble_ratio: float | None) -> None:
    if ensemble_ratio is None:
        return
    if isinstance(ensemble_ratio, bool) or not isinstance(ensemble_ratio, (int, float)):
        raise ValueError(f"ensemble_ratio must be a number in [0, 1] or None, got {ensemble_ratio!r}.")
    if not 0.0 <= float(ensemble_ratio) <= 1.0:
        raise ValueError(f"ensemble_ratio must be in [0, 1] (weight of the base model), got {ensemble_ratio!r}.")


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    base: str | os.PathLike = "openai/clip-vit-base-patch16",
    ensemble_ratio: float | None = None,
    ignore_patterns: Sequence[str] = (),
    **config_overrides,
):
    """Convert an OpenAI-format CLIP checkpoint into a [`MaxiVideoCLIPModel`].

    Args:
        checkpoint: the authors' MAXI / ViFi-CLIP `.pth`, an OpenAI CLIP state dict or TorchScript archive, an
            open_clip "OpenAI" state dict, or a safetensors file in any of these layouts.
        base: Hub id or folder of the CLIP model with the checkpoint's architecture; it provides the config and every
            tensor the checkpoint lacks (the authors never saved the token embedding).
        ensemble_ratio: if given, every parameter becomes `ratio * base + (1 - ratio) * converted` (the paper
            evaluates with 0.2). Tensors the checkpoint lacks are unchanged by it.
        ignore_patterns: regular expressions of checkpoint keys to skip (see [`map_state_dict`]).
        config_overrides: video settings for the config, e.g. `num_frames=16`, `cross_frame_layers=0`,
            `frame_pooling="mean"`.

    Returns:
        `(model, report)`: the converted model in eval mode and its [`ConversionReport`].
    """
    from .modeling_maxi_video_clip import MaxiVideoCLIPModel

    _validate_ratio(ensemble_ratio)
    unknown_overrides = sorted(set(config_overrides) - set(VIDEO_CONFIG_FIELDS))
    if unknown_overrides:
        raise ValueError(f"Unknown video settings {unknown_overrides}; expected some of {list(VIDEO_CONFIG_FIELDS)}.")
    if isinstance(ignore_patterns, str):
        raise ValueError(f"ignore_patterns must be a list of regular expressions, got the string {ignore_patterns!r}.")

    obj, file_format = load_checkpoint_file(checkpoint)
    state_dict = extract_state_dict(obj)
    layout = detect_layout(state_dict)
    logger.info("Checkpoint %s: format %s, layout %s, %d tensors", checkpoint, file_format, layout, len(state_dict))

    # float32 whatever the base was saved in: the converted weights keep the checkpoint's precision.
    base_model, loading_info = MaxiVideoCLIPModel.from_pretrained(
        base, output_loading_info=True, dtype=torch.float32, **config_overrides
    )
    base_model.eval()
    not_in_base = set(loading_info.get("missing_keys", ()))
    target_state = base_model.state_dict()
    mapped = map_state_dict(
        state_dict, {k: v.shape for k, v in target_state.items()}, layout=layout, ignore_patterns=ignore_patterns
    )

    model = copy.deepcopy(base_model)
    incompatible = model.load_state_dict(mapped.tensors, strict=False)
    if incompatible.unexpected_keys:
        raise UnexpectedKeysError(f"Mapped tensors the model does not accept: {incompatible.unexpected_keys[:10]}")
    model.eval()

    if ensemble_ratio is not None:
        from . import weight_space_ensemble

        logger.info("Weight-space ensemble: %.3f x base + %.3f x checkpoint", ensemble_ratio, 1 - ensemble_ratio)
        model = weight_space_ensemble(base_model, model, ratio=float(ensemble_ratio))
        model.eval()

    remaining = [k for k in target_state if k not in mapped.tensors]
    report = ConversionReport(
        checkpoint=str(checkpoint),
        checkpoint_sha256=file_sha256(checkpoint),
        checkpoint_format=file_format,
        layout=layout,
        base=str(base),
        ensemble_ratio=None if ensemble_ratio is None else float(ensemble_ratio),
        config_overrides=dict(config_overrides),
        from_checkpoint=dict(sorted(mapped.sources.items())),
        from_base=sorted(k for k in remaining if k not in not_in_base),
        initialised=sorted(k for k in remaining if k in not_in_base),
        ignored=mapped.ignored,
    )
    if report.initialised:
        logger.warning(
            "%d tensors are neither in the checkpoint nor in the base and keep their fresh initialisation: %s",
            len(report.initialised),
            report.initialised[:10],
        )
    logger.info(
        "Converted: %d tensors from the checkpoint, %d from the base, %d initialised, %d ignored",
        len(report.from_checkpoint),
        len(report.from_base),
        len(report.initialised),
        len(report.ignored),
    )
    return model, report


# --------------------------------------------------------------------------------------------------------------------
# 5. Hub-ready folder
# --------------------------------------------------------------------------------------------------------------------


def build_processor_from_base(base: str | os.PathLike, num_frames: int = 16):
    """A [`MaxiVideoProcessor`] made of the base CLIP's image processor and tokenizer, sampling `num_frames` frames."""
    from transformers import AutoImageProcessor, AutoTokenizer

    from .processing_maxi_video_clip import MaxiVideoProcessor

    image_processor = AutoImageProcessor.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    return MaxiVideoProcessor(image_processor=image_processor, tokenizer=tokenizer, num_frames=num_frames)


AUTHORS_REPOSITORY = "https://github.com/wlin-at/MAXI"


def conversion_provenance(report: ConversionReport) -> str:
    """Markdown bullets stating where the weights of a converted model come from (for the model card)."""
    if report.ensemble_ratio is None:
        ensemble = "No weight-space ensembling was applied: the checkpoint's weights are kept as they are."
    else:
        ensemble = (
            f"Weight-space ensembling was applied: every parameter is `{report.ensemble_ratio:g} x base + "
            f"{1 - report.ensemble_ratio:g} x checkpoint` (the paper evaluates with 0.2 x the original CLIP)."
        )
    overrides = ", ".join(f"`{k}={v!r}`" for k, v in report.config_overrides.items()) or "the base's defaults"
    lines = [
        f"- Converted with `modeling_maxi.conversion` from `{Path(report.checkpoint).name}` (SHA-256 "
        f"`{report.checkpoint_sha256}`), a `{report.checkpoint_format}` file in the `{report.layout}` layout.",
        f"- {len(report.from_checkpoint)} tensors come from the checkpoint and {len(report.from_base)} from the base "
        f"model `{report.base}` because the checkpoint lacks them; {len(report.initialised)} are freshly initialised; "
        f"{len(report.ignored)} checkpoint entries were skipped as non-weights. Every tensor is listed in "
        f"`{REPORT_FILE_NAME}`.",
        f"- {ensemble}",
        f"- Video settings: {overrides}.",
    ]
    if report.layout == LAYOUT_MAXI:
        lines.insert(
            0,
            f"- Weights: the paper authors' released checkpoint ({AUTHORS_REPOSITORY}); see their repository for its "
            "terms of use. The token embedding, which the authors did not train or save, is the base CLIP's.",
        )
    return "\n".join(lines)


def _minimal_model_card(model_id: str, report: ConversionReport) -> str:
    from .model_card import MAXI_CITATION, format_paper_results

    parts = [
        f"---\nlibrary_name: transformers\nbase_model: {report.base}\ntags:\n- video\n- maxi\n---",
        f"# {model_id}",
        "A `MaxiVideoCLIPModel` (MAXI, Lin et al., ICCV 2023).",
        f"## Provenance\n\n{conversion_provenance(report)}",
        f"## Results reported in the paper\n\n{format_paper_results()}",
        f"## Citation\n\n```bibtex\n{MAXI_CITATION}\n```",
    ]
    return "\n\n".join(parts) + "\n"


def render_conversion_model_card(report: ConversionReport, model_id: str, license: str = "other") -> str:
    """The model card (README.md) of a converted checkpoint, from the repository's `model_card.md` template; when the
    template is not available (installed package without the repository checkout) a short card with the same
    provenance and paper results is returned instead."""
    from .model_card import render_model_card

    from_authors = report.layout == LAYOUT_MAXI
    try:
        return render_model_card(
            model_id=model_id,
            base_model=report.base,
            provenance=conversion_provenance(report),
            training_config="Not trained here: converted from an existing checkpoint (see Provenance).",
            dataset_link=f"the authors' text bags ({AUTHORS_REPOSITORY})" if from_authors else None,
            license=license,
        )
    except FileNotFoundError as err:
        logger.warning("%s; writing a short model card instead", err)
        return _minimal_model_card(model_id, report)


def save_converted_model(
    model,
    report: ConversionReport,
    output_dir: str | os.PathLike,
    processor=None,
    model_id: str | None = None,
    license: str = "other",
) -> Path:
    """Writes a Hub-ready folder: `model.safetensors` + `config.json` (with `auto_map`) + modeling files, the
    processor, a model card (`README.md`, titled `model_id`, by default the folder's name; `license` is its Hub
    license id) and `conversion_report.json`. Returns the folder."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output_dir {str(output_dir)!r} exists and is not a directory.")
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
    report.save(output_dir / REPORT_FILE_NAME)
    card = render_conversion_model_card(report, model_id=model_id or output_dir.name, license=license)
    (output_dir / "README.md").write_text(card, encoding="utf-8")
    pickled = sorted(p.name for p in output_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise CheckpointConversionError(f"Pickle-based weight files found in {str(output_dir)!r}: {pickled}.")
    logger.info("Saved the converted model to %s", output_dir)
    return output_dir


def push_converted_to_hub(
    output_dir: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None
) -> str:
    """Uploads a folder written by [`save_converted_model`] to the Hub repository `repo_id` (created if needed).
    Returns the URL of the commit."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    output_dir = Path(output_dir)
    if not (output_dir / "config.json").is_file():
        raise FileNotFoundError(f"{str(output_dir)!r} holds no config.json: run the conversion first.")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        commit_message="Upload MAXI checkpoint converted with modeling_maxi.conversion",
        repo_type="model",
    )
    return commit.commit_url
