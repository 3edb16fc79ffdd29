# SPDX-License-Identifier: Apache-2.0
"""End-to-end and unit tests of the text-bag pipeline (`modeling_maxi.text_bags.build_text_bags`, the script over it
and its building blocks).

The CLI runs on generated H.264 videos (plus a corrupt and an empty file) with a tiny CLIP and a tiny BLIP saved from
configs, the real spaCy pipeline and the loopback OpenAI-compatible server, which counts requests and injects faults.
"""

import ast
import json
import logging
import math
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import av
import pytest
import torch
from datasets import Dataset, load_dataset, load_from_disk
from safetensors.torch import load_file

from dataset_scripts import build_text_bags, merge_shards
from dataset_scripts import extract_verbs as extract_verbs_script
from modeling_maxi import text_bags
from modeling_maxi.cli import parse_script_arguments
from modeling_maxi.dictionaries import load_class_names
from modeling_maxi.text_bags import captioning, frame_pass, stages
from modeling_maxi.text_bags.bag_assembly import BAG_CONFIGS, assemble_text_bag
from modeling_maxi.text_bags.corpus_verbs import select_corpus_verbs
from modeling_maxi.text_bags.filtering import (
    filter_by_confidence,
    filter_by_match_score,
    match_margins,
    num_kept,
    top_fraction_indices,
)
from modeling_maxi.text_bags.publishing import BUILD_RECORD_NAME, redact_url
from modeling_maxi.text_bags.refinement import fit_shared_covariance_classes, refine_class_embeddings
from modeling_maxi.text_bags.sharding import select_shard, shard_of
from modeling_maxi.text_bags.verb_parsing import extract_verbs, extract_verbs_batch, load_spacy_pipeline
from modeling_maxi.text_bags.video_index import build_video_index, parse_video_list_line
from tests.helpers.videos import TREE_GOOD_VIDEOS as NUM_GOOD_VIDEOS
from toy_world.llm_server import OpenAICompatibleServer

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "dataset_scripts" / "build_text_bags.py"


# ---------------------------------------------------------------------------------------------------- fixtures
def phrase_table(names):
    return {
        name: [f"people {name} outdoors", f"someone is jumping during {name}", "running and holding a ball"]
        for name in names
    }


def base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **overrides):
    args = {
        "--videos": video_tree,
        "--dictionary": dictionary_file,
        "--clip-model": tiny_model_dir,
        "--output-dir": output_dir,
        "--num-frames": 4,
        "--captioner": "none",
        "--filter-ratio": 0.5,
        "--match-batch-size": 4,
        "--chunk-size": 3,
        "--decode-workers": 2,
    }
    args.update(overrides)
    argv = []
    for key, value in args.items():
        argv += [key, str(value)]
    return argv


def captioner_flags(tiny_blip_dir, batch_size, max_new_tokens):
    """The flags of a build captioning with the tiny BLIP at its 32 px."""
    return {
        "--captioner": tiny_blip_dir,
        "--caption-image-size": 32,
        "--caption-batch-size": batch_size,
        "--caption-max-new-tokens": max_new_tokens,
    }


def parse_build_args(argv):
    (args,) = parse_script_arguments(text_bags.TextBagBuildArguments, argv)
    return args


def published_rows(output_dir, config=None):
    return load_dataset(str(output_dir), config, split="train", cache_dir=str(Path(output_dir).parent / "hf_cache"))


def stage_mtimes(output_dir):
    return {str(p): p.stat().st_mtime_ns for p in (Path(output_dir) / "stages").rglob("manifest.json")}


class ChunkCounter:
    """Wraps `stages._map_chunk` to count mapped chunks per stage description, optionally failing at a call."""

    def __init__(self, original, fail_at: int | None = None, fail_prefix: str = ""):
        self.original, self.fail_at, self.fail_prefix, self.calls = original, fail_at, fail_prefix, []

    def __call__(self, chunk, function, **kwargs):
        if kwargs["desc"].startswith(self.fail_prefix):
            self.calls.append(kwargs["desc"])
            if self.fail_at is not None and len(self.calls) == self.fail_at:
                raise KeyboardInterrupt("simulated interruption")
        return self.original(chunk, function, **kwargs)


