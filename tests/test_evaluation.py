# SPDX-License-Identifier: Apache-2.0
"""Zero-shot evaluation end to end on generated mp4 datasets in the protocol's formats: the reported metrics must equal
the ones computed here from the model's own logits, and missing / unreadable videos must be reported."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_maxi import MaxiVideoCLIPModel, MaxiVideoProcessor
from modeling_maxi.evaluation import (
    EvalSplit,
    VideoSample,
    evaluate_splits,
    format_markdown_table,
    load_evaluation_model,
    load_split,
    predict_split,
)
from tests.helpers.videos import make_moving_square_frames, write_corrupt_video, write_video
from tests.test_train_fixtures import assert_script_fails_with_one_line
from training.evaluate_zero_shot import main as evaluate_main

CLASS_NAMES = ["run", "jump", "swim", "eat", "sleep", "dance"]
NUM_VIDEOS = 8
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory):
    """8 readable mp4 clips under clips/, a corrupt one, a label CSV and a single-label split file naming a missing
    video, in the protocol's formats."""
    root = tmp_path_factory.mktemp("zero_shot_data")
    clips = root / "videos" / "clips"
    clips.mkdir(parents=True)
    for index in range(NUM_VIDEOS):
        write_video(clips / f"v{index}.mp4", make_moving_square_frames(8, (48, 80), seed=index))
    write_corrupt_video(clips / "bad.mp4")
    labels_csv = root / "labels.csv"
    labels_csv.write_text("id,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(CLASS_NAMES)))
    single = [f"clips/v{index}.mp4 {(index * 5) % 6}" for index in range(NUM_VIDEOS)]
    single.insert(3, "clips/gone.mp4 2")
    single.insert(6, "clips/bad.mp4 1")
    (root / "single.txt").write_text("\n".join(single) + "\n")
    return root


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    return MaxiVideoCLIPModel.from_pretrained(tiny_model_dir).eval(), MaxiVideoProcessor.from_pretrained(tiny_model_dir)


def model_logits(model, processor, paths, class_names):
    """Logits of the model's own forward pass: one batch, the protocol's single prompt."""
    inputs = processor(videos=[str(p) for p in paths], text=[f"a photo of a {n}." for n in class_names], num_frames=4)
    with torch.no_grad():
        return model(**inputs).logits_per_video.numpy()


def top_k_by_hand(logits, labels, k):
    return 100.0 * np.mean([label in np.argsort(-row)[:k] for row, label in zip(logits, labels)])


def average_precision_by_hand(logits, targets):
    values = []
    for c in range(targets.shape[1]):
        if targets[:, c].sum() == 0:
            continue
        hits = targets[np.argsort(-logits[:, c]), c]
        values.append((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits == 1].mean())
    return 100.0 * np.mean(values), len(values)


def test_cli_single_label_metrics_equal_the_models_logits(video_dataset, tiny_model_dir, model_and_processor, tmp_path):
    results = evaluate_main(
        [
            "--model", str(tiny_model_dir),
            "--video-root", str(video_dataset / "videos"),
            "--labels", str(video_dataset / "labels.csv"),
            "--split-file", str(video_dataset / "single.txt"),
            "--num-frames", str(NUM_FRAMES),
            "--batch-size", "3",
            "--num-workers", "0",
            "--output-dir", str(tmp_path),
            "--dataset-name", "toy",
        ]
    )  # fmt: skip
    saved = json.loads((tmp_path / "zero_shot_toy.json").read_text())
    assert saved["summary"] == results["summary"]
    split = saved["splits"]["single.txt"]
    assert (split["num_videos"], split["num_evaluated"], split["num_missing"], split["num_unreadable"]) == (10, 8, 1, 1)
    assert {(f["path"], f["reason"]) for f in split["failed_videos"]} == {
        ("clips/gone.mp4", "missing"),
        ("clips/bad.mp4", "unreadable"),
    }

    model, processor = model_and_processor
    paths = [video_dataset / "videos" / "clips" / f"v{i}.mp4" for i in range(NUM_VIDEOS)]
    labels = [(i * 5) % 6 for i in range(NUM_VIDEOS)]
    logits = model_logits(model, processor, paths, CLASS_NAMES)
    assert split["top1"] == pytest.approx(top_k_by_hand(logits, labels, 1), abs=1e-9)
    assert split["top5"] == pytest.approx(top_k_by_hand(logits, labels, 5), abs=1e-9)
    assert saved["summary"]["top1"] == {"mean": pytest.approx(split["top1"]), "std": 0.0}

    table = (tmp_path / "zero_shot_toy.md").read_text()
    assert f"| toy | single.txt | 4 | {split['top1']:.1f} | {split['top5']:.1f} | - | 8 / 10 |" in table
    assert "1 missing and 1 unreadable videos were left out" in table


def test_predicted_scores_align_with_split_order_across_failures(video_dataset, model_and_processor):
    model, processor = model_and_processor
    samples = [VideoSample(f"clips/v{i}.mp4", (i % 6,)) for i in range(NUM_VIDEOS)]
    samples.insert(2, VideoSample("clips/gone.mp4", (0,)))
    samples.insert(6, VideoSample("clips/bad.mp4", (1,)))
    split = EvalSplit("toy", "1", CLASS_NAMES, samples)
    # two decoding worker processes: failures and order must survive the trip back
    predictions = predict_split(
        model, processor, split, video_dataset / "videos", num_frames=NUM_FRAMES, batch_size=2, num_workers=2
    )
    assert predictions.sample_indices.tolist() == [0, 1, 3, 4, 5, 7, 8, 9]
    paths = [video_dataset / "videos" / samples[i].path for i in predictions.sample_indices]
    expected = model_logits(model, processor, paths, CLASS_NAMES)
    np.testing.assert_allclose(predictions.scores, expected, rtol=1e-4, atol=1e-4)
    assert predictions.labels == [samples[i].labels for i in predictions.sample_indices]
    assert [(f.path, f.reason) for f in predictions.failures] == [
        ("clips/gone.mp4", "missing"),
        ("clips/bad.mp4", "unreadable"),
    ]


def test_missing_video_can_stop_the_evaluation(video_dataset, model_and_processor):
    model, processor = model_and_processor
    split = EvalSplit("toy", "1", CLASS_NAMES, [VideoSample("clips/v0.mp4", (0,)), VideoSample("nowhere.mp4", (1,))])
    with pytest.raises(FileNotFoundError, match="video 'nowhere.mp4' is missing"):
        predict_split(model, processor, split, video_dataset / "videos", num_frames=NUM_FRAMES, missing_videos="error")
    with pytest.raises(ValueError, match="missing_videos"):
        predict_split(model, processor, split, video_dataset / "videos", missing_videos="ignore")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        predict_split(model, processor, split, video_dataset / "no_such_root", num_frames=NUM_FRAMES)


def test_mean_and_std_over_splits(video_dataset, model_and_processor):
    model, processor = model_and_processor
    first = EvalSplit("toy", "1", CLASS_NAMES, [VideoSample(f"clips/v{i}.mp4", (i % 6,)) for i in range(4)])
    second = EvalSplit("toy", "2", CLASS_NAMES, [VideoSample(f"clips/v{i}.mp4", (i % 6,)) for i in range(4, 8)])
    results = evaluate_splits(
        model, processor, [first, second], video_dataset / "videos", num_frames=NUM_FRAMES, batch_size=4
    )
    paths = [video_dataset / "videos" / f"clips/v{i}.mp4" for i in range(8)]
    logits = model_logits(model, processor, paths, CLASS_NAMES)
    per_split = [top_k_by_hand(logits[:4], [0, 1, 2, 3], 1), top_k_by_hand(logits[4:], [4, 5, 0, 1], 1)]
    assert results["splits"]["1"]["top1"] == pytest.approx(per_split[0])
    assert results["splits"]["2"]["top1"] == pytest.approx(per_split[1])
    assert results["summary"]["top1"]["mean"] == pytest.approx(np.mean(per_split))
    assert results["summary"]["top1"]["std"] == pytest.approx(np.std(per_split))
    assert results["summary"]["num_splits"] == 2 and results["summary"]["num_evaluated"] == 8
    mean, std = results["summary"]["top5"]["mean"], results["summary"]["top5"]["std"]
    assert f"| toy | 1, 2 | 4 | {np.mean(per_split):.1f} ± {np.std(per_split):.1f} | {mean:.1f} ± {std:.1f} |" in (
        format_markdown_table(results)
    )


def test_builtin_charades_multi_label_map_and_missing_count(tmp_path, tiny_model_dir, model_and_processor):
    """The built-in Charades split (1,814 videos) with only its first three videos on disk: mAP over those three
    equals the hand-computed mAP of the model's logits, and the 1,811 others are reported missing."""
    split = load_split("charades", "1")
    video_root = tmp_path / "charades"
    video_root.mkdir()
    present = split.samples[:3]
    for seed, sample in enumerate(present):
        write_video(video_root / sample.path, make_moving_square_frames(8, (48, 80), seed=10 + seed))
    results = evaluate_main(
        [
            "--model", str(tiny_model_dir),
            "--dataset", "charades",
            "--video-root", str(video_root),
            "--num-frames", str(NUM_FRAMES),
            "--batch-size", "64",
            "--num-workers", "0",
            "--output-dir", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    result = results["splits"]["1"]
    assert (result["num_videos"], result["num_evaluated"], result["num_missing"]) == (1814, 3, 1811)
    assert "top1" not in result

    model, processor = model_and_processor
    logits = model_logits(model, processor, [video_root / s.path for s in present], split.class_names)
    targets = np.zeros((3, len(split.class_names)), dtype=int)
    for row, sample in enumerate(present):
        targets[row, list(sample.labels)] = 1
    expected, num_classes = average_precision_by_hand(logits, targets)
    assert result["mAP"] == pytest.approx(expected, abs=1e-9)
    assert result["num_classes_evaluated"] == num_classes == len({c for s in present for c in s.labels})
    table = Path(tmp_path / "out" / "zero_shot_charades.md").read_text()
    assert f"| Charades | 1 | 4 | - | - | {expected:.1f} | 3 / 1814 |" in table
    assert "1811 missing" in table


def test_cli_validates_dataset_arguments(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="Give --dataset"):
        evaluate_main(["--model", str(tiny_model_dir), "--video-root", str(tmp_path)])
    with pytest.raises(ValueError, match=r"unknown --splits \['4'\]"):
        evaluate_main(["--model", str(tiny_model_dir), "--video-root", str(tmp_path), "--dataset", "hmdb51",
                       "--splits", "1", "4"])  # fmt: skip
    with pytest.raises(ValueError, match="ensemble-ratio"):
        evaluate_main(["--model", str(tiny_model_dir), "--video-root", str(tmp_path), "--dataset", "hmdb51",
                       "--ensemble-base", str(tiny_model_dir), "--ensemble-ratio", "1.5"])  # fmt: skip


def test_script_user_error_ends_in_one_line(tmp_path):
    """A missing split file: exit status 1 and one `error:` line naming it, before any model is loaded."""
    (tmp_path / "labels.csv").write_text("id,name\n0,run\n")
    missing = tmp_path / "no_such_split.txt"
    argv = ["--model", str(tmp_path / "no_model"), "--video-root", str(tmp_path), "--labels",
            str(tmp_path / "labels.csv"), "--split-file", str(missing),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert_script_fails_with_one_line("evaluate_zero_shot.py", argv, str(missing))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ratio", [1.0, 0.25])
def test_cli_weight_space_ensemble_mixes_the_base_in(tmp_path, tiny_model_dir, ratio):
    from tests.helpers.tiny_models import save_tiny_model

    base_dir = save_tiny_model(tmp_path / "base", seed=7)
    model, _ = load_evaluation_model(
        str(tiny_model_dir), ensemble_base=str(base_dir), ensemble_ratio=ratio, device="cpu"
    )
    base = MaxiVideoCLIPModel.from_pretrained(base_dir).state_dict()
    finetuned = MaxiVideoCLIPModel.from_pretrained(tiny_model_dir).state_dict()
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, ratio * base[name] + (1 - ratio) * finetuned[name])
