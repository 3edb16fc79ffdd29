# SPDX-License-Identifier: Apache-2.0
"""The errors of checkpoint conversion: one class per problem a user can act on, all `ValueError`s."""

__all__ = [
    "CheckpointConversionError",
    "CorruptCheckpointError",
    "ShapeMismatchError",
    "UnexpectedKeysError",
    "UnknownLayoutError",
    "UnsafeCheckpointError",
]


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
