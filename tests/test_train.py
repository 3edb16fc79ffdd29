# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests of training/train.py (a thin script over `modeling_maxi.training`) on a tiny model and generated
videos."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor

import modeling_maxi  # noqa: F401  (registers the Auto classes)
from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.cli import parse_script_arguments
from modeling_maxi.loss import mil_nce_instance_loss
from modeling_maxi.training import MaxiTrainer, MaxiTrainingArguments
from modeling_maxi.training.data import TextBagCollator, TextBagVideoDataset, prepare_text_bag_dataset
from modeling_maxi.training.retrieval import video_to_bag_retrieval_accuracy
from tests.helpers.tiny_models import save_tiny_model
from tests.test_train_fixtures import (
    assert_script_fails_with_one_line,
    build_text_bag_dataset,
    save_text_bag_dataset,
    tiny_train_args,
)
from training.train import DataArguments, ModelArguments, main

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "training" / "configs" / "maxi_vitb16_k400.yaml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    bags = save_text_bag_dataset(root, videos_per_class=4, corrupt=1)
    model_dir = save_tiny_model(root / "model", num_frames=2)
    return root, bags, model_dir


def _args(workspace, output_dir, *extra):
    return tiny_train_args(*workspace, output_dir, *extra)


def parse_args(argv):
    """The script's three argument dataclasses, parsed as `main` parses them."""
    return parse_script_arguments((ModelArguments, DataArguments, MaxiTrainingArguments), argv)


def _losses(trainer):
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def test_paper_config_file_and_overrides():
    model_args, data_args, training_args = parse_args([str(CONFIG), "--use_cpu", "true", "--bf16", "false"])
    assert model_args.model_name_or_path == "openai/clip-vit-base-patch16"
    assert (data_args.num_frames, data_args.bag_size, data_args.filter_ratio) == (16, 16, 0.9)
    assert training_args.learning_rate == 5e-6 and training_args.lr_scheduler_type.value == "cosine"
    assert training_args.num_train_epochs == 10 and training_args.temperature_init == 0.02
    assert training_args.loss_variant == "mil_nce" and training_args.ensemble_ratio == 0.2
    assert training_args.activation_checkpointing is True
    assert training_args.optim.value == "adamw_torch"
    assert not (training_args.freeze_text_encoder or training_args.freeze_vision_encoder)
    _, data_args, training_args = parse_args(
        ["--config", str(CONFIG), "--bag_size", "8", "--loss_variant", "mil_nce_per_pair", "--use_cpu", "true",
         "--bf16", "false"]
    )  # fmt: skip
    assert data_args.bag_size == 8 and training_args.loss_variant == "mil_nce_per_pair"
    assert data_args.num_frames == 16  # untouched values still come from the file


def test_paper_config_documents_the_authors_run_and_keeps_the_global_contrast():
    """The YAML's default contrasts the global batch; the authors' run (its comment gives the command) is 4 processes x
    16 videos x gradient accumulation 4 with each process's own batch, the same 256 videos per update."""
    _, _, training_args = parse_args([str(CONFIG), "--use_cpu", "true", "--bf16", "false"])
    assert training_args.contrast_scope == "global"
    text = CONFIG.read_text()
    command = next(line for line in text.splitlines() if "--contrast_scope local" in line)
    flags = command.split("maxi_vitb16_k400.yaml", 1)[1].split()
    assert "--num_processes 4" in text and flags[flags.index("--contrast_scope") + 1] == "local"
    _, _, authors = parse_args(["--config", str(CONFIG), *flags, "--use_cpu", "true", "--bf16", "false"])
    layout = (authors.contrast_scope, authors.per_device_train_batch_size, authors.gradient_accumulation_steps)
    assert layout == ("local", 16, 4)
    assert 4 * authors.per_device_train_batch_size * authors.gradient_accumulation_steps == 256  # paper sec. 4.2
    yaml_batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    assert yaml_batch * int(text.split("--num_processes ", 1)[1].split()[0]) == 256


