# SPDX-License-Identifier: Apache-2.0
"""Verb extraction with the real spaCy pipeline and lemminflect, and the extract_verbs CLI."""

import pytest

from modeling_maxi.text_bags import extract_verbs, extract_verbs_batch, load_spacy_pipeline, verb_forms


@pytest.fixture(scope="module")
def nlp():
    return load_spacy_pipeline()


def test_cracking_eggs(nlp):
    verbs = extract_verbs(["a man is cracking eggs into a bowl"], nlp)
    assert verbs == ["crack", "cracking", "crack eggs", "cracking eggs"]


def test_particles_objects_and_modifiers(nlp):
    verbs = extract_verbs(["a woman picks up a red ball and throws it to her dog"], nlp)
    for expected in ["pick", "picking", "pick up", "picking up", "pick up red ball", "picking up red ball"]:
        assert expected in verbs
    assert "throw" in verbs and "throwing" in verbs
    assert not any("dog" in verb or "her" in verb for verb in verbs)  # prepositional attachments are left out
    assert verbs.index("pick") < verbs.index("throw")  # order of appearance


def test_auxiliaries_and_non_verbs_are_excluded(nlp):
    verbs = extract_verbs(["the girl has been sitting on a bench", "a red car", "two dogs"], nlp)
    assert verbs == ["sit", "sitting"]


def test_irregular_verbs_use_lemminflect(nlp):
    verbs = extract_verbs(["a boy ran across the field", "she swam in the lake", "a child lay on the grass"], nlp)
    assert verbs[:4] == ["run", "running", "swim", "swimming"]
    assert "lie" in verbs and "lying" in verbs


def test_surface_gerund_spelling_is_kept(nlp):
    # lemminflect spells the gerund of "rappel" as "rappeling"; the text's own "rappelling" is kept too, as in the
    # authors' released bags.
    verbs = extract_verbs(["rappelling down a cliff"], nlp)
    assert {"rappel", "rappeling", "rappelling"} <= set(verbs)
    assert "rappelling" not in extract_verbs(["rappelling down a cliff"], nlp, forms=("lemma", "gerund"))


def test_deduplicated_across_texts_in_first_appearance_order(nlp):
    verbs = extract_verbs(["a dog runs", "the dog is running", "a cat jumps", "a dog runs fast"], nlp)
    assert verbs == ["run", "running", "jump", "jumping"]


def test_forms_and_phrases_options(nlp):
    text = ["a man is cracking eggs into a bowl"]
    assert extract_verbs(text, nlp, forms=("lemma",)) == ["crack", "crack eggs"]
    assert extract_verbs(text, nlp, forms=("gerund",), include_phrases=False) == ["cracking"]


def test_caption_style_matches_authors_released_caption_bags(nlp):
    # BLIP captions of the paper's supplementary figure; the released caption bags hold lemma + gerund verb forms.
    captions = [
        "a woman covering her face with her hands",
        "a young girl covers her face with her hands",
        "a man standing and holding a guitar",
    ]
    verbs = set(extract_verbs(captions, nlp, include_phrases=False))
    assert verbs == {"cover", "covering", "stand", "standing", "hold", "holding"}


def test_llm_phrases_give_the_verb_forms_of_the_authors_released_bags(nlp):
    # Multi-word lines of the authors' gpt3_verbs/abseiling.txt (the LLM phrases) plus one single-word phrase; the
    # single-word entries of that file are the verbs of these phrases in lemma and gerund form.
    phrases = ["descend on a rope", "going down a cliff on a rope", "climbing down a rope", "lowering oneself down"]
    verbs = extract_verbs([*phrases, "rappelling"], nlp)
    released = {
        "lowering",
        "descend",
        "go",
        "lower",
        "rappel",
        "going",
        "climb",
        "descending",
        "climbing",
        "rappelling",
    }
    assert released <= set(verbs)
    assert "going cliff" not in verbs and "go cliff" not in verbs  # no phrase skipping the preposition "down"
    assert "climbing down rope" in verbs


