# SPDX-License-Identifier: Apache-2.0
"""Reading an untrusted checkpoint file without executing code from it, and unwrapping the state dict inside.

[`load_checkpoint_file`] reads `torch.save` archives (zip and legacy) with `torch.load(weights_only=True)`,
TorchScript archives with `torch.jit.load`, and safetensors files. A pickle that needs arbitrary code is refused before
any of it runs: zip archives are checked with torch's own scan, legacy pickles are scanned statically here.
[`extract_state_dict`] unwraps training containers (`{"model": ...}`, `{"state_dict": ...}`) and the DDP `module.`
prefix.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from transformers.utils import logging

from .errors import CheckpointConversionError, CorruptCheckpointError, UnknownLayoutError, UnsafeCheckpointError

logger = logging.get_logger(__name__)

__all__ = [
    "FORMAT_SAFETENSORS",
    "FORMAT_TORCH",
    "FORMAT_TORCHSCRIPT",
    "INERT_METADATA_GLOBALS",
    "extract_state_dict",
    "load_checkpoint_file",
]

FORMAT_TORCH = "torch"
FORMAT_TORCHSCRIPT = "torchscript"
FORMAT_SAFETENSORS = "safetensors"

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

# Pickle opcodes that push a string (a module or class name of a following STACK_GLOBAL, among others).
_STRING_OPCODES = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)

# Phrases of torch's weights-only unpickler when it meets something outside its allowlist (not a damaged file).
_ALLOWLIST_REFUSALS = ("Unsupported global", "reduce for unrecognized", "Can only build", "Can only create new object")

_PICKLE_PROTOCOL_MARKER = b"\x80"
_ZIP_MAGIC = b"PK\x03\x04"


class _InertPickledObject:
    """Stand-in for harmless metadata classes found in training checkpoints (a yacs `CfgNode` config, an
    `argparse.Namespace`). Unpickling it builds a plain `OrderedDict` and runs none of the original class's code."""

    def __new__(cls, *args, **kwargs):
        return OrderedDict()


def _inert_safe_globals() -> list[tuple[type, str]]:
    return [(_InertPickledObject, name) for name in INERT_METADATA_GLOBALS]


# --------------------------------------------------------------------------------------------------------------------
# Telling the formats apart
# --------------------------------------------------------------------------------------------------------------------


def _checked_checkpoint_path(path: str | os.PathLike) -> Path:
    """`path` as a `Path`, after checking that it is a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {str(path)!r} does not exist.")
    if not path.is_file():
        raise CheckpointConversionError(f"Checkpoint {str(path)!r} is not a file (got a directory or a device).")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"Checkpoint file {str(path)!r} is empty (0 bytes).")
    return path


def _is_safetensors_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header_size = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 0 < header_size <= path.stat().st_size - 8


def _starts_like_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == _ZIP_MAGIC


def _is_torchscript_archive(names: Sequence[str]) -> bool:
    for name in names:
        inner = name.split("/", 1)[1] if "/" in name else name
        if inner == "constants.pkl" or inner.startswith("code/"):
            return True
    return False


# --------------------------------------------------------------------------------------------------------------------
# Refusing code-executing pickles
# --------------------------------------------------------------------------------------------------------------------


def _collect_pickle_globals(handle: BinaryIO, found: list[str]) -> None:
    """Appends to `found` the globals named by the pickle starting at the handle's position, reading up to its STOP
    opcode; raises whatever `pickletools.genops` raises on a stream that is not a pickle."""
    recent: list[str | None] = []
    memo: dict[int, str | None] = {}
    for opcode, arg, _ in pickletools.genops(handle):
        name = opcode.name
        if name in _STRING_OPCODES:
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


def _scan_pickle_globals(path: Path) -> list[str]:
    """Statically list the globals a (non-zip) pickle stream refers to, without unpickling anything.

    Legacy `torch.save` files are several pickles in a row followed by raw storage bytes: consecutive pickles are
    scanned while they start with a protocol marker. Raises `CorruptCheckpointError` if the first pickle cannot be
    parsed.
    """
    found: list[str] = []
    with open(path, "rb") as handle:
        pickles_read = 0
        while True:
            start = handle.tell()
            marker = handle.read(1)
            handle.seek(start)
            if not marker or (pickles_read > 0 and marker != _PICKLE_PROTOCOL_MARKER):
                break
            try:
                _collect_pickle_globals(handle, found)
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


def _refuse_unsafe_zip_globals(path: Path) -> None:
    """Raises `UnsafeCheckpointError` if the archive's pickle names a global outside torch's allowlist."""
    try:
        with torch.serialization.safe_globals(_inert_safe_globals()):
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError/ValueError/UnpicklingError here
        raise CorruptCheckpointError(f"Checkpoint archive {str(path)!r} is corrupt: {err}") from err
    if unsafe:
        raise UnsafeCheckpointError(_unsafe_message(path, unsafe))


def _refuse_unsafe_legacy_globals(path: Path) -> None:
    """Raises `UnsafeCheckpointError` if the legacy pickle stream names a global outside torch's allowlist."""
    allowed = _SAFE_NON_TORCH_GLOBALS.union(INERT_METADATA_GLOBALS)
    unsafe = [name for name in _scan_pickle_globals(path) if not name.startswith("torch.") and name not in allowed]
    if unsafe:
        raise UnsafeCheckpointError(_unsafe_message(path, unsafe))


