# SPDX-License-Identifier: Apache-2.0
"""The text-bag build as a user runs it: over N processes with one `accelerate launch`, resumed after SIGKILLs, and
the README recipe (build with the defaults, then `training/train.py` with the paper's YAML filter)."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_scripts import build_text_bags
from modeling_maxi.dictionaries import load_class_names
from modeling_maxi.text_bags.filtering import PAPER_TRAINING_FILTER, num_kept
from modeling_maxi.text_bags.publishing import BUILD_RECORD_NAME, PUBLISHING_DIR_NAME
from modeling_maxi.text_bags.stages import StageStore
from modeling_maxi.training import load_text_bag_build_filter, load_text_bag_dataset, prepare_training_videos
from tests.helpers.videos import write_video_tree
from toy_world.llm_server import OpenAICompatibleServer

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "dataset_scripts" / "build_text_bags.py"
KILLED_BUILD = REPO / "tests" / "helpers" / "killed_build.py"
TRAIN_CONFIG = REPO / "training" / "configs" / "maxi_vitb16_k400.yaml"
FLOAT_COLUMNS = ("match_score", "top5_scores", "match_margin")


def build_argv(videos, dictionary_file, tiny_model_dir, output_dir, *extra):
    """Build flags with the defaults but for the tiny CLIP, no captioner (unless `extra` names one) and small chunks."""
    return [
        "--videos", str(videos),
        "--dictionary", str(dictionary_file),
        "--clip-model", str(tiny_model_dir),
        "--output-dir", str(output_dir),
        "--num-frames", "4",
        "--captioner", "none",
        "--match-batch-size", "2",
        "--chunk-size", "3",
        "--decode-workers", "1",
        *extra,
    ]  # fmt: skip


def subprocess_env():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OPENAI_API_KEY": "sk-test"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("MAXI_DEBUG", None)
    return env


def rows_by_id(output_dir, config):
    rows = load_dataset(str(output_dir), config, split="train", cache_dir=str(Path(output_dir).parent / "hf_cache"))
    return {row["video_id"]: row for row in rows}


def assert_same_rows(actual_dir, expected_dir):
    """Every configuration of the two published folders holds the same rows (scores to float precision)."""
    configs = json.loads((expected_dir / BUILD_RECORD_NAME).read_text())["configs"]
    assert json.loads((actual_dir / BUILD_RECORD_NAME).read_text())["configs"] == configs
    for config in configs:
        actual, expected = rows_by_id(actual_dir, config), rows_by_id(expected_dir, config)
        assert sorted(actual) == sorted(expected)
        for video_id, row in actual.items():
            reference = dict(expected[video_id])
            row = dict(row)
            for column in FLOAT_COLUMNS:
                assert row.pop(column) == pytest.approx(reference.pop(column), abs=1e-5), (config, video_id, column)
            assert row == reference


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_of_one_accelerate_launch_publish_the_rows_of_one(
    video_tree, dictionary_file, tiny_model_dir, tiny_blip_dir, tmp_path
):
    # with the tiny captioner: the frame pass's captions and the caption-verb chunks are split over the ranks too
    captions = ["--captioner", tiny_blip_dir, "--caption-image-size", "32", "--caption-max-new-tokens", "4"]
    single = tmp_path / "single"
    build_text_bags.main(build_argv(video_tree, dictionary_file, tiny_model_dir, single, *captions))
    double = tmp_path / "double"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
    ]  # fmt: skip
    argv = build_argv(video_tree, dictionary_file, tiny_model_dir, double, *captions, "--rank-wait-timeout", "240")
    result = subprocess.run(
        [*launch, str(BUILD_SCRIPT), *argv], env=subprocess_env(), capture_output=True, text=True, timeout=420
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_rows(double, single)
    # 9 videos in chunks of 3: rank 0 matched chunks 1 and 3, rank 1 chunk 2; one dataset, published by rank 0
    logs = {rank: (double / "logs" / f"build.rank{rank}.log").read_text() for rank in (0, 1)}
    assert "Stage 'match': mapping chunk 2/3 (rank 1)" in logs[1]
    assert "Stage 'caption_verbs': mapping chunk" in logs[1]
    assert any(row["captions"] for row in rows_by_id(double, "dictionary_captions").values())
    assert "mapping chunk 1/3 (rank 0)" in logs[0] and "mapping chunk 3/3 (rank 0)" in logs[0]
    assert "chunk 2/3 (rank 0)" not in logs[0] and "Published" in logs[0] and "Published" not in logs[1]
    assert not (double / "logs" / "build.log").exists()


def test_num_gpu_workers_are_refused_beside_n_processes(video_tree, dictionary_file, tiny_model_dir, tmp_path):
    argv = build_argv(video_tree, dictionary_file, tiny_model_dir, tmp_path / "out", "--num-gpu-workers", "2")
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(ValueError, match="--num-gpu-workers 2 cannot be combined with 2 processes"):
            build_text_bags.main(argv)


def test_a_process_waiting_for_a_dead_main_process_stops_with_a_clear_error(tmp_path):
    store = StageStore(tmp_path / "stages", rank=1, world_size=2, wait_timeout=0.5)
    with pytest.raises(TimeoutError, match="Process 1 of 2 waited 0.5s for stage 'index'"):
        store.load("index", {"videos": "v"})


def test_builds_killed_at_several_points_resume_to_the_rows_of_an_uninterrupted_build(
    video_tree, dictionary_file, tiny_model_dir, tmp_path
):
    names = load_class_names(str(dictionary_file))
    table = {name: [f"people {name} outdoors", "someone is jumping", "running with a ball"] for name in names}
    with OpenAICompatibleServer(phrase_table=table) as server:
        llm = ["--llm-model", "static-phrase-table", "--llm-base-url", server.base_url]
        reference = tmp_path / "reference"
        build_text_bags.main(build_argv(video_tree, dictionary_file, tiny_model_dir, reference, *llm))
        reference_requests = server.request_count
        assert reference_requests >= 2  # one per distinct matched class

        killed = tmp_path / "killed"
        argv = build_argv(video_tree, dictionary_file, tiny_model_dir, killed, *llm)
        for point in ("match:2", "llm:2", "publish:2"):
            result = subprocess.run(
                [sys.executable, str(KILLED_BUILD), point, *argv],
                env=subprocess_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == -signal.SIGKILL, (point, result.stderr[-3000:])
            assert not (killed / BUILD_RECORD_NAME).exists(), point  # no kill leaves a finished-looking publish
        assert (killed / PUBLISHING_DIR_NAME).is_dir()  # the publish was killed half-way, in its staging folder
        build_text_bags.main(argv)
        # the LLM kill lost the one reply in flight; the match and publish kills lost no request
        assert server.request_count - reference_requests == reference_requests + 1
    assert_same_rows(killed, reference)
    assert not (killed / PUBLISHING_DIR_NAME).exists()


def test_readme_recipe_trains_on_ceil_of_p_times_the_readable_videos(
    dictionary_file, tiny_model_dir, tmp_path, monkeypatch
):
    from training import train

    num_readable = 12  # enough for filtering twice to show: ceil(0.9 x 12) = 11, ceil(0.9 x 11) = 10
    videos = write_video_tree(tmp_path / "videos", num_good=num_readable)
    bags_dir = tmp_path / "text_bags"
    record = build_text_bags.main(build_argv(videos, dictionary_file, tiny_model_dir, bags_dir))
    assert record["stats"]["videos_published"] == num_readable == len(rows_by_id(bags_dir, "dictionary"))
    assert record["parameters"]["filter_ratio"] == 1.0 and record["training_filter"] == PAPER_TRAINING_FILTER
    card = (bags_dir / "README.md").read_text()
    assert "## Filtering" in card and "--filter_ratio 0.9 --filter_score similarity" in card
    assert all(math.isfinite(row["match_margin"]) for row in rows_by_id(bags_dir, "dictionary").values())

    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    train.main(
        [
            str(TRAIN_CONFIG),  # the YAML's filter_ratio 0.9 and filter_score similarity
            "--model_name_or_path", str(tiny_model_dir),
            "--dataset_name", str(bags_dir),
            "--dataset_config_name", "dictionary",
            "--video_root", str(videos),
            "--num_frames", "2", "--bag_size", "2", "--per_device_train_batch_size", "4", "--max_steps", "1",
            "--bf16", "false", "--use_cpu", "true", "--activation_checkpointing", "false",
            "--dataloader_num_workers", "0", "--report_to", "none", "--save_strategy", "no",
            "--disable_tqdm", "true", "--output_dir", str(run_dir),
        ]
    )  # fmt: skip
    expected = math.ceil(0.9 * num_readable)
    results = json.loads((run_dir / "train_results.json").read_text())
    assert (results["train_videos"], results["filter_videos_kept"], results["filter_videos_before"]) == (
        expected,
        expected,
        num_readable,
    )
    assert (results["filter_ratio"], results["filter_score"]) == (0.9, "similarity")
    assert f"p = 0.9 by `similarity`, {expected} of {num_readable} videos kept" in (run_dir / "README.md").read_text()

    # A dataset filtered at build time anyway (p = 0.9): training composes with it instead of filtering again ...
    build_text_bags.main(build_argv(videos, dictionary_file, tiny_model_dir, bags_dir, "--filter-ratio", "0.9"))
    filtered = load_text_bag_dataset(str(bags_dir), "dictionary")
    build_filter = load_text_bag_build_filter(str(bags_dir))
    assert (len(filtered), build_filter.num_before) == (expected, num_readable)
    kept, summary = prepare_training_videos(filtered, None, 0.9, "similarity", build_filter)
    assert len(kept) == expected == summary["videos_kept"]  # not ceil(0.9 x 11) = 10
    kept, _ = prepare_training_videos(filtered, None, 0.5, "similarity", build_filter)
    assert len(kept) == num_kept(num_readable, 0.5) == 6  # half of the original 12
    # ... and stops, saying why, where it cannot
    for ratio, score in ((1.0, "similarity"), (0.9, "margin")):
        with pytest.raises(ValueError, match="already filtered at build time"):
            prepare_training_videos(filtered, None, ratio, score, build_filter)