# ---------------------------------------------------------------------------------------------------- end to end
def test_full_build_llm_captions_rerun_and_secrets(
    video_tree, dictionary_file, tiny_model_dir, tiny_blip_dir, tmp_path, monkeypatch, caplog, capfd
):
    secret = f"sk-maxi-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    names = load_class_names(str(dictionary_file))
    output_dir = tmp_path / "out"
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="modeling_maxi")  # whatever level an earlier in-process script left
    with OpenAICompatibleServer(phrase_table=phrase_table(names)) as server:
        argv = base_args(
            video_tree,
            dictionary_file,
            tiny_model_dir,
            output_dir,
            **captioner_flags(tiny_blip_dir, batch_size=3, max_new_tokens=6),
            **{
                "--llm-model": "static-phrase-table",
                "--llm-base-url": server.base_url,
            },
        )
        record = build_text_bags.main(argv)
        match = load_from_disk(str(output_dir / "stages" / "match" / "data"))
        readable = [row for row in match if not row["decode_error"]]
        matched_classes = {row["matched_label"] for row in readable}
        # One request per distinct matched class, with the key from the environment.
        assert len(matched_classes) >= 2
        assert server.request_count == len(matched_classes)
        assert {request.action for request in server.requests} == {names[i] for i in matched_classes}
        assert server.authorization_headers == {f"Bearer {secret}"}

        # A second run loads every stage, sends nothing and leaves the published files untouched.
        before = stage_mtimes(output_dir)
        card_mtime = (output_dir / "README.md").stat().st_mtime_ns
        counter = ChunkCounter(stages._map_chunk)
        monkeypatch.setattr(stages, "_map_chunk", counter)
        # the library call with the same arguments is the same build: it reuses every stage of the script's run
        assert text_bags.build_text_bags(parse_build_args(argv)) == record
        assert counter.calls == []
        assert server.request_count == len(matched_classes)
        assert stage_mtimes(output_dir) == before
        assert (output_dir / "README.md").stat().st_mtime_ns == card_mtime
        assert "Stages computed in this run: none" in caplog.text
        first_url = server.base_url

    # The same model at another URL (a local server on a new port): its replies are cached by model, prompt and
    # temperature, so nothing is requested, recomputed or republished, and the publish key (what fine-tuning runs are
    # keyed by) stays.
    with OpenAICompatibleServer(phrase_table=phrase_table(names)) as moved_server:
        assert moved_server.base_url != first_url
        moved_argv = base_args(
            video_tree,
            dictionary_file,
            tiny_model_dir,
            output_dir,
            **captioner_flags(tiny_blip_dir, batch_size=3, max_new_tokens=6),
            **{"--llm-model": "static-phrase-table", "--llm-base-url": moved_server.base_url},
        )
        assert text_bags.build_text_bags(parse_build_args(moved_argv))["publish_key"] == record["publish_key"]
        assert moved_server.request_count == 0 and counter.calls == []
        assert stage_mtimes(output_dir) == before
        assert (output_dir / "README.md").stat().st_mtime_ns == card_mtime

    # Unreadable videos are reported and nothing else is lost.
    assert len(match) == NUM_GOOD_VIDEOS + 2 and len(readable) == NUM_GOOD_VIDEOS
    assert sorted(item["video_path"] for item in record["unreadable_videos"]) == [
        "broken/corrupt.mp4",
        "broken/empty.mp4",
    ]
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "broken/corrupt.mp4" in card and "broken/empty.mp4" in card
    assert "static-phrase-table" in card and "0.4" in card and "in simple words" in card

    # Filter: ceil(0.5 * 7) = 4 videos, the ones with the best match scores; delta_p is the lowest kept score.
    scores = sorted((row["match_score"] for row in readable), reverse=True)
    default = published_rows(output_dir)
    assert len(default) == 4
    assert sorted(default["match_score"], reverse=True) == scores[:4]
    assert record["stats"]["delta_p"] == pytest.approx(scores[3])

    # Every configuration loads; bags are built from the right sources and never hold the matched text.
    nlp = load_spacy_pipeline()
    table = phrase_table(names)
    configs = {name: {row["video_id"]: row for row in published_rows(output_dir, name)} for name in BAG_CONFIGS}
    for name, sources in BAG_CONFIGS.items():
        for video_id, row in configs[name].items():
            assert row["matched_text"] == names[row["matched_label"]]
            assert row["llm_phrases"] == table[row["matched_text"]]
            assert row["llm_verbs"] == extract_verbs(table[row["matched_text"]], nlp)
            assert len(row["captions"]) == 8
            assert row["caption_verbs"] == extract_verbs_batch([row["captions"]], nlp)[0]
            assert row["text_bag"] == assemble_text_bag(row["matched_text"], [row[s] for s in sources])
            assert row["matched_text"] not in row["text_bag"]
            assert row["video_path"] == video_id + ".mp4" and not Path(row["video_path"]).is_absolute()
            assert len(row["top5_labels"]) == 5 and row["top5_labels"][0] == row["matched_label"]
    assert all(row["text_bag"] == [] for row in configs["dictionary"].values())
    assert any(row["text_bag"] for row in configs["dictionary_llm_captions"].values())
    assert set(configs["dictionary"]) == set(default["video_id"])

    # The key is nowhere: not in the output folder (stages, LLM cache, card, logs), not in logs or console.
    for path in output_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    captured = capfd.readouterr()
    assert secret not in caplog.text and secret not in captured.out and secret not in captured.err


