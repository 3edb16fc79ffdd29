# SPDX-License-Identifier: Apache-2.0
"""LLM expansion of action names into short descriptive phrases (MAXI, paper sec. 3.2 "LLM").

For every *distinct* action of the dictionary that CLIP matched to at least one video, a chat model behind any
OpenAI-compatible endpoint is asked once for a few simple phrases describing the action. Replies are parsed into
phrases and cached on disk, keyed by a hash of ``(model, prompt, temperature)``, so that a rerun makes no request.

The API key is read from the ``OPENAI_API_KEY`` environment variable at call time only: it is not a field of
:class:`LLMExpansionConfig`, and it is never logged nor written to the cache.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTION = "Generate 5 phrases to describe the action of {action} in simple words."
API_KEY_ENV_VAR = "OPENAI_API_KEY"
# Placeholder sent to self-hosted servers (vLLM, llama.cpp, ...) that accept any key when none is configured.
_NO_KEY_PLACEHOLDER = "EMPTY"
_CACHE_FORMAT_VERSION = 1


@dataclass
class LLMExpansionConfig:
    """
    Settings of the LLM expansion step.

    Args:
        model (`str`):
            Name of the chat model, as the endpoint knows it (e.g. `"gpt-3.5-turbo"` or a model served by vLLM).
        base_url (`str`, *optional*):
            Root of an OpenAI-compatible API, ending in `/v1` (e.g. `"http://127.0.0.1:8000/v1"`). `None` uses the
            `openai` client's default (the OpenAI API, or the `OPENAI_BASE_URL` environment variable).
        instruction (`str`, *optional*, defaults to the paper's instruction):
            User message sent for each action; must contain the placeholder `{action}`.
        temperature (`float`, *optional*, defaults to 0.4):
            Sampling temperature, in `[0, 2]`.
        max_concurrency (`int`, *optional*, defaults to 4):
            Maximum number of requests in flight at the same time.
        max_retries (`int`, *optional*, defaults to 5):
            Retries after the first attempt, made by the `openai` client itself: on timeouts, connection errors and
            the statuses 408, 409, 429 and 5xx, with exponential backoff and jitter, honouring a server's
            `Retry-After`.
        timeout (`float`, *optional*, defaults to 60.0):
            Timeout of one request, in seconds.
        max_tokens (`int`, *optional*):
            Upper bound on the length of a reply; `None` leaves it to the server.

    The API key is deliberately not a field: it is read from `OPENAI_API_KEY` when requests are made.
    """

    model: str
    base_url: str | None = None
    instruction: str = DEFAULT_INSTRUCTION
    temperature: float = 0.4
    max_concurrency: int = 4
    max_retries: int = 5
    timeout: float = 60.0
    max_tokens: int | None = None

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"`model` must be a non-empty model name, got {self.model!r}.")
        if self.base_url is not None and (not isinstance(self.base_url, str) or not self.base_url.strip()):
            raise ValueError(f"`base_url` must be None or a non-empty URL, got {self.base_url!r}.")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"`base_url` must start with http:// or https://, got {self.base_url!r}.")
        if not isinstance(self.instruction, str) or "{action}" not in self.instruction:
            raise ValueError(f"`instruction` must contain the placeholder '{{action}}', got {self.instruction!r}.")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            raise ValueError(f"`temperature` must be a number, got {self.temperature!r}.")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"`temperature` must be in [0, 2], got {self.temperature!r}.")
        for name, minimum in (("max_concurrency", 1), ("max_retries", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1
        ):
            raise ValueError(f"`max_tokens` must be None or a positive integer, got {self.max_tokens!r}.")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ValueError(f"`timeout` must be a positive number of seconds, got {self.timeout!r}.")

    def prompt_for(self, action: str) -> str:
        """The user message sent for `action` (the instruction with `{action}` substituted)."""
        if not isinstance(action, str) or not action.strip():
            raise ValueError(f"`action` must be a non-empty string, got {action!r}.")
        # `str.replace` rather than `str.format`: an instruction may legitimately contain other braces.
        return self.instruction.replace("{action}", action)


@dataclass
class ExpansionResult:
    """
    Outcome of :func:`expand_actions`.

    Args:
        phrases (`dict[str, list[str]]`):
            Parsed phrases per action, in the order the actions were first given; failed actions are absent.
        failures (`dict[str, str]`):
            Error message per action that still failed after all retries (or whose reply held no phrase).
        num_requests (`int`):
            HTTP requests sent during this call, retries included (0 when everything came from the cache).
        num_cached (`int`):
            Actions answered from the on-disk cache.
        replies (`dict[str, str]`):
            Raw reply text per successful action (for provenance in dataset cards).
    """

    phrases: dict[str, list[str]]
    failures: dict[str, str]
    num_requests: int
    num_cached: int = 0
    replies: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# Reply parsing
# --------------------------------------------------------------------------------------------------------------------

# A list marker at the start of a line: "1." "1)" "(1)" "1:" "-" "*" "•" "a)" ...
_LIST_MARKER = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|\(?[a-zA-Z]\)|[-*•‣◦·–—+])\s+")
# Inline numbering on a single line: "1. foo 2. bar 3. baz"
_INLINE_NUMBER = re.compile(r"(?:^|\s)\(?\d{1,3}[.)]\s+")
_QUOTES = "\"'`“”‘’«»"
_TRAILING_PUNCT = ".;,!:"


def _clean_phrase(text: str) -> str:
    text = text.replace("**", "").replace("__", "")
    text = " ".join(text.split())
    previous = None
    # Quotes and trailing periods can nest ('"Rappelling."', '"rappelling".'), so strip until stable.
    while previous != text:
        previous = text
        text = text.strip().strip(_QUOTES).strip().rstrip(_TRAILING_PUNCT).rstrip()
    return text


def parse_phrases(reply: str) -> list[str]:
    """
    Split an LLM reply into phrases.

    Understands numbered lists (`1.`, `1)`, `(1)`), bulleted lists (`-`, `*`, `•`), one phrase per line, several
    numbered items on one line, and a single comma- or semicolon-separated line. When some lines are list items,
    the other lines (an intro such as "Here are 5 phrases:" or a closing remark) are dropped. Markdown emphasis,
    surrounding quotes and trailing periods are removed; duplicates (case-insensitive) are dropped, order is kept.

    Args:
        reply (`str`): the reply text.

    Returns:
        `list[str]`: the phrases, possibly empty.

    Example:

    ```python
    >>> parse_phrases('Here are 3 phrases:\\n1. "Rappelling down."\\n2) descend on a rope\\n- rappelling down')
    ['Rappelling down', 'descend on a rope']
    ```
    """
    if not isinstance(reply, str):
        raise TypeError(f"`reply` must be a string, got {type(reply).__name__}: {reply!r}.")
    lines = [line.strip() for line in reply.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not line.startswith("```")]

    if len(lines) == 1 and len(_INLINE_NUMBER.findall(lines[0])) > 1:
        items = [part for part in _INLINE_NUMBER.split(lines[0]) if part.strip()]
    else:
        marked = [line for line in lines if _LIST_MARKER.match(line)]
        if marked:
            items = [_LIST_MARKER.sub("", line, count=1) for line in marked]
        else:
            items = [line for line in lines if not line.endswith(":")]
            if len(items) == 1 and re.search(r"[,;]", items[0]):
                items = re.split(r"[,;]", items[0])

    phrases: list[str] = []
    seen: set[str] = set()
    for item in items:
        phrase = _clean_phrase(item)
        key = phrase.casefold()
        if phrase and key not in seen:
            seen.add(key)
            phrases.append(phrase)
    return phrases


# --------------------------------------------------------------------------------------------------------------------
# Released bags
# --------------------------------------------------------------------------------------------------------------------


def load_released_phrases(gpt3_verbs_dir: str | os.PathLike) -> dict[str, list[str]]:
    """
    Read LLM-derived phrases released by the MAXI authors (`gpt3_verbs/<class name>.txt`, one entry per line).

    Args:
        gpt3_verbs_dir (`str` or `os.PathLike`): the `gpt3_verbs` directory.

    Returns:
        `dict[str, list[str]]`: class name (file name without `.txt`) -> lines of the file, exactly as written and in
        file order (line terminators removed; empty lines skipped). Classes are sorted by name.
    """
    if not isinstance(gpt3_verbs_dir, (str, os.PathLike)):
        raise TypeError(f"`gpt3_verbs_dir` must be a path, got {type(gpt3_verbs_dir).__name__}: {gpt3_verbs_dir!r}.")
    directory = Path(gpt3_verbs_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"`gpt3_verbs_dir` is not a directory: {str(directory)!r}.")
    files = sorted(path for path in directory.iterdir() if path.is_file() and path.name.endswith(".txt"))
    if not files:
        raise ValueError(f"No `<class name>.txt` file in `gpt3_verbs_dir` {str(directory)!r}.")
    phrases: dict[str, list[str]] = {}
    for path in files:
        class_name = path.name[: -len(".txt")]
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
        phrases[class_name] = [line for line in text.splitlines() if line != ""]
    return phrases


# --------------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------------


def cache_key(model: str, prompt: str, temperature: float) -> str:
    """Hex SHA-256 identifying one request: `(model, prompt, temperature)`."""
    payload = json.dumps({"model": model, "prompt": prompt, "temperature": float(temperature)}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.json"


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            entry = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("Ignoring unreadable LLM cache file %s (%s); the action will be requested again.", path, error)
        return None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("reply"), str)
        or not isinstance(entry.get("phrases"), list)
        or not entry["phrases"]
    ):
        logger.warning("Ignoring malformed LLM cache file %s; the action will be requested again.", path)
        return None
    return entry


def _write_json_atomic(path: Path, payload: dict) -> None:
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            json.dump(payload, handle, ensure_ascii=False, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


def _save_reply(cache_dir: Path, config: LLMExpansionConfig, action: str, reply: str, phrases: list[str]) -> None:
    prompt = config.prompt_for(action)
    payload = {
        "format_version": _CACHE_FORMAT_VERSION,
        "model": config.model,
        "prompt": prompt,
        "temperature": float(config.temperature),
        "action": action,
        "reply": reply,
        "phrases": phrases,
    }
    _write_json_atomic(_cache_path(cache_dir, cache_key(config.model, prompt, config.temperature)), payload)


# --------------------------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------------------------


class _RequestCounter:
    """Counts the HTTP requests the client sends (retries included); an httpx `request` event hook."""

    def __init__(self):
        self._lock = threading.Lock()
        self.value = 0

    def __call__(self, request) -> None:
        with self._lock:
            self.value += 1


def _redact(text: str, secret: str | None) -> str:
    if secret and secret != _NO_KEY_PLACEHOLDER:
        text = text.replace(secret, "***")
    return text


def _request_phrases(client, action: str, config: LLMExpansionConfig) -> tuple[str, list[str]]:
    """Ask for one action (the client retries what is worth retrying); returns (reply, phrases) or raises."""
    extra = {} if config.max_tokens is None else {"max_tokens": config.max_tokens}
    completion = client.chat.completions.create(
        model=config.model,
        messages=[{"role": "user", "content": config.prompt_for(action)}],
        temperature=config.temperature,
        **extra,
    )
    if not completion.choices or completion.choices[0].message is None:
        raise ValueError("the reply has no choices")
    reply = completion.choices[0].message.content or ""
    phrases = parse_phrases(reply)
    if not phrases:
        raise ValueError(f"no phrase could be parsed from the reply {reply[:200]!r}")
    return reply, phrases


def _request_and_cache(client, action: str, config: LLMExpansionConfig, cache_dir: Path) -> tuple[str, list[str]]:
    """`_request_phrases`, the reply cached on disk by the same worker before it takes the next request: a killed
    run loses at most the `max_concurrency` requests in flight."""
    reply, phrases = _request_phrases(client, action, config)
    _save_reply(cache_dir, config, action, reply, phrases)
    return reply, phrases


def _openai_client(config: LLMExpansionConfig, api_key: str | None, counter: _RequestCounter):
    """The `openai` client with the run's endpoint, retries and timeout; every HTTP request it sends is counted."""
    import openai

    return openai.OpenAI(
        base_url=config.base_url,
        api_key=api_key or _NO_KEY_PLACEHOLDER,
        max_retries=config.max_retries,
        timeout=config.timeout,
        http_client=openai.DefaultHttpxClient(event_hooks={"request": [counter]}),
    )


def _validate_actions(actions: Sequence[str]) -> list[str]:
    if isinstance(actions, (str, bytes)) or not isinstance(actions, Sequence):
        raise TypeError(f"`actions` must be a sequence of action names, got {type(actions).__name__}: {actions!r}.")
    distinct: dict[str, None] = {}
    for index, action in enumerate(actions):
        if not isinstance(action, str) or not action.strip():
            raise ValueError(f"`actions[{index}]` must be a non-empty string, got {action!r}.")
        distinct.setdefault(action, None)
    return list(distinct)


def expand_actions(
    actions: Sequence[str],
    config: LLMExpansionConfig,
    cache_dir: str | os.PathLike,
    *,
    show_progress: bool = True,
) -> ExpansionResult:
    """
    Expand action names into phrases with an LLM: one request per distinct action, cached on disk.

    Requests go through the `openai` client (`OpenAI(base_url=config.base_url, max_retries=config.max_retries,
    timeout=config.timeout)`, key from the `OPENAI_API_KEY` environment variable) from a pool of
    `config.max_concurrency` threads; the client retries rate limits (429), server errors (5xx), 408/409, timeouts and
    connection errors with exponential backoff and the server's `Retry-After`. Each success is written to
    `cache_dir/<sha256(model, prompt, temperature)>.json` atomically (temporary file + `os.replace`), so an
    interrupted run loses nothing and a rerun makes no request. An action that still fails is reported in
    `failures`, not cached (a later run retries it), and does not stop the others.

    Args:
        actions (`Sequence[str]`): action names; duplicates are requested once.
        config (`LLMExpansionConfig`): model, endpoint, instruction, temperature, retry and concurrency settings.
        cache_dir (`str` or `os.PathLike`): directory of the reply cache (created if missing).
        show_progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar.

    Returns:
        `ExpansionResult`
    """
    if not isinstance(config, LLMExpansionConfig):
        raise TypeError(f"`config` must be an LLMExpansionConfig, got {type(config).__name__}: {config!r}.")
    if not isinstance(cache_dir, (str, os.PathLike)) or str(cache_dir) == "":
        raise TypeError(f"`cache_dir` must be a directory path, got {cache_dir!r}.")
    distinct = _validate_actions(actions)
    cache_path = Path(cache_dir)
    if cache_path.exists() and not cache_path.is_dir():
        raise NotADirectoryError(f"`cache_dir` exists and is not a directory: {str(cache_path)!r}.")
    cache_path.mkdir(parents=True, exist_ok=True)

    phrases: dict[str, list[str]] = {}
    replies: dict[str, str] = {}
    failures: dict[str, str] = {}
    to_request: list[str] = []
    for action in distinct:
        key = cache_key(config.model, config.prompt_for(action), config.temperature)
        entry = _read_cache(_cache_path(cache_path, key))
        if entry is None:
            to_request.append(action)
        else:
            phrases[action] = [str(phrase) for phrase in entry["phrases"]]
            replies[action] = entry["reply"]
    num_cached = len(distinct) - len(to_request)
    counter = _RequestCounter()

    if to_request:
        api_key = os.environ.get(API_KEY_ENV_VAR) or None
        if api_key is None:
            if config.base_url is None:
                raise OSError(
                    f"The {API_KEY_ENV_VAR} environment variable is not set; it is required for the OpenAI API "
                    f"({len(to_request)} action(s) are not cached). Set it, or pass `base_url` of a local server."
                )
            logger.warning("%s is not set; sending requests to `base_url` with a placeholder key.", API_KEY_ENV_VAR)
        client = _openai_client(config, api_key, counter)
        logger.info(
            "Requesting LLM phrases for %d action(s) (%d cached) from model %r with up to %d concurrent requests.",
            len(to_request),
            num_cached,
            config.model,
            config.max_concurrency,
        )
        results: dict[str, tuple[str, list[str]]] = {}
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix="llm-expansion"
        )
        try:
            futures = {
                pool.submit(_request_and_cache, client, action, config, cache_path): action for action in to_request
            }
            with tqdm(total=len(to_request), desc="LLM expansion", unit="class", disable=not show_progress) as bar:
                for future in concurrent.futures.as_completed(futures):
                    action = futures[future]
                    bar.update(1)
                    try:
                        reply, action_phrases = future.result()
                    except Exception as error:
                        message = _redact(f"{type(error).__name__}: {error}", api_key)
                        failures[action] = message
                        logger.warning("LLM expansion failed for %r: %s", action, message)
                        continue
                    results[action] = (reply, action_phrases)
        finally:
            # On an interruption, requests not yet started are dropped instead of being waited for.
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
        for action in to_request:
            if action in results:
                replies[action], phrases[action] = results[action]

    ordered = {action: phrases[action] for action in distinct if action in phrases}
    ordered_replies = {action: replies[action] for action in distinct if action in replies}
    ordered_failures = {action: failures[action] for action in distinct if action in failures}
    logger.info(
        "LLM expansion: %d action(s), %d from cache, %d request(s) sent, %d failed.",
        len(distinct),
        num_cached,
        counter.value,
        len(ordered_failures),
    )
    return ExpansionResult(
        phrases=ordered,
        failures=ordered_failures,
        num_requests=counter.value,
        num_cached=num_cached,
        replies=ordered_replies,
    )
