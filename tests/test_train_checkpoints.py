# SPDX-License-Identifier: Apache-2.0
"""Resuming after a kill mid-checkpoint (issue 21): which folders count as complete, and an end-to-end run of
training/train.py killed with SIGKILL while it writes a checkpoint, rerun with the same command."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers.trainer_utils import get_last_checkpoint

from modeling_maxi.training import MaxiTrainingArguments, checkpoint_problems, find_resume_checkpoint
from modeling_maxi.training.checkpoints import rng_state_files
from tests.helpers.tiny_models import save_tiny_model
from tests.test_train_fixtures import save_text_bag_dataset, tiny_train_args
from training.train import main

REPO = Path(__file__).resolve().parents[1]
KILLER = REPO / "tests" / "helpers" / "kill_during_checkpoint.py"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    bags = save_text_bag_dataset(root, videos_per_class=4)
    model_dir = save_tiny_model(root / "model", num_frames=2)
    return root, bags, model_dir


def _args(workspace, output_dir, *extra):
    """4 steps, checkpoint-2 and checkpoint-4."""
    return tiny_train_args(*workspace, output_dir, "--max_steps", "4", "--save_steps", "2", *extra)


def _arguments(output_dir, **overrides) -> MaxiTrainingArguments:
    return MaxiTrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to="none", **overrides)


@pytest.fixture(scope="module")
def uninterrupted(workspace, tmp_path_factory):
    """A 4-step run saving checkpoint-2 and checkpoint-4, with nothing in its way."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    main(_args(workspace, out))
    return out


def _copy(checkpoint: Path, target: Path) -> Path:
    return Path(shutil.copytree(checkpoint, target))


def test_complete_checkpoint_has_every_file_the_trainer_writes(uninterrupted):
    folder = uninterrupted / "checkpoint-2"
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        assert (folder / name).is_file(), name  # what "complete" means is what the Trainer writes
    assert checkpoint_problems(folder, _arguments(uninterrupted)) == []
    assert rng_state_files(1) == ["rng_state.pth"]
    assert rng_state_files(3) == ["rng_state_0.pth", "rng_state_1.pth", "rng_state_2.pth"]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "trainer_state.json").unlink(), "no trainer_state.json"),
        (lambda f: (f / "optimizer.pt").unlink(), "no optimizer.pt"),
        (lambda f: (f / "scheduler.pt").unlink(), "no scheduler.pt"),
        (lambda f: (f / "rng_state.pth").unlink(), r"no RNG state \(rng_state.pth\)"),
        (lambda f: (f / "model.safetensors").unlink(), r"no weights \(model.safetensors or"),
        (lambda f: _truncate(f / "model.safetensors"), r"model.safetensors is truncated \(\d+ of \d+ bytes\)"),
        (lambda f: _truncate(f / "model.safetensors", 0.00001), "model.safetensors is truncated"),
        (lambda f: _truncate(f / "optimizer.pt", 0.9), r"optimizer.pt is truncated \(no closing zip record\)"),
        (lambda f: _truncate(f / "rng_state.pth", 0.9), "rng_state.pth is truncated"),
        (lambda f: _truncate(f / "trainer_state.json"), "trainer_state.json is not valid JSON"),
    ],
)
def test_each_missing_or_cut_off_file_makes_a_checkpoint_incomplete(uninterrupted, tmp_path, damage, reason):
    folder = _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-2")
    damage(folder)
    problems = checkpoint_problems(folder, _arguments(tmp_path))
    assert len(problems) == 1, problems
    assert re.search(reason, problems[0]), problems


def test_step_of_trainer_state_must_match_the_folder(uninterrupted, tmp_path):
    folder = _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-6")
    assert checkpoint_problems(folder, _arguments(tmp_path)) == [
        "trainer_state.json holds global_step 2, the folder name says 6"
    ]