def test_build_decodes_each_video_once_for_matching_and_captions(
    video_tree, dictionary_file, tiny_model_dir, tiny_blip_dir, tmp_path, monkeypatch
):
    opened = Counter()
    original_open = av.open

    def counting_open(path, *args, **kwargs):
        opened[str(path)] += 1
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    output_dir = tmp_path / "once"
    argv = base_args(
        video_tree,
        dictionary_file,
        tiny_model_dir,
        output_dir,
        **captioner_flags(tiny_blip_dir, batch_size=2, max_new_tokens=4),
        **{"--video-backend": "pyav"},
    )
    record = build_text_bags.main(argv)
    index = load_from_disk(str(output_dir / "stages/index/data"))
    # one opening of each file for the 4 match frames and the 8 caption frames (corrupt and empty files included)
    assert opened == Counter({path: 1 for path in index["video_path"]})
    match = load_from_disk(str(output_dir / "stages/match/data"))
    for row in match:
        assert len(row["captions"]) == (0 if row["decode_error"] else 8)
        assert row["caption_error"] == row["decode_error"]
    assert not (output_dir / "stages/caption").exists()  # no second GPU pass over the videos
    assert record["stats"]["videos_matched"] == NUM_GOOD_VIDEOS
    # the captions are the captioner's on the 8 uniformly sampled frames, whatever the batching and prefetching
    readable = match.filter(lambda row: not row["decode_error"])
    alone = captioning.caption_videos_batch(
        {"video_path": readable["video_path"]},
        captioner=tiny_blip_dir,
        image_size=32,
        max_new_tokens=4,
        video_backend="pyav",
        decode_workers=0,
    )
    assert alone["captions"] == readable["captions"]
    verbs = load_from_disk(str(output_dir / "stages/caption_verbs/data"))
    assert verbs["caption_verbs"] == extract_verbs_batch([list(c) for c in readable["captions"]], load_spacy_pipeline())


def test_prefetch_keeps_the_order_bounds_the_lookahead_and_raises_in_place():
    import time

    started = []

    def load(item):
        started.append(item)
        time.sleep(0.002 * (item % 3))  # later items may finish first
        if item == 13:
            raise KeyError(item)
        return item * 10

    items = list(range(12))
    for workers in (0, 1, 3):
        assert list(frame_pass.prefetch_batches(items, load, 5, workers)) == [
            [0, 10, 20, 30, 40],
            [50, 60, 70, 80, 90],
            [100, 110],
        ]
    for workers, ahead in ((0, 2), (1, 1), (2, 2)):
        started.clear()
        for position, _batch in enumerate(frame_pass.prefetch_batches(items[:8], load, 2, workers, ahead=ahead)):
            time.sleep(0.1)  # the "model": the pool loads the next batches meanwhile, never more than `ahead`
            lookahead = ahead if workers else 0
            assert max(started) == min(7, (position + 1 + lookahead) * 2 - 1), (workers, position, started)
    seen = []
    with pytest.raises(KeyError):
        for batch in frame_pass.prefetch_batches(list(range(20)), load, 4, 2, ahead=1):
            seen.append(batch)
    assert seen == [[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 100, 110]]  # item 13 fails in the 4th batch
    with pytest.raises(ValueError, match="decode_workers must be an integer >= 0 .* got -1"):
        next(frame_pass.prefetch_batches(items, load, 5, -1))


