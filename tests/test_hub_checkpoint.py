# SPDX-License-Identifier: Apache-2.0
"""A checkpoint written by training/train.py from a local base is Hub-ready: its video processor loads with
AutoVideoProcessor, it carries its pipeline, `--update_model_card` of the evaluation writes `model-index` into its
card, and no card or pushed file holds a path of the machine it was made on."""

import fnmatch
import json
from pathlib import Path
from unittest import mock

import pytest
from huggingface_hub import ModelCard
from transformers import AutoProcessor, AutoVideoProcessor, pipeline

from modeling_maxi import MaxiVideoCLIPVideoProcessor
from modeling_maxi.pipelines import ZERO_SHOT_VIDEO_TASK
from modeling_maxi.training import export
from tests.helpers.tiny_models import save_tiny_model
from tests.helpers.videos import make_moving_square_frames, write_video
from tests.test_train_fixtures import save_text_bag_dataset
from training.evaluate_zero_shot import main as evaluate_main
from training.train import main as train_main

LABELS = ["swim", "run", "cook", "sing"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One short training run from a local tiny base; returns (machine-specific root, exported folder)."""
    root = tmp_path_factory.mktemp("hub_ready")
    bags = save_text_bag_dataset(root, videos_per_class=2)
    base = save_tiny_model(root / "toy_base", num_frames=2)
    out = root / "maxi-toy"
    train_main(
        [
            "--model_name_or_path", str(base),
            "--dataset_name", str(bags),
            "--video_root", str(root),
            "--num_frames", "2",
            "--bag_size", "3",
            "--per_device_train_batch_size", "4",
            "--max_steps", "1",
            "--save_steps", "1",
            "--report_to", "none",
            "--use_cpu", "true",
            "--disable_tqdm", "true",
            "--output_dir", str(out),
        ]
    )  # fmt: skip
    return root, out


def _pushed_files(folder: Path) -> list[Path]:
    """The files `push_exported_folder` uploads (its ignore patterns applied as huggingface_hub applies them)."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return [
        path
        for path in files
        if not any(fnmatch.fnmatch(path.relative_to(folder).as_posix(), p) for p in export.LOCAL_ONLY_FILES)
    ]


def test_the_card_and_every_pushed_file_hold_no_local_path(exported):
    root, out = exported
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model is None  # a local base is left out: the Hub reads base_model as a model id
    assert card.data.library_name == "transformers" and "maxi" in card.data.tags
    assert "a local folder `toy_base`" in card.text and "model_name_or_path: local:toy_base" in card.text
    pushed = _pushed_files(out)
    names = {path.name for path in pushed}
    assert {"README.md", "model.safetensors", "config.json", "video_preprocessor_config.json", "pipelines.py"} <= names
    assert "training_args.bin" not in names and not any("checkpoint-" in str(path) for path in pushed)
    for path in pushed:
        assert str(root).encode() not in path.read_bytes(), path.name
    assert str(root).encode() in (out / "training_args.bin").read_bytes()  # why that file stays local


def test_push_uploads_the_folder_without_its_local_only_files(exported, monkeypatch):
    _, out = exported
    api = mock.MagicMock()
    api.upload_folder.return_value.commit_url = "https://huggingface.co/user/maxi-toy/commit/1"
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    assert export.push_exported_folder(str(out), "user/maxi-toy", "hf_x").endswith("/commit/1")
    upload = api.upload_folder.call_args.kwargs
    assert upload["repo_id"] == "user/maxi-toy" and upload["folder_path"] == str(out)
    assert {"training_args.bin", "trainer_state.json", "checkpoint-*/**"} <= set(upload["ignore_patterns"])


def test_auto_video_processor_and_the_pipeline_load_from_the_exported_folder(exported):
    _, out = exported
    video_processor = AutoVideoProcessor.from_pretrained(out)
    assert isinstance(video_processor, MaxiVideoCLIPVideoProcessor) and video_processor.num_frames == 2
    assert AutoProcessor.from_pretrained(out).video_processor.to_dict() == video_processor.to_dict()
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"][ZERO_SHOT_VIDEO_TASK]["impl"] == "pipelines.ZeroShotVideoClassificationPipeline"
    classifier = pipeline(ZERO_SHOT_VIDEO_TASK, model=str(out))
    ranked = classifier(make_moving_square_frames(6, (32, 96), seed=1), candidate_labels=LABELS)
    assert sorted(r["label"] for r in ranked) == sorted(LABELS)


def test_evaluation_flag_writes_the_results_into_the_card(exported, tmp_path):
    root, out = exported
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(4):
        write_video(videos / f"v{index}.mp4", make_moving_square_frames(6, (32, 96), seed=index))
    (tmp_path / "labels.csv").write_text("id,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(LABELS)))
    (tmp_path / "test.txt").write_text("".join(f"v{index}.mp4 {index}\n" for index in range(4)))
    argv = [
        "--model", str(out),
        "--video-root", str(videos),
        "--labels", str(tmp_path / "labels.csv"),
        "--split-file", str(tmp_path / "test.txt"),
        "--dataset-name", "toy-actions",
        "--num-frames", "2",
        "--num-workers", "0",
        "--output-dir", str(tmp_path / "results"),
        "--update_model_card", "true",
    ]  # fmt: skip
    results = evaluate_main(argv)
    saved = json.loads((tmp_path / "results" / "zero_shot_toy-actions.json").read_text())
    card = ModelCard.load(out / "README.md")
    by_metric = {entry.metric_type: entry for entry in card.data.eval_results}
    assert by_metric["accuracy"].metric_value == round(saved["summary"]["top1"]["mean"], 2)
    assert set(by_metric) == {"accuracy"} and "top5" not in results["summary"]  # 4 classes: no top-5
    assert by_metric["accuracy"].dataset_type == "toy-actions" and card.data.model_name == "maxi-toy"
    assert "Not evaluated yet." not in card.text and "| toy-actions | test.txt | Top-1 accuracy (%) |" in card.text
    assert "These are the authors' numbers" in card.text
    text = (out / "README.md").read_text(encoding="utf-8")
    assert str(root) not in text and str(tmp_path) not in text
    with pytest.raises(FileNotFoundError, match="README.md"):
        evaluate_main([*argv[:1], str(tmp_path / "no-card"), *argv[2:]])
