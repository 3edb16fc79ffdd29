# SPDX-License-Identifier: Apache-2.0
"""Which `checkpoint-*` folder a training run resumes from: the newest *complete* one.

A process killed while the Trainer writes ``checkpoint-N`` (an out-of-memory kill, a pre-empted job) leaves a folder
with some of its files. transformers' `get_last_checkpoint` takes the highest-numbered folder regardless, and
resuming from it stops with ``FileNotFoundError: .../checkpoint-N/trainer_state.json`` (or, worse, resumes without
the optimizer state, which the Trainer skips silently when it is missing). Here a folder counts only when every
file the Trainer writes into it is there and whole:

- the weights (``model.safetensors``, a sharded index with all its shards, or their ``.bin`` forms);
- ``optimizer.pt`` and ``scheduler.pt``;
- the RNG state of every process of the run that saved it: ``rng_state.pth`` for one process, ``rng_state_0.pth``
  to ``rng_state_<n-1>.pth`` for ``n >= 2``, with no gap (a checkpoint saved by another number of processes than the
  resuming run's is complete, with a warning: the Trainer restores the RNG only of the processes it has a file for);
- ``trainer_state.json``, which the Trainer writes last, valid JSON with the folder's step.

"Whole" means a safetensors file as long as its header says, a `torch.save` archive with its closing zip record,
a JSON file that parses. With ``--save_only_model`` the Trainer writes only the weights and ``trainer_state.json``;
with DeepSpeed or FSDP the weights and optimizer are in their own layouts and only the Trainer's own files (RNG
state, ``trainer_state.json``) are checked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import zipfile
from pathlib import Path

from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_problems", "find_resume_checkpoint", "rng_state_files"]

TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_FILES = ("optimizer.pt", "scheduler.pt")
#: The weight layouts `Trainer.save_model` writes: one file, or an index naming its shards.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_CHECKPOINT_FOLDER = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_RNG_FILE = re.compile(r"^rng_state_(\d+)\.pth$")


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (`None` when its size is what its header says)."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            return f"{path.name} is truncated ({size} bytes, no header)"
        (header_size,) = struct.unpack("<Q", prefix)
        if 8 + header_size > size:
            return f"{path.name} is truncated ({size} bytes, its header alone needs {8 + header_size})"
        try:
            header = json.loads(file.read(header_size))
            ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return f"{path.name} has an unreadable header"
    data_end = max(ends, default=0)
    if size != 8 + header_size + data_end:
        return f"{path.name} is truncated ({size} of {8 + header_size + data_end} bytes)"
    return None


def _file_problem(folder: Path, name: str) -> str | None:
    """Why `folder/name` is missing or not whole, or `None`."""
    path = folder / name
    if not path.is_file():
        return f"no {name}"
    if name.endswith(".safetensors"):
        return _safetensors_problem(path)
    if name.endswith((".pt", ".pth", ".bin")) and not zipfile.is_zipfile(path):
        return f"{name} is truncated (no closing zip record)"
    return None


def _weights_problems(folder: Path) -> list[str]:
    for index_name in WEIGHT_INDEX_FILES:
        if (folder / index_name).is_file():
            try:
                shards = sorted(
                    set(json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"].values())
                )
            except (ValueError, KeyError, AttributeError):
                return [f"{index_name} is not a valid weight index"]
            return [problem for shard in shards if (problem := _file_problem(folder, shard))]
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            problem = _file_problem(folder, name)
            return [problem] if problem else []
    return [f"no weights ({' or '.join(WEIGHT_FILES + WEIGHT_INDEX_FILES)})"]


def _trainer_state_problem(folder: Path, step: int | None) -> str | None:
    path = folder / TRAINER_STATE_NAME
    if not path.is_file():
        return f"no {TRAINER_STATE_NAME}"
    try:
        saved_step = json.loads(path.read_text(encoding="utf-8")).get("global_step")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return f"{TRAINER_STATE_NAME} is not valid JSON (cut off while it was written?)"
    if step is not None and saved_step != step:
        return f"{TRAINER_STATE_NAME} holds global_step {saved_step}, the folder name says {step}"
    return None


def rng_state_files(world_size: int) -> list[str]:
    """The RNG-state files a run of `world_size` processes writes into, and reads from, each checkpoint."""
    if world_size <= 1:
        return ["rng_state.pth"]
    return [f"rng_state_{rank}.pth" for rank in range(world_size)]


def _rng_state_check(folder: Path, world_size: int) -> tuple[list[str], list[str]]:
    """(problems, notes) of the RNG-state files of `folder` for a resuming run of `world_size` processes."""
    ranks = [int(match.group(1)) for path in folder.glob("rng_state_*.pth") if (match := _RNG_FILE.match(path.name))]
    if ranks:  # a run of n >= 2 processes writes rng_state_0.pth ... rng_state_<n-1>.pth
        saved_by = max(max(ranks) + 1, 2)
    elif (folder / "rng_state.pth").is_file():
        saved_by = 1
    else:
        return [f"no RNG state ({', '.join(rng_state_files(world_size))})"], []
    names = rng_state_files(saved_by)
    problems = [problem for name in names if (problem := _file_problem(folder, name))]
    if problems or saved_by == world_size:
        return problems, []
    return [], [f"saved by {saved_by} process(es), resumed by {world_size}: RNG state not restored exactly"]


def _inspect(checkpoint: str | os.PathLike, training_args: TrainingArguments) -> tuple[list[str], list[str]]:
    """(problems, notes) of a checkpoint folder for a run with `training_args` (see `checkpoint_problems`)."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        return [f"{folder} is not a folder"], []
    match = _CHECKPOINT_FOLDER.match(folder.name)
    step = int(match.group(1)) if match else None
    problems, notes = [], []
    if not (training_args.deepspeed or training_args.fsdp):
        problems += _weights_problems(folder)
        if not training_args.save_only_model:
            problems += [problem for name in OPTIMIZER_FILES if (problem := _file_problem(folder, name))]
    if not training_args.save_only_model:
        rng_problems, notes = _rng_state_check(folder, training_args.world_size)
        problems += rng_problems
    state_problem = _trainer_state_problem(folder, step)
    return problems + ([state_problem] if state_problem else []), notes