def test_llm_faults_are_retried_or_recorded(
    video_tree, dictionary_file, tiny_model_dir, tiny_blip_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-faults")
    names = load_class_names(str(dictionary_file))
    output_dir = tmp_path / "faults"
    # The matches are deterministic: find them with a build that needs no LLM, then script the faults.
    first = build_text_bags.main(base_args(video_tree, dictionary_file, tiny_model_dir, tmp_path / "probe"))
    probe = published_rows(tmp_path / "probe")
    assert first["stats"]["distinct_matched_classes"] >= 2
    matched = sorted({row["matched_text"] for row in load_from_disk(str(tmp_path / "probe/stages/bags/data"))})
    rate_limited, broken = matched[0], matched[1]
    with OpenAICompatibleServer(
        phrase_table=phrase_table(names), scripted_statuses={rate_limited: [429]}, always_fail={broken: 500}
    ) as server:
        argv = base_args(
            video_tree,
            dictionary_file,
            tiny_model_dir,
            output_dir,
            **{
                "--captioner": tiny_blip_dir,
                "--caption-image-size": 32,
                "--caption-max-new-tokens": 4,
                "--filter-ratio": 1.0,
                "--llm-model": "static-phrase-table",
                "--llm-base-url": server.base_url,
                "--llm-max-retries": 2,
            },
        )
        record = build_text_bags.main(argv)
        assert len(server.requests_for(rate_limited)) == 2  # 429, then success
        assert len(server.requests_for(broken)) == 3  # first try + 2 retries, all 500
        assert server.request_count == len(matched) + 1 + 2
    assert list(record["llm_failures"]) == [broken]
    assert broken in (output_dir / "README.md").read_text(encoding="utf-8")
    rows = published_rows(output_dir)
    assert len(rows) == NUM_GOOD_VIDEOS == len(probe) * 2 - 1  # p=1 keeps all; the probe kept ceil(7/2)=4
    for row in rows:
        if row["matched_text"] == broken:
            assert row["llm_phrases"] == [] and row["llm_verbs"] == []
            assert row["text_bag"] == assemble_text_bag(broken, [row["caption_verbs"]])
        else:
            assert row["llm_phrases"] == phrase_table(names)[row["matched_text"]]


def test_interrupted_build_resumes_without_losing_rows(
    video_tree, dictionary_file, tiny_model_dir, tmp_path, monkeypatch
):
    output_dir = tmp_path / "resume"
    argv = base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **{"--filter-ratio": 1.0})
    original = stages._map_chunk
    interrupted = ChunkCounter(original, fail_at=2, fail_prefix="Matching")
    monkeypatch.setattr(stages, "_map_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_text_bags.main(argv)
    done_chunks = sorted(p.name for p in (output_dir / "stages/match/chunks").iterdir())
    assert done_chunks == ["000000"]  # the interrupted chunk left no partial folder
    assert not (output_dir / "README.md").exists()

    resumed = ChunkCounter(original, fail_prefix="Matching")
    monkeypatch.setattr(stages, "_map_chunk", resumed)
    build_text_bags.main(argv)
    assert resumed.calls == [
        "Matching videos to the dictionary (chunk 2/3)",
        "Matching videos to the dictionary (chunk 3/3)",
    ]
    match = load_from_disk(str(output_dir / "stages/match/data"))
    index = load_from_disk(str(output_dir / "stages/index/data"))
    assert list(match["video_id"]) == list(index["video_id"]) and len(set(match["video_id"])) == NUM_GOOD_VIDEOS + 2
    assert len(published_rows(output_dir)) == NUM_GOOD_VIDEOS

    # Changing a parameter of a stage recomputes it and everything after it, not what comes before.
    counter = ChunkCounter(original)
    monkeypatch.setattr(stages, "_map_chunk", counter)
    build_text_bags.main(base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **{"--num-frames": 2}))
    assert [call for call in counter.calls if call.startswith("Matching")] != []
    assert json.loads((output_dir / "stages/match/manifest.json").read_text())["params"]["num_frames"] == 2


def test_shards_are_disjoint_and_merge_equals_single_build(video_tree, dictionary_file, tiny_model_dir, tmp_path):
    single = tmp_path / "single"
    build_text_bags.main(base_args(video_tree, dictionary_file, tiny_model_dir, single))
    shard_dirs = []
    for shard_index in range(2):
        shard_dir = tmp_path / f"shard_{shard_index}"
        build_text_bags.main(
            base_args(
                video_tree,
                dictionary_file,
                tiny_model_dir,
                shard_dir,
                **{"--num-shards": 2, "--shard-index": shard_index},
            )
        )
        shard_dirs.append(shard_dir)
    ids = [set(load_from_disk(str(d / "stages/index/data"))["video_id"]) for d in shard_dirs]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == NUM_GOOD_VIDEOS + 2 and ids[0] and ids[1]

    merged = tmp_path / "merged"
    record = merge_shards.main(["--shard-dirs", *map(str, shard_dirs), "--output-dir", str(merged)])
    single_record = json.loads((single / BUILD_RECORD_NAME).read_text())
    assert record["stats"]["delta_p"] == pytest.approx(single_record["stats"]["delta_p"])
    assert len(record["unreadable_videos"]) == 2
    for config in BAG_CONFIGS:
        if config in single_record["configs"]:
            expected = sorted(published_rows(single, config).to_list(), key=lambda row: row["video_id"])
            actual = sorted(published_rows(merged, config).to_list(), key=lambda row: row["video_id"])
            # Batches differ between the shards and the single build, so scores agree to float precision only.
            for row, reference in zip(actual, expected, strict=True):
                assert row.pop("match_score") == pytest.approx(reference.pop("match_score"), abs=1e-5)
                assert row.pop("top5_scores") == pytest.approx(reference.pop("top5_scores"), abs=1e-5)
                assert row.pop("match_margin") == pytest.approx(reference.pop("match_margin"), abs=1e-5)
                assert row == reference

    with pytest.raises(ValueError, match="shards 0..1"):
        text_bags.merge_shards([shard_dirs[0], shard_dirs[0]], tmp_path / "bad")


