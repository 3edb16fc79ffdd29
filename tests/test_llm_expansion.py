# SPDX-License-Identifier: Apache-2.0
"""LLM expansion against a real loopback HTTP server through the real `openai` client."""

import dataclasses
import json
import logging
import uuid

import pytest

from modeling_maxi.text_bags import (
    DEFAULT_INSTRUCTION,
    LLMExpansionConfig,
    cache_key,
    expand_actions,
    load_released_phrases,
    parse_phrases,
)
from toy_world.llm_server import OpenAICompatibleServer

PHRASE_TABLE = {
    "abseiling": ["descend on a rope", "rappelling down a cliff", "climbing down a rope"],
    "air drumming": ["pretending to play drums", "beating imaginary drums"],
    "yoga": ["stretching the body", "holding a pose"],
    "juggling balls": ["tossing balls in the air", "catching balls"],
}


@pytest.fixture
def api_key(monkeypatch):
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key


def make_config(server, **overrides):
    values = {"model": "static-phrase-table", "base_url": server.base_url, "timeout": 5.0}
    values.update(overrides)
    return LLMExpansionConfig(**values)


def numbered(phrases):
    return "\n".join(f"{i}. {p}" for i, p in enumerate(phrases, 1))


def test_one_request_per_distinct_action_then_rerun_is_served_from_cache(tmp_path, api_key):
    actions = ["yoga", "abseiling", "yoga", "air drumming", "abseiling"]
    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        config = make_config(server)
        result = expand_actions(actions, config, tmp_path / "cache", show_progress=False)

        assert server.request_count == 3
        assert result.num_requests == 3 and result.num_cached == 0 and result.failures == {}
        assert list(result.phrases) == ["yoga", "abseiling", "air drumming"]  # first-appearance order
        assert result.phrases == {action: PHRASE_TABLE[action] for action in ["yoga", "abseiling", "air drumming"]}
        assert result.replies["yoga"] == numbered(PHRASE_TABLE["yoga"])
        sent = {request.action: request for request in server.requests}
        assert sent["abseiling"].messages == [
            {"role": "user", "content": "Generate 5 phrases to describe the action of abseiling in simple words."}
        ]
        assert sent["abseiling"].model == "static-phrase-table"
        assert sent["abseiling"].temperature == pytest.approx(0.4)
        assert len(list((tmp_path / "cache").glob("*.json"))) == 3

        again = expand_actions(list(reversed(actions)), config, tmp_path / "cache", show_progress=False)
        assert server.request_count == 3
    assert again.num_requests == 0 and again.num_cached == 3
    assert again.phrases == {action: result.phrases[action] for action in ["abseiling", "air drumming", "yoga"]}

    # With the server gone, the cache alone still answers: no request is attempted at all.
    offline = expand_actions(actions, config, tmp_path / "cache", show_progress=False)
    assert offline.phrases == result.phrases and offline.num_requests == 0


def test_cache_entry_layout_and_key(tmp_path, api_key):
    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        config = make_config(server, temperature=0.7)
        expand_actions(["abseiling"], config, tmp_path, show_progress=False)
    prompt = DEFAULT_INSTRUCTION.replace("{action}", "abseiling")
    entry = json.loads((tmp_path / f"{cache_key('static-phrase-table', prompt, 0.7)}.json").read_text())
    assert entry["prompt"] == prompt and entry["temperature"] == 0.7 and entry["model"] == "static-phrase-table"
    assert entry["reply"] == numbered(PHRASE_TABLE["abseiling"])
    assert entry["phrases"] == PHRASE_TABLE["abseiling"]
    assert [p.name for p in tmp_path.iterdir()] == [f"{cache_key('static-phrase-table', prompt, 0.7)}.json"]


