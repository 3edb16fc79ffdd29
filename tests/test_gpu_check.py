# SPDX-License-Identifier: Apache-2.0
"""benchmarks/gpu_check.sh keeps working without a GPU: its tiny mode runs every measurement on the CPU (the real
sizes need a GPU and are refused here with a message saying so)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
ROWS = {
    "training, MaxiTrainer.train: loader + step": "clips/s",
    "training loader alone, 2 workers": "clips/s",
    "match stage, 2 frames, batch 2": "videos/s",
    "caption stage, 2 frames, batch 2": "videos/s",
}
RATES = ("train", "train_compute_only", "loader", "match", "match_compute_only", "caption", "caption_compute_only")


@pytest.fixture(scope="module")
def gpu_check():
    """benchmarks/gpu_check.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.timeout(180)
def test_tiny_mode_runs_every_measurement_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--tiny", "--json", str(tmp_path / "rates.json")],
        cwd=tmp_path,  # the script finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "gpu_check: TINY SMOKE RUN (toy sizes: not a measurement) on CPU" in out
    assert "training: 2 frames, batch 2, bag 3, fp32, activation checkpointing on" in out  # the YAML's, shrunk
    assert "| stage | rate | compute-only rate on this device | rate / compute-only |" in out
    for label, unit in ROWS.items():
        row = re.search(rf"\| {re.escape(label)} \| ([0-9.]+) {unit} \| ([0-9.]+) {unit} \| ([0-9.]+) \|", out)
        assert row, (label, out)
        rate, compute_only, ratio = map(float, row.groups())
        assert rate > 0 and compute_only > 0 and ratio == pytest.approx(rate / compute_only, abs=0.01, rel=0.01)
    rates = json.loads((tmp_path / "rates.json").read_text())
    assert all(rates[name] > 0 for name in RATES), rates
    assert rates["per_device_batch"] == 2 and rates["loader_workers"] == 2 and rates["device"] == "cpu"


def test_arguments_are_checked(gpu_check):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--tiny", "--seconds", "0"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--tiny", "--config", "no_such.yaml"])
    assert gpu_check.parse_args(["--tiny"]).seconds == 0.5
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.parse_args([])  # real sizes without a GPU: refused, pointing at --tiny


def test_real_sizes_are_the_papers_and_the_builds(gpu_check, tmp_path):
    """The real check measures what a run would use: ViT-B/16 at 224 px, the YAML's training settings, and the
    text-bag build's stage defaults (BLIP ViT-L/16 at 384 px)."""
    real = gpu_check.REAL
    assert real.clip_vision["hidden_size"] == 768 and real.clip_vision["patch_size"] == 16
    assert real.clip_vision["image_size"] == 224 and real.train_overrides == ()
    assert real.blip_vision["hidden_size"] == 1024 and real.blip_vision["num_hidden_layers"] == 24
    from modeling_maxi.text_bags.build_arguments import TextBagBuildArguments

    build = TextBagBuildArguments.__dataclass_fields__
    assert real.match_frames == build["num_frames"].default and real.match_batch == build["match_batch_size"].default
    assert real.caption_batch == build["caption_batch_size"].default
    assert real.caption_frames == build["caption_frames"].default
    assert real.caption_image_size == build["caption_image_size"].default
    assert real.max_new_tokens == build["caption_max_new_tokens"].default
    assert real.stage_dtype == build["dtype"].default
    _, data_args, training_args = gpu_check.training_arguments(
        str(gpu_check.CONFIG), real, str(tmp_path), torch.device("cpu")
    )
    assert (data_args.num_frames, data_args.bag_size) == (16, 16)
    assert training_args.per_device_train_batch_size == 32 and training_args.dataloader_num_workers == 8
    assert training_args.activation_checkpointing
