# SPDX-License-Identifier: Apache-2.0
"""Tests of modeling_maxi.model_card (the template shared by training export and checkpoint conversion)."""

import pytest
import yaml

from modeling_maxi import model_card
from modeling_maxi.model_card import format_eval_table, render_model_card


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_render_fills_every_field_and_valid_front_matter():
    card = render_model_card(
        model_id="org/maxi-vitb16",
        base_model="openai/clip-vit-base-patch16",
        provenance="- Fine-tuned here.",
        training_config={"learning_rate": 5e-6, "bag_size": 16},
        dataset_link="https://huggingface.co/datasets/org/bags",
        dataset_name="org/bags",
        eval_table={"UCF101": {"top-1": 78.2123}},
    )
    meta = _front_matter(card)
    assert meta["base_model"] == "openai/clip-vit-base-patch16" and meta["datasets"] == ["org/bags"]
    assert meta["library_name"] == "transformers" and meta["license"] == "mit"
    assert "# org/maxi-vitb16" in card and 'from_pretrained("org/maxi-vitb16")' in card
    assert "bag_size: 16" in card and "learning_rate: 5.0e-06" in card
    assert "| UCF101 | top-1 | 78.21 |" in card and "Not evaluated yet." not in card
    assert "| UCF101 | top-1 (3 splits) | 78.2 ± 0.8 |" in card  # the paper's numbers, labelled as such
    assert "@inproceedings{lin2023match" in card and '"a photo of a {}."' in card
    assert not any("{" + name + "}" in card for name in model_card._FIELDS)  # every placeholder was filled


def test_local_dataset_has_no_datasets_metadata_and_missing_eval_says_so():
    card = render_model_card(model_id="m", base_model="b", provenance="p")
    assert "datasets" not in _front_matter(card)
    assert "Not evaluated yet." in card and "Not recorded." in card


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_id": ""}, "`model_id` must be a non-empty string"),
        ({"provenance": None}, "`provenance` must be a non-empty string, got None"),
        ({"training_config": 3}, "training_config must be a mapping or a string, got int"),
        ({"eval_table": {"UCF101": 3.0}}, "eval results for 'UCF101' must map metric -> value"),
    ],
)
def test_bad_fields_fail_with_clear_message(kwargs, message):
    fields = {"model_id": "m", "base_model": "b", "provenance": "p", **kwargs}
    with pytest.raises(ValueError, match=message):
        render_model_card(**fields)


def test_template_problems(tmp_path, monkeypatch):
    bad = tmp_path / "card.md"
    bad.write_text("# {model_id} {secret}\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['secret'\]"):
        render_model_card(model_id="m", base_model="b", provenance="p", template=bad)
    monkeypatch.setattr(model_card, "default_template_path", lambda: tmp_path / "missing.md")
    with pytest.raises(FileNotFoundError, match="missing.md"):
        render_model_card(model_id="m", base_model="b", provenance="p")
    assert format_eval_table(None) == "Not evaluated yet."