# ---------------------------------------------------------------------------------------------------- units
@pytest.mark.parametrize(
    ("num_videos", "ratio", "expected"),
    [(10, 0.7, 7), (7, 0.5, 4), (5, 0.5, 3), (3, 0.9, 3), (10, 0.9, 9), (1, 0.01, 1), (8, 1.0, 8), (0, 0.5, 0)],
)
def test_filter_keeps_ceil_of_p_times_n(num_videos, ratio, expected):
    assert num_kept(num_videos, ratio) == expected


def test_filter_ranks_by_score_and_reports_threshold():
    scores = [0.3, 0.9, 0.1, 0.5, 0.5, 0.7]
    indices, delta_p = top_fraction_indices(scores, 0.5)
    assert indices == [1, 3, 5] and delta_p == 0.5  # ties keep dataset order: index 3 before 4
    result = filter_by_match_score(Dataset.from_dict({"match_score": scores, "i": list(range(6))}), 0.5)
    assert list(result.dataset["i"]) == [1, 3, 5] and result.num_kept == 3 and result.num_before == 6
    for bad in (0, 1.5, -0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="filter ratio"):
            num_kept(10, bad)


def test_margin_filter_ranks_by_lead_over_the_runner_up():
    top_scores = [[0.9, 0.88, 0.1], [0.5, 0.1, 0.0], [0.7, 0.3, 0.2], [0.95, 0.94, 0.5]]
    assert match_margins(top_scores) == pytest.approx([0.02, 0.4, 0.4, 0.01])
    similarity = [row[0] for row in top_scores]
    dataset = Dataset.from_dict({"match_score": similarity, "top5_scores": top_scores, "i": [0, 1, 2, 3]})
    by_margin = filter_by_confidence(dataset, 0.5, "margin")
    assert list(by_margin.dataset["i"]) == [1, 2] and by_margin.delta_p == pytest.approx(0.4)
    by_similarity = filter_by_confidence(dataset, 0.5, "similarity")  # the paper's: the two most similar
    assert list(by_similarity.dataset["i"]) == [0, 3] and by_similarity.delta_p == 0.9
    assert match_margins([[0.4], []]) == [-math.inf, -math.inf]  # nothing to compare with: ranked last
    with pytest.raises(ValueError, match="best first"):
        match_margins([[0.1, 0.5]])
    with pytest.raises(ValueError, match="'probability'"):
        filter_by_confidence(dataset, 0.5, "probability")
    with pytest.raises(ValueError, match="top5_scores"):
        filter_by_confidence(dataset.remove_columns("top5_scores"), 0.5, "margin")


def test_build_filters_by_margin_when_asked(video_tree, dictionary_file, tiny_model_dir, tmp_path):
    output_dir = tmp_path / "margin"
    record = build_text_bags.main(
        base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **{"--filter-score": "margin"})
    )
    assert record["parameters"]["filter_score"] == "margin"
    unfiltered = load_from_disk(str(output_dir / "stages/bags/data")).filter(lambda row: row["matched_label"] >= 0)
    margins = match_margins(unfiltered["top5_scores"])
    expected_ids, delta_p = top_fraction_indices(margins, 0.5)
    published = published_rows(output_dir, record["default_config"])
    assert sorted(published["video_id"]) == sorted(unfiltered.select(expected_ids)["video_id"])
    assert record["stats"]["delta_p"] == pytest.approx(delta_p)
    by_similarity = build_text_bags.main(base_args(video_tree, dictionary_file, tiny_model_dir, output_dir))
    assert by_similarity["parameters"]["filter_score"] == "similarity"  # republished, not reported up to date
    assert by_similarity["publish_key"] != record["publish_key"]
    with pytest.raises(SystemExit):  # argparse rejects an unknown choice
        parse_build_args(["--videos", "v", "--output-dir", "o", "--filter-score", "probability"])


