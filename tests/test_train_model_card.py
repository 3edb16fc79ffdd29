# SPDX-License-Identifier: Apache-2.0
"""Tests of modeling_maxi.model_card: the package's template under Hub metadata (`ModelCardData`), evaluation results
as `model-index` (`EvalResult`), and no local path in a card."""

from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

import modeling_maxi
from modeling_maxi import model_card
from modeling_maxi.evaluation.results import build_results
from modeling_maxi.model_card import (
    add_evaluation_to_model_card,
    eval_results_from_evaluation,
    format_eval_results,
    hub_model_id,
    public_reference,
    render_model_card,
    without_local_paths,
)

REPO = Path(__file__).resolve().parents[1]


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _evaluation(dataset="ucf101", display_name="UCF101", top1=(78.2123, 77.5, 79.0), top5=(95.0, 94.0, 96.0)):
    """The JSON `training/evaluate_zero_shot.py` writes, built by the evaluation's own `build_results`."""
    splits = {
        str(index + 1): {"top1": t1, "top5": t5, "num_videos": 10, "num_evaluated": 10}
        for index, (t1, t5) in enumerate(zip(top1, top5))
    }
    return build_results(dataset, display_name, splits, num_frames=16, template="a photo of a {}.", video_root="/x")


def test_render_fills_every_field_under_valid_hub_metadata():
    eval_results = eval_results_from_evaluation(_evaluation())
    card = render_model_card(
        model_id="org/maxi-vitb16",
        base_model="openai/clip-vit-base-patch16",
        provenance="- Fine-tuned here.",
        training_config={"learning_rate": 5e-6, "bag_size": 16},
        dataset_link="https://huggingface.co/datasets/org/bags",
        dataset_name="org/bags",
        eval_results=eval_results,
    )
    meta = _front_matter(card)
    assert meta["base_model"] == "openai/clip-vit-base-patch16" and meta["datasets"] == ["org/bags"]
    assert meta["library_name"] == "transformers" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "video-classification" and "maxi" in meta["tags"]
    assert meta["model-index"][0]["name"] == "org/maxi-vitb16"
    assert "# org/maxi-vitb16" in card and 'model="org/maxi-vitb16", trust_remote_code=True' in card
    assert "bag_size: 16" in card and "learning_rate: 5.0e-06" in card
    assert "| UCF101 | 1,2,3 | Top-1 accuracy (%), mean of 3 splits (std 0.61) | 78.24 |" in card
    assert "Not evaluated yet." not in card
    assert "| UCF101 | top-1 (3 splits) | 78.2 ± 0.8 |" in card  # the paper's numbers, labelled as such
    assert "These are the authors' numbers" in card
    assert "@inproceedings{lin2023match" in card and '"a photo of a {}."' in card
    assert "{" + "model_id}" not in card and "{evaluation}" not in card  # every placeholder was filled


def test_local_base_and_dataset_are_named_never_located(tmp_path):
    base = tmp_path / "bases" / "toy_base"
    base.mkdir(parents=True)
    card = render_model_card(
        model_id="m",
        base_model=str(base),
        provenance=f"- From {public_reference(base)}.",
        training_config={"model_name_or_path": str(base), "video_root": str(tmp_path), "seed": 3, "sources": ["./x"]},
        dataset_name=str(tmp_path / "bags"),
    )
    meta = _front_matter(card)
    assert "base_model" not in meta and "datasets" not in meta and "model-index" not in meta
    assert str(tmp_path) not in card and "local:toy_base" in card and "a local folder `toy_base`" in card
    assert "Not evaluated yet." in card
    assert hub_model_id("openai/clip-vit-base-patch16") == "openai/clip-vit-base-patch16"
    assert hub_model_id(str(base)) is None and hub_model_id("./relative") is None and hub_model_id("a b") is None
    assert without_local_paths({"a": [str(base), "openai/clip"], "b": 1}) == {
        "a": ["local:toy_base", "openai/clip"],
        "b": 1,
    }


