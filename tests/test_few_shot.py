# SPDX-License-Identifier: Apache-2.0
"""Few-shot training (CE over class prompts) on a tiny model and generated videos, evaluated with the zero-shot
machinery."""

import json

import pytest
import torch
from transformers import HfArgumentParser

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.evaluation import FewShotTrainingArguments, PromptClassifier
from tests.helpers.videos import make_moving_square_frames, write_video
from tests.test_train_fixtures import assert_script_fails_with_one_line
from training.few_shot import DataArguments, ModelArguments
from training.few_shot import main as few_shot_main

CLASS_NAMES = ["run", "jump", "swim"]


@pytest.fixture(scope="module")
def few_shot_data(tmp_path_factory):
    """2-shot, 3-way: six generated clips, a label CSV and a `train1_few_shot_2.txt`-style list."""
    root = tmp_path_factory.mktemp("few_shot_data")
    (root / "videos").mkdir()
    lines = []
    for index in range(6):
        write_video(root / "videos" / f"clip_{index}.mp4", make_moving_square_frames(8, (48, 80), seed=index))
        lines.append(f"clip_{index}.mp4 {index % 3}")
    (root / "train1_few_shot_2.txt").write_text("\n".join(lines) + "\n")
    (root / "labels.csv").write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(CLASS_NAMES)))
    return root


def few_shot_argv(data, model_dir, output_dir, train_file=None):
    return [
        "--model", str(model_dir),
        "--video-root", str(data / "videos"),
        "--labels", str(data / "labels.csv"),
        "--train-split-file", str(train_file or data / "train1_few_shot_2.txt"),
        "--eval-split-file", str(data / "train1_few_shot_2.txt"),
        "--num-frames", "4",
        "--output-dir", str(output_dir),
        "--learning-rate", "1e-3",
        "--num-train-epochs", "10",
        "--per-device-train-batch-size", "6",
        "--warmup-steps", "0",
        "--label-smoothing", "0",
        "--save-strategy", "no",
        "--eval-before-training",
        "--seed", "0",
        "--dataloader-pin-memory", "false",
    ]  # fmt: skip


def test_few_shot_training_improves_accuracy_on_its_classes(few_shot_data, tiny_model_dir, tmp_path):
    output_dir = tmp_path / "run"
    results = few_shot_main(few_shot_argv(few_shot_data, tiny_model_dir, output_dir))
    before = results["before_training"]["summary"]["top1"]["mean"]
    after = results["after_training"]["summary"]["top1"]["mean"]
    assert after > before
    assert after == 100.0
    saved = json.loads((output_dir / "few_shot_custom_2shot_after_training.json").read_text())
    assert saved["splits"]["train1_few_shot_2.txt"]["num_evaluated"] == 6
    assert saved["shots"] == 2

    trained = MaxiVideoCLIPModel.from_pretrained(output_dir)
    initial = MaxiVideoCLIPModel.from_pretrained(tiny_model_dir)
    changed = [
        name for name, tensor in trained.state_dict().items() if not torch.equal(tensor, initial.state_dict()[name])
    ]
    assert any(name.startswith("text_model.") for name in changed), "the text encoder is fine-tuned too"
    assert any(name.startswith("vision_model.") for name in changed)
    MaxiVideoProcessor.from_pretrained(output_dir)


def test_missing_training_videos_fail_or_are_listed(few_shot_data, tiny_model_dir, tmp_path):
    train_file = tmp_path / "with_missing.txt"
    train_file.write_text((few_shot_data / "train1_few_shot_2.txt").read_text() + "absent.mp4 1\n")
    argv = few_shot_argv(few_shot_data, tiny_model_dir, tmp_path / "run", train_file)
    with pytest.raises(FileNotFoundError, match=r"1 of 7 training videos .* missing .*absent.mp4"):
        few_shot_main(argv)
    argv = [a if a != "10" else "1" for a in argv if a != "--eval-before-training"]
    results = few_shot_main(argv + ["--skip-missing-videos"])
    assert results["after_training"]["missing_training_videos"] == ["absent.mp4"]


def test_prompt_classifier_scores_like_the_model_and_uses_cross_entropy(few_shot_data, tiny_model_dir):
    model = MaxiVideoCLIPModel.from_pretrained(tiny_model_dir).eval()
    processor = MaxiVideoProcessor.from_pretrained(tiny_model_dir)
    classifier = PromptClassifier.from_class_names(model, processor, CLASS_NAMES, label_smoothing=0.1)
    paths = [str(few_shot_data / "videos" / f"clip_{i}.mp4") for i in range(3)]
    inputs = processor(videos=paths, text=[f"a photo of a {n}." for n in CLASS_NAMES], num_frames=4)
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        expected = model(**inputs).logits_per_video
        output = classifier(pixel_values=inputs["pixel_values"], labels=labels)
    torch.testing.assert_close(output["logits"], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        output["loss"], torch.nn.functional.cross_entropy(expected, labels, label_smoothing=0.1), rtol=1e-4, atol=1e-4
    )
    assert "prompt_input_ids" not in classifier.state_dict()
    with pytest.raises(ValueError, match="label_smoothing"):
        PromptClassifier.from_class_names(model, processor, CLASS_NAMES, label_smoothing=1.0)


def test_paper_defaults():
    parser = HfArgumentParser((ModelArguments, DataArguments, FewShotTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(
        args=["--model", "m", "--video-root", "v", "--dataset", "hmdb51", "--output-dir", "o"]
    )
    assert model_args.num_frames == 32
    assert training_args.learning_rate == 2e-6
    assert training_args.per_device_train_batch_size == 64
    assert training_args.num_train_epochs == 50
    assert training_args.lr_scheduler_type == "cosine"


def test_script_user_error_ends_in_one_line(few_shot_data, tmp_path):
    """A K without a K-shot list: exit status 1 and one `error:` line naming the bad value, before any model loads."""
    argv = ["--model", str(tmp_path / "no_model"), "--video-root", str(few_shot_data / "videos"), "--dataset",
            "hmdb51", "--shots", "3", "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert_script_fails_with_one_line("few_shot.py", argv, "shots=3")
    assert not (tmp_path / "out" / "model.safetensors").exists()