def test_build_refines_the_matches_when_asked(video_tree, dictionary_file, tiny_model_dir, tmp_path, caplog):
    output_dir = tmp_path / "refined"
    argv = base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **{"--match-refinement-steps": 3})
    record = build_text_bags.main(argv)
    assert record["parameters"]["match_refinement_steps"] == 3
    assert record["parameters"]["match_refinement_method"] == "gaussian"  # the default method
    card = (output_dir / "README.md").read_text()
    assert "refined over the videos in 3 `gaussian` steps" in card and "log posterior probabilities" in card
    # the match stage kept each readable video's embedding; the refine stage matched them again
    match_stage = load_from_disk(str(output_dir / "stages/match/data"))
    readable = match_stage.filter(lambda row: not row["decode_error"])
    videos = torch.tensor(readable["video_embedding"])
    assert torch.allclose(videos.norm(dim=-1), torch.ones(len(videos)), atol=1e-5)
    text = load_file(str(output_dir / "stages/dictionary/class_embeddings.safetensors"))["class_embeddings"]
    assert readable["matched_label"] == (videos @ text.T).argmax(dim=1).tolist()  # the paper's matching
    log_posteriors = fit_shared_covariance_classes(videos, text, steps=3).log_posteriors(videos)
    expected = dict(zip(readable["video_id"], log_posteriors.argmax(dim=1).tolist()))
    bags = load_from_disk(str(output_dir / "stages/bags/data")).filter(lambda row: row["matched_label"] >= 0)
    assert "video_embedding" not in bags.column_names
    assert {video: label for video, label in zip(bags["video_id"], bags["matched_label"])} == expected
    best = dict(zip(readable["video_id"], log_posteriors.max(dim=1).values.tolist()))
    for video, score in zip(bags["video_id"], bags["match_score"]):  # the scores are the log posteriors
        assert math.isclose(score, best[video], abs_tol=1e-9)
    paper_matches = dict(zip(readable["video_id"], readable["matched_label"]))
    changed = sum(int(expected[video] != label) for video, label in paper_matches.items())
    assert record["stats"]["refinement_changed_matches"] == changed
    # a rerun loads every stage; without refinement the published bags are the paper's matches again
    with caplog.at_level(logging.INFO, logger="modeling_maxi.text_bags.build"):
        assert build_text_bags.main(argv)["publish_key"] == record["publish_key"]
    assert "Stages computed in this run: none" in caplog.text
    caplog.clear()
    # the k-means method is its own refine stage, on the same stored match stage
    kmeans_argv = argv + ["--match-refinement-method", "kmeans"]
    with caplog.at_level(logging.INFO, logger="modeling_maxi.text_bags.build"):
        kmeans_record = build_text_bags.main(kmeans_argv)
    computed = ast.literal_eval(re.search(r"Stages computed in this run: (\[.*?\]); loaded", caplog.text).group(1))
    assert "refine" in computed and "match" not in computed
    assert kmeans_record["parameters"]["match_refinement_method"] == "kmeans"
    refined = refine_class_embeddings(videos, text, steps=3)
    kmeans_expected = dict(zip(readable["video_id"], (videos @ refined.T).argmax(dim=1).tolist()))
    kmeans_bags = load_from_disk(str(output_dir / "stages/bags/data")).filter(lambda row: row["matched_label"] >= 0)
    assert dict(zip(kmeans_bags["video_id"], kmeans_bags["matched_label"])) == kmeans_expected
    assert "cosine similarities to the refined class embeddings" in (output_dir / "README.md").read_text()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="modeling_maxi.text_bags.build"):
        plain = build_text_bags.main(base_args(video_tree, dictionary_file, tiny_model_dir, output_dir))
    computed = re.search(r"Stages computed in this run: (.*?); loaded: (.*)", caplog.text)
    assert "'match'" not in computed.group(1) and "'match'" in computed.group(2)  # the refining build's frame pass
    assert (output_dir / "stages/match/data").is_dir()
    assert "match_refinement_steps" not in plain["parameters"]
    assert "refined" not in (output_dir / "README.md").read_text()
    plain_bags = load_from_disk(str(output_dir / "stages/bags/data")).filter(lambda row: row["matched_label"] >= 0)
    assert "video_embedding" not in plain_bags.column_names
    assert dict(zip(plain_bags["video_id"], plain_bags["matched_label"])) == paper_matches
    with pytest.raises(ValueError, match="--num-shards 2"):
        parse_build_args(["--videos", "v", "--output-dir", "o", "--num-shards", "2", "--match-refinement-steps", "1"])
    with pytest.raises(ValueError, match="-1"):
        parse_build_args(["--videos", "v", "--output-dir", "o", "--match-refinement-steps", "-1"])
    with pytest.raises(SystemExit):  # argparse refuses a method outside the choices
        parse_build_args(["--videos", "v", "--output-dir", "o", "--match-refinement-method", "lda"])


def test_text_bag_is_deduplicated_in_order_without_matched_text():
    bag = assemble_text_bag(
        "Riding a Bike",
        [["ride", "riding a bike", "pedal  fast", "Ride"], ["pedal fast", "cycling", "", "ride"]],
    )
    assert bag == ["ride", "pedal fast", "cycling"]
    with pytest.raises(TypeError, match="list of strings"):
        assemble_text_bag("x", ["not a list"])