def test_evaluation_results_round_trip_through_the_card(tmp_path):
    card_path = tmp_path / "README.md"
    card_path.write_text(render_model_card(model_id="org/maxi", base_model=None, provenance="p"), encoding="utf-8")
    ucf = _evaluation()
    add_evaluation_to_model_card(tmp_path, ucf)
    loaded = ModelCard.load(card_path).data
    assert loaded.model_name == "org/maxi"
    by_metric = {entry.metric_type: entry for entry in loaded.eval_results}
    assert by_metric["accuracy"].metric_value == round(ucf["summary"]["top1"]["mean"], 2) == 78.24
    assert by_metric["top_5_accuracy"].metric_value == round(ucf["summary"]["top5"]["mean"], 2) == 95.0
    assert {entry.dataset_type for entry in loaded.eval_results} == {"ucf101"}
    assert all(
        entry.dataset_split == "1,2,3" and entry.task_type == "video-classification" for entry in by_metric.values()
    )

    # Another dataset is added, the same one measured again is replaced: never duplicated.
    add_evaluation_to_model_card(card_path, _evaluation("hmdb51", "HMDB51", top1=(50.0,), top5=(80.0,)))
    add_evaluation_to_model_card(card_path, _evaluation(top1=(70.0, 70.0, 70.0)))
    card = ModelCard.load(card_path)
    values = {(entry.dataset_type, entry.metric_type): entry.metric_value for entry in card.data.eval_results}
    assert values == {
        ("ucf101", "accuracy"): 70.0,
        ("ucf101", "top_5_accuracy"): 95.0,
        ("hmdb51", "accuracy"): 50.0,
        ("hmdb51", "top_5_accuracy"): 80.0,
    }
    assert card.text.count("| HMDB51 | 1 | Top-1 accuracy (%) | 50.00 |") == 1 and "Not evaluated yet." not in card.text
    assert "78.2 ± 0.8" in card.text  # the paper's prose stays
    assert str(tmp_path) not in card_path.read_text(encoding="utf-8")


def test_bad_fields_and_results_fail_with_clear_messages(tmp_path):
    for kwargs, message in (
        ({"model_id": ""}, "`model_id` must be a non-empty string"),
        ({"provenance": None}, "`provenance` must be a non-empty string, got None"),
        ({"training_config": 3}, "training_config must be a mapping or a string, got int"),
        ({"base_model": ""}, "`base_model` must be None or a non-empty string"),
    ):
        with pytest.raises(ValueError, match=message):
            render_model_card(**{"model_id": "m", "base_model": "b", "provenance": "p", **kwargs})
    with pytest.raises(ValueError, match=r"lacks \['summary'\]"):
        eval_results_from_evaluation({"dataset": "x", "splits": {}})
    with pytest.raises(FileNotFoundError, match="README.md"):
        add_evaluation_to_model_card(tmp_path, _evaluation())
    assert format_eval_results(None) == "Not evaluated yet."


def test_template_problems(tmp_path, monkeypatch):
    bad = tmp_path / "card.md"
    bad.write_text("# {model_id} {secret}\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['secret'\]"):
        render_model_card(model_id="m", base_model="b", provenance="p", template=bad)
    monkeypatch.setattr(model_card, "default_template_path", lambda: tmp_path / "missing.md")
    with pytest.raises(FileNotFoundError, match="missing.md"):
        render_model_card(model_id="m", base_model="b", provenance="p")


def test_the_one_template_is_package_data():
    assert model_card.default_template_path() == Path(modeling_maxi.__file__).parent / "data" / "model_card.md"
    assert model_card.default_template_path().is_file()
    # The repository's model_card.md is that same file (a link), not a second template that could drift.
    assert (REPO / "model_card.md").resolve() == model_card.default_template_path().resolve()


def test_pushing_defaults_to_the_exported_folder_only(tmp_path):
    from modeling_maxi.training import MaxiTrainingArguments

    assert MaxiTrainingArguments(output_dir=str(tmp_path)).hub_strategy == "end"