def test_cache_is_keyed_by_model_prompt_and_temperature(tmp_path, api_key):
    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        base = make_config(server)
        expand_actions(["yoga"], base, tmp_path, show_progress=False)
        expand_actions(["yoga"], dataclasses.replace(base, temperature=0.9), tmp_path, show_progress=False)
        expand_actions(["yoga"], dataclasses.replace(base, model="other-model"), tmp_path, show_progress=False)
        other_prompt = "Describe {action} with 5 short phrases."
        with OpenAICompatibleServer(PHRASE_TABLE, instruction=other_prompt) as other_server:
            config = dataclasses.replace(base, instruction=other_prompt, base_url=other_server.base_url)
            result = expand_actions(["yoga"], config, tmp_path, show_progress=False)
            assert other_server.request_count == 1 and result.phrases["yoga"] == PHRASE_TABLE["yoga"]
        # Not part of the key: concurrency, retries, timeout.
        tuned = dataclasses.replace(base, max_concurrency=1, max_retries=0, timeout=2.0)
        assert expand_actions(["yoga"], tuned, tmp_path, show_progress=False).num_requests == 0
        assert server.request_count == 3
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_rate_limit_and_server_error_are_retried(tmp_path, api_key):
    table = {k: PHRASE_TABLE[k] for k in ("abseiling", "yoga")}
    with OpenAICompatibleServer(table, scripted_statuses={"abseiling": [429, 503]}) as server:
        result = expand_actions(["abseiling", "yoga"], make_config(server), tmp_path, show_progress=False)
        assert [r.status for r in server.requests_for("abseiling")] == [429, 503, 200]
        assert [r.status for r in server.requests_for("yoga")] == [200]
    assert result.failures == {}
    assert result.phrases == table
    assert result.num_requests == 4


def test_timeout_is_retried(tmp_path, api_key):
    with OpenAICompatibleServer(PHRASE_TABLE, scripted_delays={"yoga": [5.0]}) as server:
        result = expand_actions(["yoga"], make_config(server, timeout=1.0), tmp_path, show_progress=False)
        assert server.request_count == 2
    assert result.phrases == {"yoga": PHRASE_TABLE["yoga"]} and result.num_requests == 2


def test_always_failing_action_is_recorded_not_cached_and_retried_by_a_later_run(tmp_path, api_key):
    actions = ["abseiling", "yoga", "air drumming"]
    with OpenAICompatibleServer(PHRASE_TABLE, always_fail={"yoga": 500}) as server:
        config = make_config(server, max_retries=2)
        result = expand_actions(actions, config, tmp_path, show_progress=False)
        assert len(server.requests_for("yoga")) == 3  # first attempt + 2 retries
    assert set(result.failures) == {"yoga"}
    assert "500" in result.failures["yoga"] and "InternalServerError" in result.failures["yoga"]
    assert result.phrases == {"abseiling": PHRASE_TABLE["abseiling"], "air drumming": PHRASE_TABLE["air drumming"]}
    assert result.num_requests == 5
    assert len(list(tmp_path.glob("*.json"))) == 2

    with OpenAICompatibleServer(PHRASE_TABLE) as healthy:
        rerun = expand_actions(actions, dataclasses.replace(config, base_url=healthy.base_url), tmp_path)
        assert [r.action for r in healthy.requests] == ["yoga"]
    assert rerun.failures == {} and rerun.num_cached == 2
    assert rerun.phrases == {action: PHRASE_TABLE[action] for action in actions}


def test_client_errors_are_not_retried(tmp_path, api_key):
    with OpenAICompatibleServer(PHRASE_TABLE, always_fail={"yoga": 400, "abseiling": 401}) as server:
        result = expand_actions(["yoga", "abseiling"], make_config(server), tmp_path, show_progress=False)
        assert server.request_count == 2
    assert "BadRequestError" in result.failures["yoga"]
    assert "AuthenticationError" in result.failures["abseiling"]


def test_unreachable_server_fails_every_action_after_retries(tmp_path, api_key):
    server = OpenAICompatibleServer(PHRASE_TABLE).start()
    config = make_config(server, max_retries=1)
    server.stop()  # the port is now closed
    result = expand_actions(["yoga", "abseiling"], config, tmp_path, show_progress=False)
    assert result.phrases == {}
    assert set(result.failures) == {"yoga", "abseiling"}
    assert all("APIConnectionError" in message for message in result.failures.values())
    assert result.num_requests == 4
    assert list(tmp_path.iterdir()) == []


