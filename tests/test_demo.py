"""The offline main job, reduced: the whole pipeline (world, base, text bags, accelerate fine-tuning, evaluation,
export) runs end to end and reports what it measured."""

import json

import pytest
from transformers import AutoModel

from training.demo import DemoArguments, main


def test_reduced_demo_runs_end_to_end(tmp_path, capsys):
    results = main(
        [
            "--output_dir", str(tmp_path / "demo"),
            "--base_cache_dir", str(tmp_path / "base_cache"),
            "--num_train_videos", "120",
            "--num_test_videos", "40",
            "--base_images", "1000",
            "--base_steps", "40",
            "--train_steps", "8",
            "--train_batch_size", "16",
        ]
    )
    printed = capsys.readouterr().out
    assert "| MAXI (unsupervised fine-tuning) | dictionary names |" in printed
    assert "CLIP matching accuracy after filtering" in printed
    saved = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    assert saved["maxi"] == results["maxi"]
    assert saved["text_bag_stats"]["llm_requests"] == saved["text_bag_stats"]["distinct_matched_classes"]
    assert saved["matching"]["kept_videos"] == 60  # p = 0.5 of 120 unlabeled clips
    for model in ("base", "maxi"):
        for label_set in ("dictionary names", "held-out phrasings"):
            metrics = results[model][label_set]
            assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 100.0
    assert results["maxi"] != results["base"] or results["maxi_model"] != results["base_model"]
    # the exported folder is Hub-ready: it loads through the Auto classes
    assert type(AutoModel.from_pretrained(results["maxi_model"])).__name__ == "MaxiVideoCLIPModel"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"filter_ratio": 0.0}, "filter_ratio"), ({"train_steps": 0}, "train_steps"),
     ({"train_batch_size": 9, "num_processes": 2}, "divisible")],
)
def test_demo_arguments_are_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        DemoArguments(**overrides)
