# SPDX-License-Identifier: Apache-2.0
"""Runs training/train.py and SIGKILLs its own process in the middle of writing one checkpoint (test-only).

    python tests/helpers/kill_during_checkpoint.py CHECKPOINT_NAME MOMENT <train.py arguments>

`MOMENT` picks where inside `Trainer._save_checkpoint` the kill lands, so the window is hit every time instead of
by a race with a watcher:

- ``after_weights``: the weights, config and processor of ``CHECKPOINT_NAME`` are written, the optimizer,
  scheduler, RNG state and ``trainer_state.json`` are not (the state reported in issue 21);
- ``mid_trainer_state``: everything is written except the last file, ``trainer_state.json``, which is cut off
  halfway through.

Only the moment is chosen here; the process that dies is the real script with the real Trainer, killed by the
kernel (no Python cleanup, no `finally`, no flushing), as an out-of-memory kill or a pre-empted job would be.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transformers import TrainerState  # noqa: E402

from modeling_maxi.cli import run_script  # noqa: E402
from modeling_maxi.training import MaxiTrainer  # noqa: E402
from training.train import main  # noqa: E402

MOMENTS = ("after_weights", "mid_trainer_state")


def _kill_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(checkpoint_name: str, moment: str) -> None:
    """Patch the Trainer so that the process kills itself at `moment` while it writes `checkpoint_name`."""
    if moment == "after_weights":
        save_optimizer = MaxiTrainer._save_optimizer_and_scheduler

        def save_optimizer_or_die(self, output_dir):
            if os.path.basename(os.path.normpath(output_dir)) == checkpoint_name:
                _kill_now()
            return save_optimizer(self, output_dir)

        MaxiTrainer._save_optimizer_and_scheduler = save_optimizer_or_die
    elif moment == "mid_trainer_state":
        save_to_json = TrainerState.save_to_json

        def save_half_and_die(self, json_path):
            if os.path.basename(os.path.dirname(os.path.normpath(json_path))) != checkpoint_name:
                return save_to_json(self, json_path)
            save_to_json(self, json_path)
            text = Path(json_path).read_text(encoding="utf-8")
            Path(json_path).write_text(text[: len(text) // 2], encoding="utf-8")
            _kill_now()

        TrainerState.save_to_json = save_half_and_die
    else:
        raise ValueError(f"moment must be one of {MOMENTS}, got {moment!r}")


if __name__ == "__main__":
    arm(sys.argv[1], sys.argv[2])
    run_script(main, sys.argv[3:])