def test_reply_without_phrases_is_a_failure(tmp_path, api_key):
    def reply_fn(action, messages):
        return "" if action == "yoga" else numbered(PHRASE_TABLE[action])

    with OpenAICompatibleServer(reply_fn=reply_fn) as server:
        result = expand_actions(["yoga", "abseiling"], make_config(server), tmp_path, show_progress=False)
        assert server.request_count == 2  # an empty reply is not retried
    assert "no phrase" in result.failures["yoga"]
    assert result.phrases == {"abseiling": PHRASE_TABLE["abseiling"]}


def test_concurrency_bound_is_respected(tmp_path, api_key):
    actions = [f"action number {i}" for i in range(6)]
    with OpenAICompatibleServer(delay=0.15) as server:
        result = expand_actions(actions, make_config(server, max_concurrency=2), tmp_path, show_progress=False)
        assert server.request_count == 6
        assert server.max_in_flight == 2
    assert result.phrases == {action: [action] for action in actions}


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, api_key):
    prompt = DEFAULT_INSTRUCTION.replace("{action}", "yoga")
    path = tmp_path / f"{cache_key('static-phrase-table', prompt, 0.4)}.json"
    path.write_text('{"reply": "1. stretch')  # as if a non-atomic writer had been interrupted
    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        result = expand_actions(["yoga"], make_config(server), tmp_path, show_progress=False)
        assert server.request_count == 1
    assert result.phrases["yoga"] == PHRASE_TABLE["yoga"]
    assert json.loads(path.read_text())["phrases"] == PHRASE_TABLE["yoga"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


def test_api_key_is_sent_but_never_persisted_or_logged(tmp_path, api_key, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "modeling_maxi"):
        caplog.set_level(logging.DEBUG, logger=name)
    with OpenAICompatibleServer(
        PHRASE_TABLE, scripted_statuses={"abseiling": [429]}, always_fail={"yoga": 401, "air drumming": 503}
    ) as server:
        config = make_config(server, max_retries=1)
        result = expand_actions(list(PHRASE_TABLE), config, tmp_path / "cache", show_progress=True)
        assert server.authorization_headers == {f"Bearer {api_key}"}
    assert set(result.failures) == {"yoga", "air drumming"}
    assert len(caplog.records) > 10  # the client's debug logging was really captured

    files = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert len(files) == 2
    for path in files:
        assert api_key not in path.read_text(encoding="utf-8")
    assert api_key not in caplog.text
    assert all(api_key not in record.getMessage() for record in caplog.records)
    captured = capfd.readouterr()
    assert api_key not in captured.out + captured.err
    assert api_key not in repr(config) and api_key not in json.dumps(dataclasses.asdict(config))
    assert api_key not in repr(result) and api_key not in repr(server.requests[0].messages)


def test_failure_messages_are_redacted_when_a_server_echoes_the_key(tmp_path, api_key, caplog):
    # A misbehaving endpoint that puts the key in its error messages: it must not reach failures or our logs.
    with caplog.at_level(logging.INFO, logger="modeling_maxi"):
        with OpenAICompatibleServer(
            PHRASE_TABLE,
            always_fail={"yoga": 400},
            scripted_statuses={"abseiling": [500]},
            error_message=f"Incorrect API key provided: {api_key}",
        ) as server:
            result = expand_actions(["yoga", "abseiling"], make_config(server), tmp_path, show_progress=False)
    assert "Incorrect API key provided: ***" in result.failures["yoga"]
    assert api_key not in result.failures["yoga"]
    assert result.phrases == {"abseiling": PHRASE_TABLE["abseiling"]}
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("modeling_maxi")]
    assert any("Incorrect API key provided: ***" in message for message in ours)  # the failure's log line
    assert all(api_key not in message for message in ours)