def test_augmentations_flag_defaults_to_the_paper_and_none_disables_all(tmp_path):
    common = ["--output_dir", str(tmp_path), "--use_cpu", "true"]
    assert parse_args(common)[1].augmentations == ["multiscale_crop", "flip", "color_jitter", "grayscale"]
    assert parse_args([*common, "--augmentations", "none"])[1].augmentations == []
    assert parse_args([*common, "--augmentations", "multiscale_crop"])[1].augmentations == ["multiscale_crop"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss_variant", "milnce"], "--loss_variant 'milnce' unknown"),
        (["--contrast_scope", "per_gpu"], "--contrast_scope 'per_gpu' unknown; choose from global, local"),
        (["--bag_size", "0"], "--bag_size must be >= 1, got 0"),
        (["--ensemble_ratio", "1.5"], "--ensemble_ratio must be in \\[0, 1\\], got 1.5"),
        (["--filter_ratio", "0"], "--filter_ratio must be in \\(0, 1\\], got 0"),
        (["--text_sources", "dictionary", "blip"], "--text_sources \\['blip'\\] unknown"),
        (["--augmentations", "flip", "mixup"], "--augmentations \\['mixup'\\] unknown"),
        (["--augmentations", "none", "flip"], "--augmentations \\['none'\\] unknown"),
    ],
)
def test_bad_arguments_fail_fast(flags, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        parse_args(["--output_dir", str(tmp_path), "--use_cpu", "true", *flags])


def test_script_user_error_ends_in_one_line(tmp_path):
    """A missing dataset folder: exit status 1 and one `error:` line naming it, before any model is loaded (bad
    values end the same way: they are refused while parsing, see `test_bad_arguments_fail_fast`)."""
    argv = ["--dataset_name", "./no_such_bags_folder", "--output_dir", str(tmp_path / "out"), "--use_cpu", "true",
            "--report_to", "none"]  # fmt: skip
    expected = ("--dataset_name './no_such_bags_folder'", "no such folder")
    assert_script_fails_with_one_line("train.py", argv, *expected, cwd=tmp_path)
    assert not (tmp_path / "out").exists()


def test_missing_dataset_column_fails_fast(workspace, tmp_path):
    root, _, _ = workspace
    broken = build_text_bag_dataset(tmp_path, videos_per_class=1).remove_columns("matched_text")
    broken.save_to_disk(str(tmp_path / "no_matched_text"))
    args = _args(workspace, tmp_path / "out", "--max_steps", "1")
    args[args.index("--dataset_name") + 1] = str(tmp_path / "no_matched_text")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['matched_text'\]"):
        main(args)


def test_resume_continues_with_identical_losses_and_exports_ensembled_folder(workspace, tmp_path):
    full = main(_args(workspace, tmp_path / "full", "--max_steps", "4", "--save_steps", "2"))
    full_losses = _losses(full)
    assert sorted(full_losses) == [1, 2, 3, 4]
    resumed = main(
        _args(
            workspace,
            tmp_path / "resumed",
            "--max_steps", "4",
            "--save_steps", "2",
            "--resume_from_checkpoint", str(tmp_path / "full" / "checkpoint-2"),
        )
    )  # fmt: skip
    resumed_losses = _losses(resumed)  # steps 1-2 come from the checkpoint's trainer_state.json
    assert sorted(resumed_losses) == [1, 2, 3, 4] and resumed.state.global_step == 4
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), step

    # Export: Hub-ready folder whose weights are 0.2 x base + 0.8 x fine-tuned (the step-4 checkpoint).
    out = tmp_path / "full"
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("MaxiVideoCLIPModel")
    assert AutoProcessor.from_pretrained(out).num_frames == 2  # the processor owns frame sampling
    for name in ("model.safetensors", "modeling_maxi_video_clip.py", "configuration_maxi_video_clip.py", "README.md"):
        assert (out / name).is_file(), name
    loaded = AutoModel.from_pretrained(out)
    assert isinstance(loaded, MaxiVideoCLIPModel)
    assert isinstance(AutoProcessor.from_pretrained(out), MaxiVideoProcessor)
    base = load_file(workspace[2] / "model.safetensors")
    tuned = load_file(out / "checkpoint-4" / "model.safetensors")
    exported = loaded.state_dict()
    for name in ("logit_scale", "text_projection.weight", "vision_model.encoder.layers.0.mlp.fc1.weight"):
        torch.testing.assert_close(exported[name], 0.2 * base[name] + 0.8 * tuned[name], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(tuned["text_projection.weight"], base["text_projection.weight"])
    card = (out / "README.md").read_text()
    assert "base_model:" not in card and str(workspace[2]) not in card  # a local base: named, never located
    assert "0.2 x base + 0.8 x fine-tuned" in card
    assert "loss_variant: mil_nce" in card and "Not evaluated yet." in card and "@inproceedings" in card
    assert "skipped: 1" in card or "skipped: 2" in card  # the unreadable video was counted, not fatal


@pytest.mark.timeout(300)
def test_learning_check_bags_become_retrievable(workspace, tmp_path):
    """A tiny random model learns to match videos to their informative bags: retrieval goes from chance to ~1."""
    root, bags, model_dir = workspace
    processor = MaxiVideoProcessor.from_pretrained(model_dir)
    prepared = prepare_text_bag_dataset(datasets.load_dataset(str(bags), split="train"))
    mean, std = processor.image_processor.image_mean, processor.image_processor.image_std

    def views(seed, training):
        return TextBagVideoDataset(prepared, str(root), 2, 3, 32, mean, std, seed=seed, training=training)

    collator = TextBagCollator(processor.tokenizer, 3, views(0, False).frame_shape)

    def accuracies(model):
        """Retrieval on un-augmented views, and on two fresh draws of augmented views (unseen seeds)."""
        plain = video_to_bag_retrieval_accuracy(model, views(0, False), collator)
        augmented = [video_to_bag_retrieval_accuracy(model, views(seed, True), collator) for seed in (101, 102)]
        return plain, sum(augmented) / 2

    initial = MaxiVideoCLIPModel.from_pretrained(model_dir)
    plain_before, augmented_before = accuracies(initial)
    assert plain_before <= 0.45 and augmented_before <= 0.45  # 4 balanced classes: chance is 0.25

    trainer = main(
        _args(
            workspace, tmp_path / "learn",
            "--max_steps", "100", "--per_device_train_batch_size", "8", "--learning_rate", "2e-3",
            "--warmup_steps", "5", "--logging_steps", "20", "--save_strategy", "no", "--ensemble_ratio", "0",
            "--max_train_samples", "16",  # leaves out the unreadable video: no wasted empty batches
        )
    )  # fmt: skip
    trained = trainer.model
    plain_after, augmented_after = accuracies(trained)
    assert augmented_after >= 0.85, (augmented_before, augmented_after)
    assert plain_after >= 0.6, (plain_before, plain_after)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.3 * losses[0], losses
    # Gradients reached the temperature (initialised at 1/0.02 = 50; logged every 20 steps) and both encoders.
    scales = [h["logit_scale"] for h in trainer.state.log_history if "logit_scale" in h]
    assert len(scales) == 5 and max(abs(scale - 50.0) for scale in scales) > 0.02, scales
    start, end = initial.state_dict(), trained.state_dict()
    for name in (
        "vision_model.encoder.layers.0.self_attn.q_proj.weight",
        "visual_projection.weight",
        "text_model.encoder.layers.0.self_attn.q_proj.weight",
        "text_projection.weight",
    ):
        assert (end[name] - start[name]).abs().max() > 1e-3, name


def _launch(workspace, tmp_path, num_processes, *extra):
    out = tmp_path / f"launch{num_processes}"
    # accelerate's own multi-CPU launcher needs mpirun; its torch.distributed launcher (`--multi_gpu`) with the
    # script's `--use_cpu true` runs the processes on CPU with gloo instead.
    launcher = ["--cpu"] if num_processes == 1 else ["--multi_gpu"]
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        *launcher, "--num_processes", str(num_processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(REPO / "training" / "train.py"),
        *_args(workspace, out, "--max_steps", "2", "--log_level", "info", "--save_strategy", "no", *extra),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return out, result.stdout + result.stderr


def _logged_losses(out) -> dict[int, float]:
    """The losses of a finished run, from the trainer_state.json that train.py saves next to the export."""
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}


@pytest.fixture(scope="module")
def two_process_launch(workspace, tmp_path_factory):
    """A 2-process CPU run (gloo) with the default global contrast: its output folder and log."""
    return _launch(workspace, tmp_path_factory.mktemp("launch_global"), 2)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("num_processes", [1, 2])
def test_accelerate_launch_cpu_smoke(workspace, tmp_path, num_processes, request):
    if num_processes == 1:
        out, log = _launch(workspace, tmp_path, num_processes)
    else:
        out, log = request.getfixturevalue("two_process_launch")
    assert f"Total train batch size (w. parallel, distributed & accumulation) = {4 * num_processes}" in log
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, MaxiVideoCLIPModel) and AutoProcessor.from_pretrained(out).num_frames == 2
    assert (out / "README.md").is_file() and (out / "train_results.json").is_file()
    if num_processes == 2:
        assert "Contrast scope global: each process's videos meet all processes' bags (gathered)." in log