def test_fragment_starting_with_a_gerund_tagged_as_noun(nlp):
    # The small English model tags "imitating" as a noun here; the fragment still yields the verb.
    assert extract_verbs(["imitating drumming"], nlp, include_phrases=False) == [
        "imitate",
        "imitating",
        "drum",
        "drumming",
    ]
    assert extract_verbs(["a wedding cake on a table"], nlp) == []  # a noun in "-ing" elsewhere is not a verb


def test_batch_matches_per_row_and_handles_empty_rows(nlp):
    rows = [
        ["a man is cracking eggs into a bowl", "a man is whisking eggs"],
        None,
        [],
        ["two people are talking", "they talk and laugh"],
    ]
    batch = extract_verbs_batch(rows, nlp)
    assert batch == [extract_verbs(row or [], nlp) for row in rows]
    assert batch[1] == [] and batch[2] == []
    assert batch[3] == ["talk", "talking", "laugh", "laughing"]


def test_verb_forms():
    assert verb_forms("cracked") == ["crack", "cracking"]
    assert verb_forms("went", forms=("gerund",)) == ["going"]
    with pytest.raises(ValueError, match="single word"):
        verb_forms("pick up")


def test_validation_names_the_bad_input(nlp):
    with pytest.raises(TypeError, match="texts"):
        extract_verbs("a dog runs", nlp)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        extract_verbs(["a dog runs", 3], nlp)
    with pytest.raises(TypeError, match="spaCy"):
        extract_verbs(["a dog runs"], nlp=None)
    with pytest.raises(ValueError, match="forms"):
        extract_verbs(["a dog runs"], nlp, forms=("past",))
    with pytest.raises(TypeError, match=r"list_of_text_lists\[0\]"):
        extract_verbs_batch(["a dog runs"], nlp)


def test_unknown_spacy_pipeline_is_a_clear_error():
    with pytest.raises(OSError, match="no_such_pipeline_xyz"):
        load_spacy_pipeline("no_such_pipeline_xyz")


def test_extract_verbs_cli(tmp_path):
    from dataset_scripts.extract_verbs import main

    captions = tmp_path / "captions.txt"
    captions.write_text(
        "\n".join(
            [
                "a man is cracking eggs into a bowl",
                "a woman is cracking eggs",
                "a boy picks up a ball",
                "a person is abseiling down a cliff",
                "",
                "a dog runs on the beach",
                "a dog is running",
            ]
        )
        + "\n"
    )
    output = tmp_path / "out" / "verbs.txt"
    common = ["--captions", str(captions), "--cache_dir", str(tmp_path / "hf_cache")]
    verbs = main([*common, "--output_file", str(output)])
    # By frequency (number of captions), ties alphabetically; gerund forms by default.
    assert verbs[:4] == ["cracking", "cracking eggs", "running", "abseiling"]
    assert set(verbs) == {
        "cracking",
        "cracking eggs",
        "running",
        "abseiling",
        "abseiling down",
        "abseiling down cliff",
        "picking",
        "picking up",
        "picking up ball",
    }
    assert output.read_text().splitlines() == verbs

    # Entries of the K400 dictionary ("abseiling") are excluded; a seeded sample is reproducible.
    sampled = main(
        [
            *common,
            "--output_file",
            str(output),
            "--exclude_dictionary",
            "k400",
            "--num_verbs",
            "3",
            "--seed",
            "1",
            "--forms",
            "lemma,gerund",
            "--no_include_phrases",
        ]
    )
    assert len(sampled) == 3 and "abseiling" not in sampled and not any(" " in verb for verb in sampled)
    again = main(
        [
            *common,
            "--output_file",
            str(tmp_path / "again.txt"),
            "--exclude_dictionary",
            "k400",
            "--num_verbs",
            "3",
            "--seed",
            "1",
            "--forms",
            "lemma,gerund",
            "--no_include_phrases",
        ]
    )
    assert again == sampled

    with pytest.raises(ValueError, match="num_verbs"):
        main([*common, "--output_file", str(output), "--num_verbs", "1000"])
    with pytest.raises(ValueError, match="forms"):
        main([*common, "--output_file", str(output), "--forms", "past"])