def test_missing_api_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(OSError, match="OPENAI_API_KEY"):
        expand_actions(["yoga"], LLMExpansionConfig(model="gpt-x"), tmp_path, show_progress=False)
    # A self-hosted endpoint is still usable without a key (a placeholder is sent).
    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        result = expand_actions(["yoga"], make_config(server), tmp_path, show_progress=False)
        assert server.authorization_headers == {"Bearer EMPTY"}
    assert result.phrases == {"yoga": PHRASE_TABLE["yoga"]}


def test_empty_action_list_makes_no_request(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = expand_actions([], LLMExpansionConfig(model="gpt-x"), tmp_path, show_progress=False)
    assert result.phrases == {} and result.failures == {} and result.num_requests == 0


@pytest.mark.parametrize(
    "actions, message",
    [("yoga", "sequence of action names"), (["yoga", ""], r"actions\[1\]"), (["yoga", None], r"actions\[1\]")],
)
def test_expand_actions_validates_actions(tmp_path, actions, message):
    with pytest.raises((TypeError, ValueError), match=message):
        expand_actions(actions, LLMExpansionConfig(model="m"), tmp_path)


def test_expand_actions_validates_config_and_cache_dir(tmp_path):
    with pytest.raises(TypeError, match="LLMExpansionConfig"):
        expand_actions(["yoga"], {"model": "m"}, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        expand_actions(["yoga"], LLMExpansionConfig(model="m"), tmp_path / "file")


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"model": ""}, "model"),
        ({"instruction": "Describe the action."}, "instruction"),
        ({"temperature": 3.0}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
        ({"base_url": "localhost:8000/v1"}, "base_url"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_config_validation_names_the_bad_field(overrides, name):
    values = {"model": "m", **overrides}
    with pytest.raises(ValueError, match=name):
        LLMExpansionConfig(**values)


def test_config_prompt_substitutes_only_the_action_placeholder():
    config = LLMExpansionConfig(model="m", instruction='Reply as JSON {"phrases": [...]} for {action}.')
    assert config.prompt_for("yoga") == 'Reply as JSON {"phrases": [...]} for yoga.'


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("1. descend on a rope\n2. rappelling\n3. climbing down", ["descend on a rope", "rappelling", "climbing down"]),
        ("1) descend on a rope.\n2) rappelling.", ["descend on a rope", "rappelling"]),
        ("(1) descend\n(2) rappel", ["descend", "rappel"]),
        ("- descend on a rope\n* rappelling\n• climbing down", ["descend on a rope", "rappelling", "climbing down"]),
        ("descend on a rope\nrappelling\n\nclimbing down\n", ["descend on a rope", "rappelling", "climbing down"]),
        ("descend on a rope, rappelling, climbing down.", ["descend on a rope", "rappelling", "climbing down"]),
        ("descend on a rope; rappelling; climbing down", ["descend on a rope", "rappelling", "climbing down"]),
        (
            "1. \"Descend on a rope.\"\n2. \u201crappelling\u201d\n3. 'climbing down'",
            ["Descend on a rope", "rappelling", "climbing down"],
        ),
        ("1. **Rappelling**\n2. __descending__", ["Rappelling", "descending"]),
        (
            "Here are 5 phrases describing abseiling:\n\n1. descend on a rope\n2. rappelling\n\nI hope this helps!",
            ["descend on a rope", "rappelling"],
        ),
        ("Sure:\ndescend on a rope\nrappelling", ["descend on a rope", "rappelling"]),
        ("1. rappelling\n2. Rappelling.\n3. descend\n4. rappelling", ["rappelling", "descend"]),
        ("1. descend on a rope 2. rappelling 3. climbing down", ["descend on a rope", "rappelling", "climbing down"]),
        ("1. descend on a rope\r\n2. rappelling\r\n", ["descend on a rope", "rappelling"]),
        ("```\n1. descend\n2. rappel\n```", ["descend", "rappel"]),
        ("1. pick up, then throw\n2. catch", ["pick up, then throw", "catch"]),  # commas inside list items are kept
        ("  rappelling  ", ["rappelling"]),
        ("", []),
        ("\n\n", []),
        ("1.\n2. .", []),
    ],
)
def test_parse_phrases(reply, expected):
    assert parse_phrases(reply) == expected


