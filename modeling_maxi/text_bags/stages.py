# SPDX-License-Identifier: Apache-2.0
"""Resumable, persisted pipeline stages on top of `datasets`.

Every stage of the text-bag build lives in `<output_dir>/stages/<stage>/`: the result saved with `save_to_disk`
under `data/` and a `manifest.json` holding the stage's build parameters. A stage whose manifest says `complete` with
the same parameters is loaded, not recomputed; different parameters discard it (and, because every stage's
parameters include the digest of its upstream stage, everything downstream of it).

Mapped stages run chunk by chunk: each chunk of `chunk_size` rows is mapped with `Dataset.map` and saved as soon as it
is done (written to a temporary folder, then renamed), so an interrupted build resumes at the first missing chunk and
never loses or duplicates a row.

N processes (`accelerate launch --num_processes N`, or any launcher setting `RANK`, `WORLD_SIZE` and `LOCAL_RANK`)
share one store: the chunks of a mapped stage go round-robin to the processes (chunk i to rank i mod N), each
resumes its own, and the main process (rank 0) assembles them. Every other stage is computed and written by the main
process only, while the others wait for its manifest (`wait_timeout` seconds at most, then a `TimeoutError` saying
what was awaited).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, concatenate_datasets, load_from_disk

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
POLL_SECONDS = 0.2


def distributed_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """`(rank, world_size, local_rank)` of this process from `RANK`, `WORLD_SIZE`, `LOCAL_RANK` (set by
    `accelerate launch` and `torchrun`); `(0, 1, 0)` when they are not set."""
    environ = os.environ if environ is None else environ
    values = {}
    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": environ.get("RANK", "0")}  # one node: local = global
    for name, default in defaults.items():
        text = environ.get(name, default)
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None
    rank, world_size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank} do not describe a process")
    return rank, world_size, local_rank


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
        rank, world_size, local_rank: this process among the build's processes (default: `distributed_env()`).
        wait_timeout: seconds a process waits for another process's stage or chunks before a `TimeoutError`.
    """

    def __init__(
        self,
        root: str | Path,
        chunk_size: int = 2048,
        rank: int | None = None,
        world_size: int | None = None,
        local_rank: int | None = None,
        wait_timeout: float = 3600.0,
    ):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        env_rank, env_world_size, env_local_rank = distributed_env()
        self.rank = env_rank if rank is None else rank
        self.world_size = env_world_size if world_size is None else world_size
        self.local_rank = env_local_rank if local_rank is None else local_rank
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank!r}")
        if not wait_timeout > 0:
            raise ValueError(f"wait_timeout must be a positive number of seconds, got {wait_timeout!r}")
        self.wait_timeout = float(wait_timeout)
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.computed: list[str] = []
        self.loaded: list[str] = []

    @property
    def is_main(self) -> bool:
        """Whether this process computes and writes the stages that are not split into chunks (rank 0)."""
        return self.rank == 0

    def _wait(self, what: str, ready: Callable[[], Any]) -> Any:
        """Poll `ready()` until it returns something other than None; a `TimeoutError` after `wait_timeout`."""
        deadline = time.monotonic() + self.wait_timeout
        while (value := ready()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Process {self.rank} of {self.world_size} waited {self.wait_timeout:g}s for {what} in "
                    f"{self.root}; another process may have failed (see each process's logs/build.rank<i>.log), or "
                    "raise --rank-wait-timeout"
                )
            time.sleep(POLL_SECONDS)
        return value

    def stage_dir(self, stage: str) -> Path:
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"Invalid stage name {stage!r}")
        return self.root / stage

    def read_manifest(self, stage: str) -> dict[str, Any] | None:
        path = self.stage_dir(stage) / MANIFEST_NAME
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # not written yet, or removed by the main process just now
            return None

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

    @staticmethod
    def _built_with(manifest: dict[str, Any], params: dict[str, Any]) -> bool:
        return manifest.get("version") == MANIFEST_VERSION and manifest.get("digest") == params_digest(params)

    def _matching_manifest(self, stage: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The stage's manifest if it was built with `params`; a stale stage is deleted and None returned."""
        manifest = self.read_manifest(stage)
        if manifest is None:
            return None
        if not self._built_with(manifest, params):
            if self.is_main:  # the other processes wait for the main one to recompute it
                logger.warning("Stage %r was built with other parameters; recomputing it", stage)
                shutil.rmtree(self.stage_dir(stage))
            return None
        return manifest

    def is_complete_with(self, stage: str, params: dict[str, Any]) -> bool:
        """Whether a complete `stage` built with `params` is saved (a read only: unlike `load`, a stage built with
        other parameters is left in place)."""
        manifest = self.read_manifest(stage)
        return manifest is not None and bool(manifest.get("complete")) and self._built_with(manifest, params)

    def digest(self, stage: str) -> str:
        """The parameter digest of a complete stage (to chain into the parameters of the stages after it)."""
        manifest = self.read_manifest(stage)
        if manifest is None or not manifest.get("complete"):
            raise RuntimeError(f"Stage {stage!r} is not complete in {self.root}")
        return manifest["digest"]

    def load(self, stage: str, params: dict[str, Any]) -> Dataset | None:
        """The saved result of a complete stage built with `params`, else None (on the main process; the others wait
        for the main process to complete it)."""
        if not self.is_main:
            return self._wait(f"stage {stage!r}", lambda: self._load_complete(stage, params))
        return self._load_complete(stage, params)

    def _load_complete(self, stage: str, params: dict[str, Any]) -> Dataset | None:
        manifest = self._matching_manifest(stage, params)
        if manifest is None or not manifest.get("complete"):
            return None
        dataset = load_from_disk(str(self.stage_dir(stage) / "data"))
        logger.info("Stage %r already complete: loaded %d rows from %s", stage, len(dataset), self.stage_dir(stage))
        self.loaded.append(stage)
        return dataset

    def save(self, stage: str, dataset: Dataset, params: dict[str, Any], **extra: Any) -> Dataset:
        """Persist a stage computed in one go and mark it complete; returns the dataset reloaded from disk."""
        self._check_main(stage)
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
        self._check_main(stage)
        stage_dir = self.stage_dir(stage)
        stage_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(stage_dir / "result.json", payload)
        self._write_manifest(stage, params, complete=True)
        self.computed.append(stage)

    def _check_main(self, stage: str) -> None:
        if not self.is_main:
            raise RuntimeError(f"Stage {stage!r} is written by the main process only, not by rank {self.rank}")

    def load_json(self, stage: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The `result.json` of a complete stage built with `params`, else None (the other processes wait for it)."""
        if not self.is_main:
            return self._wait(f"stage {stage!r}", lambda: self._load_json_complete(stage, params))
        return self._load_json_complete(stage, params)

    def _load_json_complete(self, stage: str, params: dict[str, Any]) -> dict[str, Any] | None:
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
        finished = self._load_complete(stage, params)
        if finished is not None:
            return finished
        stage_dir = self.stage_dir(stage)
        chunks_dir = stage_dir / "chunks"
        layout = {"num_input_rows": len(dataset), "chunk_size": self.chunk_size}
        if self.is_main:
            manifest = self.read_manifest(stage)
            if manifest is not None and manifest.get("layout") != layout:
                logger.warning("Discarding the partial chunks of stage %r: the input or chunk size changed", stage)
                shutil.rmtree(stage_dir)
            self._write_manifest(stage, params, complete=False, layout=layout)
        else:  # the main process clears a stale stage first; then every process maps its own chunks
            digest = params_digest(params)
            manifest = self._wait(
                f"the chunk layout of stage {stage!r}",
                lambda: self._manifest_if(stage, lambda m: m.get("digest") == digest and m.get("layout") == layout),
            )
            if manifest.get("complete"):
                return self.load(stage, params)
        if self.world_size > 1 and with_rank:  # one process per device: this process's device, not the map's rank
            fn_kwargs, with_rank = {**(fn_kwargs or {}), "rank": self.local_rank}, False

        features = None
        if new_features:  # typed from the first batch on: a batch of only unreadable videos has no null columns
            kept = {name: feature for name, feature in dataset.features.items() if name not in (remove_columns or ())}
            features = Features({**kept, **new_features})
        num_chunks = max(1, -(-len(dataset) // self.chunk_size))
        chunk_paths = [chunks_dir / f"{chunk_index:06d}" for chunk_index in range(num_chunks)]
        for chunk_index in range(self.rank, num_chunks, self.world_size):
            chunk_path = chunk_paths[chunk_index]
            if chunk_path.is_dir():
                logger.info("Stage %r: chunk %d/%d already done", stage, chunk_index + 1, num_chunks)
                continue
            logger.info("Stage %r: mapping chunk %d/%d (rank %d)", stage, chunk_index + 1, num_chunks, self.rank)
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
                features=features,
                desc=f"{desc} (chunk {chunk_index + 1}/{num_chunks})",
            )
            if new_features:
                mapped = mapped.cast(Features({**mapped.features, **new_features}))
            temporary = chunks_dir / f"{chunk_index:06d}.tmp{self.rank}"
            if temporary.exists():
                shutil.rmtree(temporary)
            mapped.save_to_disk(str(temporary))
            os.replace(temporary, chunk_path)
        if not self.is_main:
            return self.load(stage, params)  # assembled by the main process

        for chunk_index, path in enumerate(chunk_paths):
            self._wait(
                f"chunk {chunk_index + 1}/{num_chunks} of stage {stage!r} (rank {chunk_index % self.world_size})",
                lambda path=path: True if path.is_dir() else None,
            )
        result = concatenate_datasets([load_from_disk(str(path)) for path in chunk_paths])
        if len(result) != len(dataset):
            raise RuntimeError(f"Stage {stage!r} produced {len(result)} rows from {len(dataset)} input rows")
        saved = self.save(stage, result, params, layout=layout)
        shutil.rmtree(chunks_dir, ignore_errors=True)
        return saved

    def _manifest_if(self, stage: str, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        manifest = self.read_manifest(stage)
        return manifest if manifest is not None and condition(manifest) else None