def test_sharded_weights_need_every_shard(uninterrupted, tmp_path):
    folder = _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-2")
    weights = load_file(folder / "model.safetensors")
    names = sorted(weights)
    (folder / "model.safetensors").unlink()
    half = len(names) // 2
    save_file({n: weights[n] for n in names[:half]}, folder / "model-00001-of-00002.safetensors")
    save_file({n: weights[n] for n in names[half:]}, folder / "model-00002-of-00002.safetensors")
    index = {n: "model-00001-of-00002.safetensors" if i < half else "model-00002-of-00002.safetensors"
             for i, n in enumerate(names)}  # fmt: skip
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    assert checkpoint_problems(folder, _arguments(tmp_path)) == []
    (folder / "model-00002-of-00002.safetensors").unlink()
    assert checkpoint_problems(folder, _arguments(tmp_path)) == ["no model-00002-of-00002.safetensors"]


def _run_of(world_size, output_dir):
    """The parts of `TrainingArguments` that `find_resume_checkpoint` reads, for a run of `world_size` processes."""
    return SimpleNamespace(
        world_size=world_size, save_only_model=False, deepspeed=None, fsdp=None, output_dir=str(output_dir),
        resume_from_checkpoint=None,
    )  # fmt: skip


def test_rng_state_of_every_process_of_the_saving_run_is_needed(uninterrupted, tmp_path, caplog):
    """Each process writes its RNG state; a gap means a process died before writing its own. A checkpoint saved by
    another number of processes is complete, and resuming from it says the RNG state is not restored exactly."""
    folder = _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-2")
    (folder / "rng_state.pth").rename(folder / "rng_state_0.pth")
    shutil.copy(folder / "rng_state_0.pth", folder / "rng_state_1.pth")
    shutil.copy(folder / "rng_state_0.pth", folder / "rng_state_2.pth")
    assert checkpoint_problems(folder, _run_of(3, tmp_path)) == []
    (folder / "rng_state_1.pth").unlink()  # process 1 was killed before it wrote its RNG state
    assert checkpoint_problems(folder, _run_of(3, tmp_path)) == ["no rng_state_1.pth"]
    assert checkpoint_problems(folder, _run_of(1, tmp_path)) == ["no rng_state_1.pth"]
    (folder / "rng_state_2.pth").unlink()
    assert checkpoint_problems(folder, _run_of(2, tmp_path)) == ["no rng_state_1.pth"]  # n >= 2 files or none
    (folder / "rng_state_0.pth").unlink()
    assert checkpoint_problems(folder, _run_of(2, tmp_path)) == ["no RNG state (rng_state_0.pth, rng_state_1.pth)"]

    shutil.copy(uninterrupted / "checkpoint-2" / "rng_state.pth", folder / "rng_state.pth")  # saved by one process
    with caplog.at_level(logging.WARNING, logger="modeling_maxi.training.checkpoints"):
        assert find_resume_checkpoint(_run_of(4, tmp_path)) == str(folder)
    assert [r.getMessage() for r in caplog.records] == [
        f"Checkpoint {folder}: saved by 1 process(es), resumed by 4: RNG state not restored exactly."
    ]


def test_save_only_model_checkpoints_need_only_weights_and_state(uninterrupted, tmp_path):
    folder = _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-2")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (folder / name).unlink()
    assert checkpoint_problems(folder, _arguments(tmp_path, save_only_model=True)) == []
    expected = ["no optimizer.pt", "no scheduler.pt", "no RNG state (rng_state.pth)"]
    assert checkpoint_problems(folder, _arguments(tmp_path)) == expected


