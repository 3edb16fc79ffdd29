# SPDX-License-Identifier: Apache-2.0
"""Resumable, persisted pipeline stages on top of `datasets`.

Every stage of the text-bag build lives in `<output_dir>/stages/<stage>/`: the result saved with `save_to_disk`
under `data/` and a `manifest.json` holding the stage's build parameters. A stage whose manifest says `complete` with
the same parameters is loaded, not recomputed; different parameters discard it (and, because every stage's
parameters include the digest of its upstream stage, everything downstream of it).

Mapped stages run chunk by chunk: each chunk of `chunk_size` rows is mapped with `Dataset.map` and saved as soon as it
is done (written to a temporary folder, then renamed), so an interrupted build resumes at the first missing chunk and
never loses or duplicates a row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, concatenate_datasets, load_from_disk

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def params_digest(params: dict[str, Any]) -> str:
    """A stable SHA-256 digest of JSON-serialisable parameters (key order does not matter)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _map_chunk(chunk: Dataset, function: Callable, **map_kwargs) -> Dataset:
    """Map one chunk in memory (the chunk is persisted by the caller). Kept separate so tests can interrupt it."""
    return chunk.map(function, keep_in_memory=True, **map_kwargs)


class StageStore:
    """Persisted stages of one build, rooted at `<output_dir>/stages`.

    Args:
        root: the stages directory.
        chunk_size: rows per persisted chunk of a mapped stage.
    """

    def __init__(self, root: str | Path, chunk_size: int = 2048):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.computed: list[str] = []
        self.loaded: list[str] = []

    def stage_dir(self, stage: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"Invalid stage name {stage!r}")
        return self.root / stage

    def read_manifest(self, stage: str) -> dict[str, Any] | None:
        path = self.stage_dir(stage) / MANIFEST_NAME
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def _write_manifest(self, stage: str, params: dict[str, Any], complete: bool, **extra: Any) -> None:
        stage_dir = self.stage_dir(stage)
        stage_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": MANIFEST_VERSION,
            "stage": stage,
            "params": params,
            "digest": params_digest(params),
            "complete": complete,
            **extra,
        }
        _write_json_atomic(stage_dir / MANIFEST_NAME, payload)

    def _matching_manifest(self, stage: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The stage's manifest if it was built with `params`; a stale stage is deleted and None returned."""
        manifest = self.read_manifest(stage)
        if manifest is None:
            return None
        if manifest.get("version") != MANIFEST_VERSION or manifest.get("digest") != params_digest(params):
            logger.warning("Stage %r was built with other parameters; recomputing it", stage)
            shutil.rmtree(self.stage_dir(stage))
            return None
        return manifest

    def digest(self, stage: str) -> str:
        """The parameter digest of a complete stage (to chain into the parameters of the stages after it)."""
        manifest = self.read_manifest(stage)
        if manifest is None or not manifest.get("complete"):
            raise RuntimeError(f"Stage {stage!r} is not complete in {self.root}")
        return manifest["digest"]

    def load(self, stage: str, params: dict[str, Any]) -> Dataset | None:
        """The saved result of a complete stage built with `params`, else None."""
        manifest = self._matching_manifest(stage, params)
        if manifest is None or not manifest.get("complete"):
            return None
        dataset = load_from_disk(str(self.stage_dir(stage) / "data"))
        logger.info("Stage %r already complete: loaded %d rows from %s", stage, len(dataset), self.stage_dir(stage))
        self.loaded.append(stage)
        return dataset

    def save(self, stage: str, dataset: Dataset, params: dict[str, Any], **extra: Any) -> Dataset:
        """Persist a stage computed in one go and mark it complete; returns the dataset reloaded from disk."""
        stage_dir = self.stage_dir(stage)
        stage_dir.mkdir(parents=True, exist_ok=True)
        data_dir = stage_dir / "data"
        temporary = stage_dir / "data.tmp"
        if temporary.exists():
            shutil.rmtree(temporary)
        dataset.save_to_disk(str(temporary))
        if data_dir.exists():
            shutil.rmtree(data_dir)
        os.replace(temporary, data_dir)
        self._write_manifest(stage, params, complete=True, num_rows=len(dataset), **extra)
        self.computed.append(stage)
        return load_from_disk(str(data_dir))

    def save_json(self, stage: str, payload: dict[str, Any], params: dict[str, Any]) -> None:
        """Persist a small non-tabular stage result (e.g. per-class expansions) as `result.json`."""
        stage_dir = self.stage_dir(stage)
        stage_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(stage_dir / "result.json", payload)
        self._write_manifest(stage, params, complete=True)
        self.computed.append(stage)

    def load_json(self, stage: str, params: dict[str, Any]) -> dict[str, Any] | None:
        manifest = self._matching_manifest(stage, params)
        if manifest is None or not manifest.get("complete"):
            return None
        logger.info("Stage %r already complete: loaded from %s", stage, self.stage_dir(stage))
        self.loaded.append(stage)
        return json.loads((self.stage_dir(stage) / "result.json").read_text(encoding="utf-8"))

    def run_map(
        self,
        stage: str,
        dataset: Dataset,
        function: Callable,
        params: dict[str, Any],
        *,
        desc: str,
        batch_size: int = 8,
        num_proc: int | None = None,
        with_rank: bool = False,
        fn_kwargs: dict[str, Any] | None = None,
        remove_columns: list[str] | None = None,
        new_features: dict[str, Any] | None = None,
    ) -> Dataset:
        """Run `dataset.map(function, batched=True, ...)` as a resumable stage and return its persisted result.

        The input is cut into chunks of `self.chunk_size` rows; finished chunks of an interrupted run are reused when
        the parameters, the chunk size and the input length are unchanged. `new_features` (column -> feature type)
        pins the types of the added columns, so that a chunk whose lists are all empty has the same schema as the
        others.
        """
        finished = self.load(stage, params)
        if finished is not None:
            return finished
        stage_dir = self.stage_dir(stage)
        chunks_dir = stage_dir / "chunks"
        layout = {"num_input_rows": len(dataset), "chunk_size": self.chunk_size}
        manifest = self.read_manifest(stage)
        if manifest is not None and manifest.get("layout") != layout:
            logger.warning("Discarding the partial chunks of stage %r: the input or chunk size changed", stage)
            shutil.rmtree(stage_dir)
        self._write_manifest(stage, params, complete=False, layout=layout)

        num_chunks = max(1, -(-len(dataset) // self.chunk_size))
        chunk_paths = []
        for chunk_index in range(num_chunks):
            chunk_path = chunks_dir / f"{chunk_index:06d}"
            chunk_paths.append(chunk_path)
            if chunk_path.is_dir():
                logger.info("Stage %r: chunk %d/%d already done", stage, chunk_index + 1, num_chunks)
                continue
            start = chunk_index * self.chunk_size
            stop = min(len(dataset), start + self.chunk_size)
            chunk = dataset.select(range(start, stop))
            mapped = _map_chunk(
                chunk,
                function,
                batched=True,
                batch_size=batch_size,
                num_proc=num_proc if num_proc and num_proc > 1 and len(chunk) > 1 else None,
                with_rank=with_rank,
                fn_kwargs=fn_kwargs or {},
                remove_columns=remove_columns,
                desc=f"{desc} (chunk {chunk_index + 1}/{num_chunks})",
            )
            if new_features:
                mapped = mapped.cast(Features({**mapped.features, **new_features}))
            temporary = chunks_dir / f"{chunk_index:06d}.tmp"
            if temporary.exists():
                shutil.rmtree(temporary)
            mapped.save_to_disk(str(temporary))
            os.replace(temporary, chunk_path)

        result = concatenate_datasets([load_from_disk(str(path)) for path in chunk_paths])
        if len(result) != len(dataset):
            raise RuntimeError(f"Stage {stage!r} produced {len(result)} rows from {len(dataset)} input rows")
        saved = self.save(stage, result, params, layout=layout)
        shutil.rmtree(chunks_dir, ignore_errors=True)
        return saved
