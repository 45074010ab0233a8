"""The ``LLM`` protocol and its errors (backends are built by :mod:`opsloop.llm.factory`).

An LLM in opsloop only writes narrative: it receives a prompt built from computed facts and
retrieved passages (:mod:`opsloop.llm.prompts`) and returns one JSON object that must match a JSON
schema. Every failure is an :class:`LLMError` with a human-readable ``reason``, so the caller can
fall back to the rule-based assessment and record why (:mod:`opsloop.llm.narrate`).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol, runtime_checkable

#: The LLM backends by name; ``off`` means rules only.
LLMKind = Literal["off", "ollama", "llamacpp"]


class LLMError(Exception):
    """An LLM call produced no usable answer. ``reason`` says why, in one line."""

    kind = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


class LLMTimeout(LLMError):
    """The backend did not answer within the time budget."""

    kind = "timeout"


class LLMUnavailable(LLMError):
    """The backend cannot be reached or loaded (server down, model missing, library not installed)."""

    kind = "unavailable"


class LLMBadOutput(LLMError):
    """The backend answered, but not with one JSON object (truncated, non-JSON, wrong shape)."""

    kind = "bad_output"


@runtime_checkable
class LLM(Protocol):
    """A text generator constrained to a JSON schema.

    ``name`` is the backend (``ollama``, ``llamacpp``), ``model`` the model it runs; an assessment
    written by it is tagged ``generated_by = f"{name}:{model}"``.
    """

    name: str
    model: str

    def generate(self, prompt: str, schema: dict[str, Any], timeout: float,
                 system: str | None = None) -> dict[str, Any]:
        """Answer ``prompt`` (the user turn; ``system`` the optional system turn) with one JSON object
        that the backend tries to constrain to ``schema``, within ``timeout`` seconds in total.

        Returns the parsed object (it is *not* validated against ``schema`` here: see
        :mod:`opsloop.llm.validate`). Raises :class:`LLMTimeout`, :class:`LLMUnavailable` or
        :class:`LLMBadOutput`.
        """
        ...


def parse_json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as one JSON object (surrounding Markdown code fences tolerated).

    Raises :class:`LLMBadOutput` when it is not JSON or not an object.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    if not body.strip():
        raise LLMBadOutput("empty answer")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LLMBadOutput(f"answer is not JSON ({exc.msg} at char {exc.pos}): {body[:80]!r}") from None
    if not isinstance(value, dict):
        raise LLMBadOutput(f"answer is JSON but not an object: {type(value).__name__}")
    return value