@pytest.mark.timeout(420)
def test_two_process_local_contrast_scope_changes_the_loss_of_the_same_batches(workspace, tmp_path, two_process_launch):
    """`--contrast_scope local` (the authors' released code) reaches the loss through the script: the same first
    batches (same model, same data on each process) give another loss than with the bags of both processes."""
    out, log = _launch(workspace, tmp_path, 2, "--contrast_scope", "local")
    assert "Contrast scope local: each process's videos meet its own bags only." in log
    local, global_ = _logged_losses(out)[1], _logged_losses(two_process_launch[0])[1]
    assert abs(local - global_) > 1e-3, (local, global_)  # each video meets 4 bags, not the 8 of both processes


def _trainer(tmp_path, model, processor, **overrides):
    args = MaxiTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", temperature_init=None, **overrides
    )
    return MaxiTrainer(model=model, args=args, processing_class=processor, bag_size=2)


def test_compute_loss_aligns_bags_with_videos_and_survives_empty_batches(tiny_model_dir, tmp_path):
    model = MaxiVideoCLIPModel.from_pretrained(tiny_model_dir).train()
    processor = MaxiVideoProcessor.from_pretrained(tiny_model_dir)
    trainer = _trainer(tmp_path, model, processor, loss_variant="mil_nce_instance")
    prompts = ["a photo of a run. jogging", "a photo of a run. racing", "a photo of a swim. diving", "a swim"]
    tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    batch = {
        "pixel_values": torch.randn(2, 4, 3, 32, 32),
        "input_ids": tokens["input_ids"],
        "attention_mask": tokens["attention_mask"],
        "pseudo_labels": torch.tensor([1, 0]),
        "num_skipped": torch.tensor(3),
    }
    loss = trainer.compute_loss(model, dict(batch))
    outputs = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
    )
    # Texts 0-1 are video 0's bag, texts 2-3 video 1's.
    expected = mil_nce_instance_loss(
        outputs.video_embeds, outputs.text_embeds.reshape(2, 2, -1), batch["pseudo_labels"], model.logit_scale.exp(),
    )  # fmt: skip
    swapped = mil_nce_instance_loss(
        outputs.video_embeds, outputs.text_embeds.reshape(2, 2, -1)[[1, 0]], batch["pseudo_labels"],
        model.logit_scale.exp(),
    )  # fmt: skip
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, swapped)
    assert trainer.skipped_videos == 3

    empty = {
        "pixel_values": torch.zeros(0, 4, 3, 32, 32),
        "input_ids": torch.zeros(0, 1, dtype=torch.long),
        "attention_mask": torch.zeros(0, 1, dtype=torch.long),
        "pseudo_labels": torch.zeros(0, dtype=torch.long),
        "num_skipped": torch.tensor(2),
    }
    model.zero_grad()
    empty_loss = trainer.compute_loss(model, empty)
    empty_loss.backward()
    assert empty_loss.item() == 0.0 and trainer.skipped_videos == 5
    assert model.visual_projection.weight.grad is not None and model.text_projection.weight.grad is not None
    assert float(model.visual_projection.weight.grad.abs().sum()) == 0.0


def test_cross_entropy_variant_trains_against_class_prompts(workspace, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("swim\nrun\ncook\nsing\n")
    trainer = main(
        _args(workspace, tmp_path / "ce", "--max_steps", "2", "--loss_variant", "cross_entropy",
              "--class_names", str(names), "--save_strategy", "no", "--ensemble_ratio", "0")
    )  # fmt: skip
    losses = _losses(trainer)
    assert len(losses) == 2 and all(0 < value < 10 for value in losses.values())
    names.write_text("swim\nrun\n")
    with pytest.raises(ValueError, match="matched_label 3 is out of range"):
        main(_args(workspace, tmp_path / "ce2", "--max_steps", "1", "--loss_variant", "cross_entropy",
                   "--class_names", str(names)))  # fmt: skip