def test_parse_phrases_rejects_non_strings():
    with pytest.raises(TypeError, match="reply"):
        parse_phrases(None)


def test_load_released_phrases_preserves_lines_exactly(tmp_path):
    gpt3_verbs = tmp_path / "gpt3_verbs"
    gpt3_verbs.mkdir()
    abseiling = ["descend on a rope", "abseiling", "lowering", "going down a cliff on a rope", "rappelling"]
    (gpt3_verbs / "abseiling.txt").write_text("\n".join(abseiling) + "\n", encoding="utf-8")
    # Class names with spaces, parentheses and dots; no final newline; inner spacing kept verbatim.
    odd = ["passing the ball", "throwing  a  ball ", "Catching"]
    (gpt3_verbs / "passing American football (in game).txt").write_text("\n".join(odd), encoding="utf-8")
    (gpt3_verbs / "notes.md").write_text("not a class")

    phrases = load_released_phrases(gpt3_verbs)
    assert list(phrases) == ["abseiling", "passing American football (in game)"]
    assert phrases["abseiling"] == abseiling
    assert phrases["passing American football (in game)"] == odd


def test_load_released_phrases_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_released_phrases(tmp_path / "missing")
    with pytest.raises(ValueError, match="No `<class name>.txt`"):
        load_released_phrases(tmp_path)


def test_server_only_binds_loopback_and_validates_faults():
    with pytest.raises(ValueError, match="loopback"):
        OpenAICompatibleServer(PHRASE_TABLE, host="0.0.0.0")
    with pytest.raises(ValueError, match="scripted_statuses"):
        OpenAICompatibleServer(PHRASE_TABLE, scripted_statuses={"yoga": [42]})
    with pytest.raises(ValueError, match="phrase_table"):
        OpenAICompatibleServer({"yoga": "stretching"})


def test_server_speaks_the_chat_completions_shape(api_key):
    import openai

    with OpenAICompatibleServer(PHRASE_TABLE) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        client = openai.OpenAI(base_url=server.base_url, max_retries=0)
        completion = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Please describe air drumming."},  # found as a table key
            ],
        )
        models = client.models.list()
        client.close()
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini" and completion.created > 0
    assert completion.choices[0].message.content == numbered(PHRASE_TABLE["air drumming"])
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert [model.id for model in models.data] == ["static-phrase-table"]


def test_interrupted_run_keeps_finished_actions_and_resumes(tmp_path, api_key, monkeypatch):
    from modeling_maxi.text_bags import llm_expansion

    actions = [f"action number {i}" for i in range(6)]
    real_save = llm_expansion._save_reply
    saved = []

    def save_then_interrupt(cache_dir, config, action, reply, phrases):
        if len(saved) == 2:
            raise KeyboardInterrupt
        real_save(cache_dir, config, action, reply, phrases)
        saved.append(action)

    monkeypatch.setattr(llm_expansion, "_save_reply", save_then_interrupt)
    with OpenAICompatibleServer(delay=0.05) as server:
        config = make_config(server, max_concurrency=1)
        with pytest.raises(KeyboardInterrupt):
            expand_actions(actions, config, tmp_path, show_progress=False)
        assert server.request_count < len(actions)  # requests not yet started were dropped
        monkeypatch.setattr(llm_expansion, "_save_reply", real_save)
        server.reset()
        result = expand_actions(actions, config, tmp_path, show_progress=False)
        assert sorted(r.action for r in server.requests) == sorted(set(actions) - set(saved))
    assert result.num_cached == 2 and result.phrases == {action: [action] for action in actions}
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"] * 6


def test_retries_and_timeout_are_the_openai_clients_own(api_key):
    from modeling_maxi.text_bags.llm_expansion import _openai_client, _RequestCounter

    config = LLMExpansionConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=3, timeout=7.5)
    counter = _RequestCounter()
    client = _openai_client(config, api_key, counter)
    try:
        assert client.max_retries == 3 and float(client.timeout) == 7.5
        assert list(client._client.event_hooks["request"]) == [counter]  # every attempt is counted
    finally:
        client.close()