def test_video_index_from_list_file_and_directory(tmp_path, video_tree):
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\ntrain/a b.mp4 3\n\ntrain/c.mp4\n", encoding="utf-8")
    index = build_video_index(listing, video_root="/data/k400")
    assert list(index["video_id"]) == ["train/a b", "train/c"]
    assert list(index["label"]) == [3, -1]
    assert list(index["video_path"]) == ["/data/k400/train/a b.mp4", "/data/k400/train/c.mp4"]
    assert parse_video_list_line("train/x.mp4 12") == ("train/x.mp4", 12)
    tree = build_video_index(video_tree)
    assert len(tree) == NUM_GOOD_VIDEOS + 2 and "notes" not in " ".join(tree["video_id"])
    duplicated = tmp_path / "dup.txt"
    duplicated.write_text("a.mp4 1\na.mp4 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="more than once"):
        build_video_index(duplicated)
    with pytest.raises(FileNotFoundError, match="neither a directory nor a list file"):
        build_video_index(tmp_path / "missing")


def test_shard_assignment_is_a_stable_hash():
    # Fixed values: a salted hash() or a changed digest would move videos between machines.
    assert [shard_of(f"train/video_{i}.mp4", 4) for i in range(6)] == SHARD_REFERENCE
    dataset = Dataset.from_dict({"relative_path": [f"v{i}.mp4" for i in range(50)]})
    parts = [list(select_shard(dataset, 3, i)["relative_path"]) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(list(dataset["relative_path"])) and all(parts)
    with pytest.raises(ValueError, match="shard_index"):
        select_shard(dataset, 3, 3)


def test_build_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="filter ratio"):
        parse_build_args(["--videos", "v", "--output-dir", str(tmp_path), "--filter-ratio", "1.5"])
    with pytest.raises(ValueError, match="shard_index"):
        parse_build_args(["--videos", "v", "--output-dir", "o", "--num-shards", "2", "--shard-index", "2"])
    with pytest.raises(ValueError, match="--num-frames"):
        parse_build_args(["--videos", "v", "--output-dir", "o", "--num-frames", "0"])


@pytest.mark.parametrize(
    ("flag", "bad_value", "as_module"),
    [("--videos", "no_such_videos", False), ("--filter_ratio", "1.5", True), ("--clip_model", "no_such_clip", False)],
)
def test_build_script_user_errors_end_in_one_line(flag, bad_value, as_module, tmp_path):
    """A user error ends the script with one `error: ...` line naming the bad value and a non-zero status."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").write_bytes(b"")  # indexed, never decoded: the match model fails to load before
    if flag != "--filter_ratio":
        bad_value = str(tmp_path / bad_value)
    arguments = {"--videos": str(videos), "--output_dir": str(tmp_path / "out"), "--captioner": "none", flag: bad_value}
    # as a module from the repository root, and as a file from elsewhere (the script finds the repository itself)
    command = ["-m", "dataset_scripts.build_text_bags"] if as_module else [str(BUILD_SCRIPT)]
    command = [sys.executable, *command, *(item for pair in arguments.items() for item in pair)]
    env = {**{key: value for key, value in os.environ.items() if key != "MAXI_DEBUG"}, "HF_HUB_OFFLINE": "1"}
    cwd = REPO_ROOT if as_module else tmp_path
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and bad_value in last_line, result.stderr
    assert "Traceback" not in result.stderr


def test_extra_verbs_extend_the_dictionary(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("Air Drumming\nsip\nwander\n", encoding="utf-8")
    names, added = text_bags.build_dictionary("minikinetics", str(extra))
    assert added == 2 and names[-2:] == ["sip", "wander"] and len(names) == 202


def test_redact_url_drops_credentials():
    assert redact_url("https://user:pw@api.example.com:8443/v1?key=abc#x") == "https://api.example.com:8443/v1"


SHARD_REFERENCE = [3, 1, 1, 0, 3, 0]


def test_build_with_released_phrases_directory(video_tree, dictionary_file, tiny_model_dir, tmp_path):
    names = load_class_names(str(dictionary_file))
    released = tmp_path / "gpt3_verbs"
    released.mkdir()
    for name in names[1:]:
        (released / f"{name}.txt").write_text(f"verb of {name}\n{name}\nshared verb\n", encoding="utf-8")
    output_dir = tmp_path / "released_build"
    argv = base_args(video_tree, dictionary_file, tiny_model_dir, output_dir, **{"--llm-phrases-dir": released})
    record = build_text_bags.main(argv)
    assert record["configs"] == ["dictionary_llm", "dictionary"]
    for row in published_rows(output_dir):
        if row["matched_text"] == names[0]:
            assert row["llm_verbs"] == [] and row["text_bag"] == []
        else:
            # Released lines are taken verbatim; the bag drops the matched text itself.
            assert row["llm_verbs"] == [f"verb of {row['matched_text']}", row["matched_text"], "shared verb"]
            assert row["text_bag"] == [f"verb of {row['matched_text']}", "shared verb"]
    assert set(record["llm_failures"]) <= {names[0]}


def test_corpus_verbs_for_an_over_specified_dictionary(tmp_path):
    captions = tmp_path / "captions.txt"
    captions.write_text(
        "a man is riding a horse\na woman rides a bike\n\nkids are swimming in a pool\na dog swims while a boy jumps\n",
        encoding="utf-8",
    )
    output = tmp_path / "extra.txt"
    verbs = extract_verbs_script.main(
        [
            "--captions",
            str(captions),
            "--output_file",
            str(output),
            "--cache_dir",
            str(tmp_path / "hf_cache"),
            "--selection",
            "most_frequent",
            "--num_verbs",
            "3",
            "--min_count",
            "1",
            "--batch_size",
            "2",
            "--forms",
            "lemma",
            "--no_include_phrases",
            "--exclude_dictionary",
            "k400",
        ]
    )
    assert verbs == ["ride", "swim", "jump"]  # 2, 2 (alphabetical tie) and 1 captions
    assert output.read_text(encoding="utf-8").splitlines() == verbs
    counts = Counter({"ride": 3, "swim": 3, "run": 1})
    assert select_corpus_verbs(counts, 5, "most_frequent", min_count=2, exclude=["Swim"]) == ["ride"]
    with pytest.raises(ValueError, match="num_verbs"):
        select_corpus_verbs(Counter(), 0, "most_frequent")
    with pytest.raises(ValueError, match="num_verbs 5 exceeds the 1"):  # a random sample cannot exceed the entries
        select_corpus_verbs(counts, 5, "random", min_count=2, exclude=["Swim"])
    with pytest.raises(ValueError, match="'alphabetical'"):
        select_corpus_verbs(counts, 1, "alphabetical")


def test_push_to_hub_uploads_only_the_published_files(tmp_path, monkeypatch):
    import huggingface_hub

    from modeling_maxi.text_bags.publishing import publish_text_bags, push_text_bags_to_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs
            return "commit"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    bags = Dataset.from_dict(
        {
            "video_id": ["a", "b"],
            "video_path": ["a.mp4", "b.mp4"],
            "matched_label": [0, 1],
            "matched_text": ["run", "jump"],
            "match_score": [0.3, 0.2],
            "llm_verbs": [["run", "jog"], []],
            "caption_verbs": [[], ["hop"]],
        }
    )
    record = publish_text_bags(bags, tmp_path, {"parameters": {}, "stats": {}}, 0.5, ["dictionary_llm", "dictionary"])
    assert record["stats"]["videos_published"] == 1 and record["stats"]["delta_p"] == 0.3
    (tmp_path / "stages").mkdir()
    assert push_text_bags_to_hub(tmp_path, "user/maxi-bags", private=True) == "commit"
    assert calls["create_repo"] == ("user/maxi-bags", {"repo_type": "dataset", "private": True, "exist_ok": True})
    upload = calls["upload_folder"]
    assert upload["repo_type"] == "dataset" and upload["folder_path"] == str(tmp_path)
    assert "README.md" in upload["allow_patterns"] and not any("stages" in p for p in upload["allow_patterns"])
    with pytest.raises(ValueError, match="user/name"):
        push_text_bags_to_hub(tmp_path, "no-slash")


def test_publish_reports_the_threshold_in_the_filter_score(tmp_path):
    from modeling_maxi.text_bags.publishing import publish_text_bags

    bags = Dataset.from_dict(
        {
            "video_id": ["a", "b", "c"],
            "video_path": ["a.mp4", "b.mp4", "c.mp4"],
            "matched_label": [0, 1, 0],
            "matched_text": ["run", "jump", "run"],
            "match_score": [0.9, 0.5, float("nan")],  # c was unreadable: no score, no top scores
            "top5_scores": [[0.9, 0.85], [0.5, 0.2], []],
            "llm_verbs": [["jog"], [], []],
        }
    )
    configs = ["dictionary_llm", "dictionary"]
    kept_all = publish_text_bags(bags, tmp_path / "all", {}, 1.0, configs, "margin")
    assert kept_all["stats"]["videos_published"] == 3
    assert kept_all["stats"]["delta_p"] == pytest.approx(0.05)  # the lowest margin, not the lowest similarity (0.5)
    assert kept_all["parameters"] == {"filter_ratio": 1.0, "filter_score": "margin"}
    half = publish_text_bags(bags, tmp_path / "half", {}, 0.5, configs, "margin")
    assert published_rows(tmp_path / "half")["video_id"] == ["a", "b"]  # ceil(1.5) = 2: margins 0.05, 0.3, -inf
    assert half["stats"]["delta_p"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="'rank'"):
        publish_text_bags(bags, tmp_path / "bad", {}, 0.5, configs, "rank")
