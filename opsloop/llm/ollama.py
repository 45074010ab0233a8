"""Ollama backend through the official ``ollama`` Python client (``POST /api/chat``).

Structured output: the JSON schema is passed as ``format`` (Ollama compiles it into a grammar);
``temperature`` 0 and ``num_predict`` bound the answer (default: the schema's upper bound,
:func:`~opsloop.llm.sizing.answer_tokens`, at least 256 tokens).

Context: Ollama's default window is 2048 tokens and it *silently* truncates a longer prompt, so
opsloop always sends ``num_ctx``: the configured one, else one sized per call
(:func:`~opsloop.llm.sizing.context_for` of the estimated prompt tokens plus ``num_predict``, rounded
up to 1024 tokens). Ollama reloads the model when ``num_ctx`` changes; the rounding keeps that rare,
and a configured ``num_ctx`` pins it. A prompt beyond the sizing cap (32768 tokens) is refused with
:class:`LLMUnavailable`. ``timeout`` is the budget for the whole call,
retries included: each attempt gets what is left of it, and between attempts the backoff doubles
(``backoff``, ``2*backoff``, ...) without outlasting the deadline.

Error mapping: connection refused / DNS → :class:`LLMUnavailable` (retried); HTTP timeout →
:class:`LLMTimeout` (retried while budget remains); HTTP 5xx / 429 → retried, then
:class:`LLMUnavailable`; HTTP 404 (model not pulled) and other 4xx → :class:`LLMUnavailable` at once;
a body that is not a chat response, or a message that is not one JSON object → :class:`LLMBadOutput`
(not retried: at temperature 0 the answer would repeat).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
from pydantic import ValidationError

from opsloop.llm.base import LLMBadOutput, LLMError, LLMTimeout, LLMUnavailable, parse_json_object
from opsloop.llm.sizing import answer_budget, context_for, estimate_chat

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "llama3.2"


class _Retry(Exception):
    def __init__(self, error: LLMError) -> None:
        self.error = error


class OllamaLLM:
    """Ollama chat backend (see the module docstring).

    ``host``: server URL (default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``); ``model``: an
    Ollama model tag already pulled on that server; ``retries``: extra attempts after the first;
    ``backoff``: seconds before the first retry; ``max_tokens``: ``num_predict`` in tokens (default
    ``None``: sized from the answer schema); ``keep_alive``: how long Ollama keeps the model loaded;
    ``num_ctx``: context window in tokens (default ``None``: sized per call).
    """

    name = "ollama"

    def __init__(self, host: str | None = None, model: str = DEFAULT_MODEL, retries: int = 2,
                 backoff: float = 0.5, max_tokens: int | None = None, keep_alive: str | float | None = None,
                 num_ctx: int | None = None) -> None:
        self.host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
        self.model = model
        self.retries = max(int(retries), 0)
        self.backoff = float(backoff)
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.keep_alive = keep_alive
        self.num_ctx = num_ctx

    def options(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        """The request's ``options``: temperature 0, seed 0, ``num_predict`` and ``num_ctx`` (tokens;
        see the module docstring). Raises :class:`LLMUnavailable` when a sized context would exceed
        the cap."""
        num_predict = answer_budget(schema, self.max_tokens)
        if self.num_ctx:
            num_ctx = int(self.num_ctx)
        else:
            try:
                num_ctx = context_for(estimate_chat(messages), num_predict)
            except ValueError as exc:
                raise LLMUnavailable(f"not sent to Ollama: {exc}") from None
        return {"temperature": 0.0, "seed": 0, "num_predict": num_predict, "num_ctx": num_ctx}

    def generate(self, prompt: str, schema: dict[str, Any], timeout: float,
                 system: str | None = None) -> dict[str, Any]:
        """One JSON object for ``prompt`` (see :meth:`opsloop.llm.base.LLM.generate`)."""
        try:
            import ollama
        except ImportError as exc:
            raise LLMUnavailable(f"the ollama client is not installed ({exc})") from exc
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}]
        options = self.options(messages, schema)
        deadline = time.monotonic() + timeout
        last: LLMError | None = None
        attempts = 0
        while attempts <= self.retries:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            attempts += 1
            try:
                return self._attempt(ollama, messages, schema, options, left)
            except _Retry as retry:
                last = retry.error
            pause = self.backoff * (2 ** (attempts - 1))
            if attempts > self.retries or deadline - time.monotonic() <= pause:
                break
            time.sleep(pause)
        if last is None:
            raise LLMTimeout(f"no time left to call Ollama within {timeout:.1f} s")
        if attempts > 1:
            last.reason = f"{last.reason} (after {attempts} attempts)"
        raise last

    def _attempt(self, ollama: Any, messages: list[dict[str, str]], schema: dict[str, Any],
                 options: dict[str, Any], timeout: float) -> dict[str, Any]:
        client = ollama.Client(host=self.host, timeout=httpx.Timeout(timeout))
        try:
            response = client.chat(model=self.model, messages=messages, format=schema, options=options,
                                   keep_alive=self.keep_alive, stream=False)
        except ConnectionError as exc:  # the client's translation of httpx.ConnectError
            raise _Retry(LLMUnavailable(f"cannot connect to Ollama at {self.host} ({exc.__class__.__name__})")) from None
        except httpx.TimeoutException as exc:
            raise _Retry(LLMTimeout(f"Ollama at {self.host} did not answer within {timeout:.1f} s "
                                    f"({exc.__class__.__name__})")) from None
        except httpx.TransportError as exc:
            raise _Retry(LLMUnavailable(f"transport error talking to Ollama at {self.host}: "
                                        f"{exc.__class__.__name__}: {exc}")) from None
        except ollama.ResponseError as exc:
            status = exc.status_code
            if status == 404:
                raise LLMUnavailable(f"Ollama model {self.model!r} not available at {self.host}: "
                                     f"{exc.error} (run `ollama pull {self.model}`)") from None
            if status == 429 or status >= 500 or status < 0:
                raise _Retry(LLMUnavailable(f"Ollama error (HTTP {status}): {exc.error}")) from None
            raise LLMUnavailable(f"Ollama rejected the request (HTTP {status}): {exc.error}") from None
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            raise LLMBadOutput(f"Ollama's response is not a chat response: {exc.__class__.__name__}: "
                               f"{str(exc)[:120]}") from None
        finally:
            client.close()
        message = getattr(response, "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise LLMBadOutput("Ollama's response has no message content")
        if getattr(response, "done_reason", None) == "length":
            raise LLMBadOutput(f"answer truncated at num_predict={options['num_predict']}")
        return parse_json_object(content)