def checkpoint_problems(checkpoint: str | os.PathLike, training_args: TrainingArguments) -> list[str]:
    """
    Why a run with `training_args` cannot resume from the folder `checkpoint`; an empty list when it is complete.

    Args:
        checkpoint (`str` or `os.PathLike`): A `checkpoint-<step>` folder written by the Trainer.
        training_args (`TrainingArguments`): The resuming run's arguments: `save_only_model`, `deepspeed` and
            `fsdp` decide which files the Trainer wrote.

    Returns:
        `list[str]`: One short reason per missing or cut-off file (e.g. `"no optimizer.pt"`,
        `"model.safetensors is truncated (1024 of 4096 bytes)"`).
    """
    return _inspect(checkpoint, training_args)[0]


def _checkpoint_folders(output_dir: str) -> list[tuple[int, Path]]:
    """The `checkpoint-<step>` folders of `output_dir`, newest (highest step) first."""
    folders = []
    for entry in os.scandir(output_dir):
        match = _CHECKPOINT_FOLDER.match(entry.name)
        if match and entry.is_dir():
            folders.append((int(match.group(1)), Path(entry.path)))
    return sorted(folders, reverse=True)


def find_resume_checkpoint(training_args: TrainingArguments) -> str | None:
    """
    The checkpoint a run resumes from: `--resume_from_checkpoint` when given, else the newest complete
    `checkpoint-*` folder of `--output_dir` (`None` when there is none).

    Folders skipped on the way, newer than the one chosen, are logged with their reasons (`checkpoint_problems`);
    they are left in place, and the Trainer writes them again when the resumed run reaches their step.

    Raises:
        ValueError: `--resume_from_checkpoint` names a folder that is not a complete checkpoint (the message lists
            what is missing and the newest complete checkpoint of `--output_dir`, if any).
    """
    explicit = training_args.resume_from_checkpoint
    if explicit is not None:
        problems, notes = _inspect(explicit, training_args)
        if problems:
            newest = _newest_complete_checkpoint(training_args, log_skipped=False)
            hint = f" The newest complete checkpoint of --output_dir is {newest}." if newest else ""
            raise ValueError(
                f"--resume_from_checkpoint {str(explicit)!r} cannot be resumed from: {'; '.join(problems)}.{hint}"
            )
        _log_notes(explicit, notes)
        return str(explicit)
    return _newest_complete_checkpoint(training_args, log_skipped=True)


def _newest_complete_checkpoint(training_args: TrainingArguments, log_skipped: bool) -> str | None:
    output_dir = training_args.output_dir
    if output_dir is None or not os.path.isdir(output_dir):
        return None
    skipped = False
    for _, folder in _checkpoint_folders(output_dir):
        problems, notes = _inspect(folder, training_args)
        if not problems:
            if skipped:
                logger.warning("Resuming from %s, the newest complete checkpoint.", folder)
            if log_skipped:
                _log_notes(folder, notes)
            return str(folder)
        if log_skipped:
            logger.warning("Skipping incomplete checkpoint %s: %s.", folder, "; ".join(problems))
            skipped = True
    if skipped:
        logger.warning("No complete checkpoint in %s: training starts from step 0.", output_dir)
    return None


def _log_notes(folder, notes: list[str]) -> None:
    for note in notes:
        logger.warning("Checkpoint %s: %s.", folder, note)