# --------------------------------------------------------------------------------------------------------------------
# Loading each format
# --------------------------------------------------------------------------------------------------------------------


def _torch_load(path: Path, mmap: bool) -> object:
    """`torch.load(weights_only=True)` with the inert metadata classes allowed; its errors become ours."""
    try:
        with torch.serialization.safe_globals(_inert_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001
        if isinstance(err, pickle.UnpicklingError) and any(phrase in str(err) for phrase in _ALLOWLIST_REFUSALS):
            raise UnsafeCheckpointError(_unsafe_message(path, ["<objects outside torch's allowlist>"])) from err
        raise CorruptCheckpointError(f"{str(path)!r} is not a readable PyTorch checkpoint: {err}") from err


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpointError(f"Safetensors file {str(path)!r} is corrupt: {err}") from err


def _load_torchscript(path: Path) -> dict[str, torch.Tensor]:
    logger.info("%s is a TorchScript archive; reading its tensors with torch.jit.load", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but OpenAI ships it
            scripted = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise CorruptCheckpointError(f"TorchScript archive {str(path)!r} could not be read: {err}") from err
    return {name: tensor.detach().clone() for name, tensor in scripted.state_dict().items()}


def _load_zip_archive(path: Path) -> tuple[object, str]:
    """A zip archive: a TorchScript archive (read with `torch.jit.load`) or a `torch.save` archive."""
    if not zipfile.is_zipfile(path):
        raise CorruptCheckpointError(
            f"Checkpoint archive {str(path)!r} is corrupt: it starts like a zip archive (torch.save format) but has no "
            "readable central directory, so it is probably truncated (interrupted download or copy)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CorruptCheckpointError(f"Checkpoint archive {str(path)!r} is corrupt: {err}") from err
    if _is_torchscript_archive(names):
        return _load_torchscript(path), FORMAT_TORCHSCRIPT
    _refuse_unsafe_zip_globals(path)
    return _torch_load(path, mmap=True), FORMAT_TORCH


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
    path = _checked_checkpoint_path(path)
    if _is_safetensors_file(path):
        return _load_safetensors(path), FORMAT_SAFETENSORS
    if _starts_like_zip(path):
        return _load_zip_archive(path)
    # Legacy torch.save format or a bare pickle: scan it statically first, then let torch enforce its allowlist.
    _refuse_unsafe_legacy_globals(path)
    return _torch_load(path, mmap=False), FORMAT_TORCH


# --------------------------------------------------------------------------------------------------------------------
# Unwrapping the state dict
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
