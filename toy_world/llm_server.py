# SPDX-License-Identifier: Apache-2.0
# Copyright 2026 The MAXI release authors.
# Licensed under the Apache License, Version 2.0.
"""A loopback HTTP server speaking the OpenAI chat-completions API, answering from a static phrase table.

**This is not a language model.** It is an honest stand-in for one: every reply is looked up in a fixed table of
phrases given by the caller (or produced by a caller-supplied function). It exists so that the text-bag pipeline can
be exercised end to end without network access or an API key - in the test suite (where it also injects faults:
rate limits, server errors, slow replies) and in the offline demo, whose outputs must be labelled as coming from a
static phrase table rather than from an LLM.

It only ever binds a loopback address.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from modeling_maxi.text_bags.llm_expansion import DEFAULT_INSTRUCTION

logger = logging.getLogger(__name__)

ReplyFn = Callable[[str, list], str]


@dataclass
class RecordedRequest:
    """
    One request received by :class:`OpenAICompatibleServer`.

    Args:
        path (`str`): request path, e.g. `/v1/chat/completions`.
        action (`str` or `None`): action recognised in the last user message, if any.
        model (`str` or `None`): `model` field of the body.
        temperature (`float` or `None`): `temperature` field of the body.
        messages (`list`): `messages` field of the body.
        authorization (`str` or `None`): the `Authorization` header as received (kept in memory only).
        status (`int` or `None`): HTTP status of the answer; `None` while the request is still being answered.
    """

    path: str
    action: str | None
    model: str | None
    temperature: float | None
    messages: list
    authorization: str | None
    status: int | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, owner: OpenAICompatibleServer):
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        # A client that gave up (timeout test) closes its socket while a slow reply is pending; that is expected.
        logger.debug("Connection from %s ended with an error.", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server_version = "MaxiStaticPhraseTable/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        logger.debug("%s - %s", self.address_string(), format % args)

    def _send_json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server naming
        owner: OpenAICompatibleServer = self.server.owner
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(
                HTTPStatus.OK,
                {"object": "list", "data": [{"id": owner.model_name, "object": "model", "owned_by": "local"}]},
            )
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error_payload(f"Unknown path {self.path}", "not_found"))

    def do_POST(self):  # noqa: N802 - http.server naming
        owner: OpenAICompatibleServer = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        status, payload = owner._handle_post(self.path, raw, self.headers.get("Authorization"))
        try:
            self._send_json(status, payload)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("Client closed the connection before the reply to %s was sent.", self.path)


def _error_payload(message: str, error_type: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    408: "timeout",
    429: "rate_limit_exceeded",
}


class OpenAICompatibleServer:
    """
    Static phrase table behind an OpenAI-compatible `POST /v1/chat/completions` endpoint - **not an LLM**.

    A real HTTP server (`http.server.ThreadingHTTPServer` in a background thread) on a loopback address. Each
    chat-completion request is answered with a numbered list of the phrases that `phrase_table` holds for the action
    named in the last user message (recognised with `instruction`, the template the client uses, or else as the
    longest table key contained in the message). Unknown actions are answered with the action itself as the only
    phrase, unless `reply_fn(action, messages)` is given, which then produces every reply. It is a stand-in for a
    language model in tests and offline demos, and must be labelled as such wherever its output is shown.

    For tests it counts and records requests (including the `Authorization` header it saw, in memory only), tracks
    the largest number of requests in flight at once, and injects faults: per-action scripted statuses consumed one
    per request (`{"abseiling": [429]}`: first call rate-limited, then OK), per-action permanent failures
    (`{"yoga": 500}`), a delay on every reply and per-action scripted delays (to trigger client timeouts).

    Args:
        phrase_table (`Mapping[str, Sequence[str]]`, *optional*): action -> phrases.
        reply_fn (`Callable[[str, list], str]`, *optional*): builds the reply text from the action (or the whole last
            user message when no action is recognised) and the request's messages.
        host (`str`, *optional*, defaults to `"127.0.0.1"`): loopback address to bind.
        port (`int`, *optional*, defaults to 0): port; 0 picks a free one.
        instruction (`str`, *optional*): instruction template with `{action}`, used to find the action in a message.
        model_name (`str`, *optional*): model name reported in replies and by `GET /v1/models` when the request names
            none.
        delay (`float`, *optional*, defaults to 0): seconds to wait before every reply.
        scripted_statuses (`Mapping[str, Sequence[int]]`, *optional*): per action, HTTP statuses answered to its next
            requests, in order; after them the action is answered normally.
        always_fail (`Mapping[str, int]`, *optional*): per action, an HTTP status answered to every request.
        scripted_delays (`Mapping[str, Sequence[float]]`, *optional*): per action, extra seconds to wait before its
            next replies, in order.
        error_message (`str`, *optional*): message of injected errors (by default it names the status and action).

    Example:

    ```python
    >>> with OpenAICompatibleServer({"abseiling": ["descend on a rope", "rappelling"]}) as server:
    ...     config = LLMExpansionConfig(model="static-phrase-table", base_url=server.base_url)
    ...     result = expand_actions(["abseiling"], config, cache_dir="llm_cache")
    >>> result.phrases
    {'abseiling': ['descend on a rope', 'rappelling']}
    ```
    """

    def __init__(
        self,
        phrase_table: Mapping[str, Sequence[str]] | None = None,
        reply_fn: ReplyFn | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        instruction: str = DEFAULT_INSTRUCTION,
        model_name: str = "static-phrase-table",
        delay: float = 0.0,
        scripted_statuses: Mapping[str, Sequence[int]] | None = None,
        always_fail: Mapping[str, int] | None = None,
        scripted_delays: Mapping[str, Sequence[float]] | None = None,
        error_message: str | None = None,
    ):
        if phrase_table is not None and not isinstance(phrase_table, Mapping):
            raise TypeError(f"`phrase_table` must be a mapping action -> phrases, got {type(phrase_table).__name__}.")
        table: dict[str, list[str]] = {}
        for action, phrases in (phrase_table or {}).items():
            if not isinstance(action, str) or not action:
                raise ValueError(f"`phrase_table` keys must be non-empty strings, got {action!r}.")
            if isinstance(phrases, str) or not all(isinstance(phrase, str) for phrase in phrases):
                raise ValueError(f"`phrase_table[{action!r}]` must be a sequence of strings, got {phrases!r}.")
            table[action] = list(phrases)
        if reply_fn is not None and not callable(reply_fn):
            raise TypeError(f"`reply_fn` must be callable, got {reply_fn!r}.")
        if not isinstance(host, str) or not _is_loopback(host):
            raise ValueError(f"`host` must be a loopback address (127.0.0.1, ::1 or localhost), got {host!r}.")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"`port` must be an integer in [0, 65535], got {port!r}.")
        if not isinstance(instruction, str) or "{action}" not in instruction:
            raise ValueError(f"`instruction` must contain '{{action}}', got {instruction!r}.")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"`delay` must be a number of seconds >= 0, got {delay!r}.")
        for name, value in (("always_fail", always_fail),):
            for action, status in (value or {}).items():
                _check_status(f"{name}[{action!r}]", status)
        for action, statuses in (scripted_statuses or {}).items():
            for status in statuses:
                _check_status(f"scripted_statuses[{action!r}]", status)
        for action, delays in (scripted_delays or {}).items():
            for seconds in delays:
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                    raise ValueError(f"`scripted_delays[{action!r}]` holds an invalid delay {seconds!r}.")

        self.phrase_table = table
        self.reply_fn = reply_fn
        self.host = host
        self.model_name = model_name
        self.delay = float(delay)
        self.always_fail = dict(always_fail or {})
        if error_message is not None and not isinstance(error_message, str):
            raise TypeError(f"`error_message` must be None or a string, got {error_message!r}.")
        self.error_message = error_message
        self._instruction_pattern = re.compile(
            "^" + re.escape(instruction).replace(re.escape("{action}"), "(?P<action>.+?)") + "$", re.DOTALL
        )
        self._scripted_statuses: dict[str, deque[int]] = defaultdict(deque)
        for action, statuses in (scripted_statuses or {}).items():
            self._scripted_statuses[action].extend(statuses)
        self._scripted_delays: dict[str, deque[float]] = defaultdict(deque)
        for action, delays in (scripted_delays or {}).items():
            self._scripted_delays[action].extend(float(seconds) for seconds in delays)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> OpenAICompatibleServer:
        """Bind and serve in a daemon thread. Returns `self`."""
        if self._server is not None:
            raise RuntimeError("The server is already running.")
        self._server = _Server((self.host, self._requested_port), _Handler, owner=self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-compatible-server"
        )
        self._thread.daemon = True
        self._thread.start()
        logger.info("Static phrase-table server (not an LLM) listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The server is not running; call `start()` or use it as a context manager.")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """Root URL of the API, ending in `/v1` (pass it as `base_url` to the `openai` client)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # ------------------------------------------------------------------------------------------------ inspection
    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far (a copy), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Number of requests received so far."""
        with self._lock:
            return len(self._requests)

    def requests_for(self, action: str) -> list[RecordedRequest]:
        """Requests whose message named `action`."""
        return [request for request in self.requests if request.action == action]

    @property
    def authorization_headers(self) -> set[str]:
        """Distinct `Authorization` headers seen (in memory only; never logged nor written)."""
        return {request.authorization for request in self.requests if request.authorization is not None}

    def reset(self) -> None:
        """Forget recorded requests and the in-flight maximum (scripted faults are kept as they are)."""
        with self._lock:
            self._requests.clear()
            self.max_in_flight = 0

    # ------------------------------------------------------------------------------------------------ handling
    def find_action(self, message: str) -> str | None:
        """The action named in a user message: by the instruction template, else the longest table key in it."""
        match = self._instruction_pattern.match(message.strip())
        if match:
            return match.group("action")
        contained = [action for action in self.phrase_table if action in message]
        return max(contained, key=len) if contained else None

    def _reply_text(self, action: str | None, message: str, messages: list) -> str:
        if self.reply_fn is not None:
            return str(self.reply_fn(action if action is not None else message, messages))
        phrases = self.phrase_table.get(action) if action is not None else None
        if phrases is None:
            phrases = [action if action is not None else message]
        return "\n".join(f"{index}. {phrase}" for index, phrase in enumerate(phrases, start=1))

    def _handle_post(self, path: str, raw: bytes, authorization: str | None) -> tuple[int, dict]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._answer(path, raw, authorization)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, path: str, raw: bytes, authorization: str | None) -> tuple[int, dict]:
        body: dict = {}
        action = None
        messages: list = []
        content = None
        error: tuple[int, dict] | None = None
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except (UnicodeDecodeError, ValueError) as decode_error:
            error = HTTPStatus.BAD_REQUEST, _error_payload(f"Invalid JSON body: {decode_error}", _ERROR_TYPES[400])
            body = {}
        else:
            messages = body.get("messages") if isinstance(body.get("messages"), list) else []
            user_messages = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            content = user_messages[-1].get("content") if user_messages else None
            if isinstance(content, list):  # content parts
                content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            if path.rstrip("/") != "/v1/chat/completions":
                error = HTTPStatus.NOT_FOUND, _error_payload(f"Unknown path {path}", _ERROR_TYPES[404])
            elif not isinstance(content, str) or not content.strip():
                message = "`messages` must contain a user message with text."
                error = HTTPStatus.BAD_REQUEST, _error_payload(message, _ERROR_TYPES[400])
            else:
                action = self.find_action(content)

        # Recorded on arrival (status filled in once answered), so a slow request is counted while it waits.
        record = RecordedRequest(
            path=path,
            action=action,
            model=body.get("model"),
            temperature=body.get("temperature"),
            messages=messages,
            authorization=authorization,
        )
        with self._lock:
            self._requests.append(record)
        status, payload = error if error is not None else self._scripted_answer(action, content, messages, body)
        record.status = int(status)
        return int(status), payload

    def _scripted_answer(self, action: str | None, content: str, messages: list, body: dict) -> tuple[int, dict]:
        with self._lock:
            scripted_delay = self._scripted_delays[action].popleft() if self._scripted_delays.get(action) else 0.0
            scripted_status = self._scripted_statuses[action].popleft() if self._scripted_statuses.get(action) else None
        wait = self.delay + scripted_delay
        if wait > 0:
            time.sleep(wait)
        status = scripted_status if scripted_status is not None else self.always_fail.get(action, HTTPStatus.OK)
        if status != HTTPStatus.OK:
            error_type = _ERROR_TYPES.get(status, "server_error")
            message = self.error_message or f"Injected failure {status} for action {action!r}."
            return status, _error_payload(message, error_type)
        text = self._reply_text(action, content, messages)
        prompt_tokens = len(content.split())
        completion_tokens = len(text.split())
        return HTTPStatus.OK, {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model_name,
            "system_fingerprint": "static-phrase-table",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _check_status(name: str, status) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"`{name}` must be an HTTP status code, got {status!r}.")