def test_newest_complete_checkpoint_is_chosen_and_the_skipped_ones_are_logged(uninterrupted, tmp_path, caplog):
    for step in (2, 4):
        _copy(uninterrupted / f"checkpoint-{step}", tmp_path / f"checkpoint-{step}")
    _copy(uninterrupted / "checkpoint-4", tmp_path / "checkpoint-6")
    (tmp_path / "checkpoint-6" / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-8.tmp").mkdir()  # not a checkpoint name: ignored, as by the Trainer
    assert get_last_checkpoint(str(tmp_path)).endswith("checkpoint-10")  # what transformers would resume from
    with caplog.at_level(logging.WARNING, logger="modeling_maxi.training.checkpoints"):
        chosen = find_resume_checkpoint(_arguments(tmp_path))
    assert chosen == str(tmp_path / "checkpoint-4")
    messages = [record.getMessage() for record in caplog.records]
    assert any("checkpoint-10: no weights" in m and "no trainer_state.json" in m for m in messages), messages
    assert any(m.endswith("checkpoint-6: no trainer_state.json.") for m in messages), messages
    assert any("Resuming from" in m and m.count("checkpoint-4") == 1 for m in messages), messages
    assert not any("checkpoint-2" in m for m in messages)


def test_explicit_incomplete_checkpoint_fails_naming_what_is_missing(uninterrupted, tmp_path):
    _copy(uninterrupted / "checkpoint-2", tmp_path / "checkpoint-2")
    broken = _copy(uninterrupted / "checkpoint-4", tmp_path / "checkpoint-4")
    (broken / "optimizer.pt").unlink()
    args = _arguments(tmp_path, resume_from_checkpoint=str(broken))
    with pytest.raises(ValueError, match=r"checkpoint-4' cannot be resumed from: no optimizer.pt\. .*checkpoint-2\."):
        find_resume_checkpoint(args)
    assert find_resume_checkpoint(_arguments(tmp_path, resume_from_checkpoint=str(tmp_path / "checkpoint-2")))
    assert find_resume_checkpoint(_arguments(tmp_path / "no_such_folder")) is None


def _kill_while_saving(workspace, output_dir, checkpoint_name, moment):
    # As many threads as the in-process runs: the same reduction order, so the weights can be compared bit for bit.
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, str(KILLER), checkpoint_name, moment, *_args(workspace, output_dir)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", ["after_weights", "mid_trainer_state"])
def test_run_killed_while_writing_a_checkpoint_resumes_to_the_uninterrupted_weights(
    workspace, uninterrupted, tmp_path, moment, caplog
):
    out = tmp_path / "out"
    _kill_while_saving(workspace, out, "checkpoint-4", moment)
    killed = out / "checkpoint-4"
    if moment == "after_weights":  # the state of issue 21: weights, no optimizer, no trainer_state.json
        assert (killed / "model.safetensors").is_file() and not (killed / "optimizer.pt").exists()
        assert not (killed / "trainer_state.json").exists()
    else:
        assert (killed / "optimizer.pt").is_file() and (killed / "rng_state.pth").is_file()
        with pytest.raises(ValueError):
            json.loads((killed / "trainer_state.json").read_text())
    assert not (out / "model.safetensors").exists()  # the run never reached its export
    assert get_last_checkpoint(str(out)) == str(killed)  # the folder transformers' automatic resume would take

    with caplog.at_level(logging.WARNING):
        resumed = main(_args(workspace, out))  # the same command again
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"Skipping incomplete checkpoint {killed}" in m for m in messages), messages
    assert any(f"Resuming from {out / 'checkpoint-2'}" in m for m in messages), messages
    # The cut-off trainer_state.json went first when checkpoint-4 was written again (the new one comes last).
    rewritten = [m for m in messages if m.startswith(f"Writing over the earlier {killed}")]
    assert len(rewritten) == (1 if moment == "mid_trainer_state" else 0), messages
    assert resumed.state.global_step == 4
    assert checkpoint_problems(killed, _arguments(out)) == []  # written again, whole this time

    for name in ("checkpoint-4/model.safetensors", "model.safetensors"):  # the last checkpoint and the export
        expected, got = load_file(uninterrupted / name), load_file(out / name)
        assert sorted(got) == sorted(expected)
        for key in expected:
            torch.testing.assert_close(
                got[key], expected[key], rtol=0, atol=0, msg=lambda m, name=name, key=key: f"{name}: {key}: {m}"
            )
    losses = {h["step"]: h["loss"] for h in resumed.state.log_history if "loss" in h}
    expected_losses = {
        h["step"]: h["loss"]
        for h in json.loads((uninterrupted / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
        if "loss" in h
    }
    assert losses == pytest.approx(expected_losses, rel=1e-6)
