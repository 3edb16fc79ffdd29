# SPDX-License-Identifier: Apache-2.0
"""Disjoint shards of a video index, stable across machines and Python processes.

Python's `hash()` is salted per process, so shards are assigned from a SHA-1 digest of the video's relative path:
every machine of a multi-node build computes the same assignment without talking to the others.
"""

from __future__ import annotations

import hashlib

from datasets import Dataset


def validate_shard_arguments(num_shards: int, shard_index: int) -> None:
    """Raise a `ValueError` naming the bad value unless `0 <= shard_index < num_shards`."""
    if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 1:
        raise ValueError(f"num_shards must be an integer >= 1, got {num_shards!r}")
    if not isinstance(shard_index, int) or isinstance(shard_index, bool) or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be an integer in [0, {num_shards - 1}], got {shard_index!r}")


def shard_of(key: str, num_shards: int) -> int:
    """The shard (in `[0, num_shards)`) that owns `key`, from the first 8 bytes of its SHA-1 digest."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {type(key).__name__}")
    validate_shard_arguments(num_shards, 0)
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def _shard_mask(batch: dict[str, list], key_column: str, num_shards: int, shard_index: int) -> list[bool]:
    return [shard_of(key, num_shards) == shard_index for key in batch[key_column]]


def select_shard(dataset: Dataset, num_shards: int, shard_index: int, key_column: str = "relative_path") -> Dataset:
    """Keep the rows of `dataset` whose `key_column` hashes to `shard_index` (the whole dataset when num_shards=1)."""
    validate_shard_arguments(num_shards, shard_index)
    if key_column not in dataset.column_names:
        raise ValueError(f"key_column {key_column!r} is not a column of the dataset ({dataset.column_names})")
    if num_shards == 1:
        return dataset
    return dataset.filter(
        _shard_mask,
        batched=True,
        fn_kwargs={"key_column": key_column, "num_shards": num_shards, "shard_index": shard_index},
        keep_in_memory=True,
        desc=f"Selecting shard {shard_index}/{num_shards}",
    )
