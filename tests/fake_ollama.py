"""A local stand-in for an Ollama server, and the answer set it replays.

:class:`FakeOllama` is a ``ThreadingHTTPServer`` on a loopback port that speaks Ollama's real wire
format, so :class:`opsloop.llm.ollama.OllamaLLM` talks to it through the official ``ollama`` client
exactly as it would to ``ollama serve``:

* ``POST /api/chat`` — non-streaming (``"stream": false``): one JSON body ``{model, created_at,
  message: {role: "assistant", content}, done: true, done_reason, total_duration, load_duration,
  prompt_eval_count, prompt_eval_duration, eval_count, eval_duration}`` (durations in nanoseconds);
  streaming (``"stream": true``, Ollama's default when the field is absent): NDJSON lines, one per
  piece of the content with ``done: false``, then a last line with empty content, ``done: true``,
  ``done_reason`` and the counters. An unknown model is a 404 ``{"error": "model 'x' not found"}``;
  a body that is not JSON, or has no ``model``, a 400.
* ``GET /api/tags`` (the models it serves), ``GET /api/version``, ``GET /`` ("Ollama is running").

What the assistant says comes from a pluggable ``responder``: ``(request_json) -> str`` (the
message content), or a :class:`Reply` to also choose ``done_reason``, an HTTP error, a raw body or
a delay. Every request is recorded in ``requests`` (``{"method", "path", **body}``), every chat
response sent in ``responses``.

Token counters are estimated from the text (:func:`count_tokens`). Durations are measured: the
responder's wall time is ``eval_duration``; with ``tokens_per_s`` set, the server also paces
the answer like a model generating at that rate (it sleeps) and reports that duration instead.

The answer set (``tests/fixtures/llm_answers.yaml``): :func:`load_answers` reads its entries and
:func:`render` fills an entry's ``{placeholders}`` from a built :class:`~opsloop.llm.prompts.Prompt`
(:func:`answer_context` parses them from the prompt's facts and evidence lines), giving the
message content the fake serves for that incident.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

ANSWERS_PATH = Path(__file__).resolve().parent / "fixtures" / "llm_answers.yaml"
VERSION = "0.6.3"


@dataclass
class Reply:
    """What the fake answers to one chat request: ``content`` with ``done_reason``; or an HTTP error
    ``status`` with ``error`` (Ollama's ``{"error": ...}`` body); or a verbatim ``body`` with
    ``content_type`` (a proxy's HTML page, a body that is not a chat response). ``delay``: seconds to
    wait first (a slow model)."""

    content: str = ""
    done_reason: str = "stop"
    status: int = 200
    error: str | None = None
    body: str | bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0


Responder = Callable[[dict[str, Any]], "str | Reply"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*\S+|\s+$")


def count_tokens(text: str) -> int:
    """An estimate of a model's token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _model_matches(name: str, served: str) -> bool:
    def norm(m: str) -> str:
        return m if ":" in m else f"{m}:latest"

    return norm(name) == norm(served)


class FakeOllama(ThreadingHTTPServer):
    """A fake Ollama server (see the module docstring); use it as a context manager or call
    :meth:`start` / :meth:`stop`.

    ``responder``: what the assistant answers (default: ``"{}"``); ``models``: the model tags it
    serves (``llama3.2`` also answers ``llama3.2:latest``); ``tokens_per_s``: pace the answers like
    a model generating that many tokens per second (``None``: answer at once).
    """

    daemon_threads = True

    def __init__(self, responder: Responder | None = None, models: tuple[str, ...] | list[str] = ("llama3.2",),
                 tokens_per_s: float | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder: Responder = responder or (lambda request: "{}")
        self.models = list(models)
        self.tokens_per_s = tokens_per_s
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (timeouts) leaves a broken pipe behind

    def serves(self, model: str) -> bool:
        return any(_model_matches(model, m) for m in self.models)

    def record(self, entry: dict[str, Any], into: list[dict[str, Any]]) -> None:
        with self._lock:
            into.append(entry)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    server: FakeOllama
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes | str, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj))

    def do_GET(self) -> None:
        self.server.record({"method": "GET", "path": self.path}, self.server.requests)
        if self.path == "/":
            return self._send(200, "Ollama is running", "text/plain; charset=utf-8")
        if self.path == "/api/version":
            return self._json(200, {"version": VERSION})
        if self.path == "/api/tags":
            models = [{"name": m if ":" in m else f"{m}:latest", "model": m if ":" in m else f"{m}:latest",
                       "modified_at": "2026-11-01T00:00:00Z", "size": 2_019_393_189,
                       "digest": f"{abs(hash(m)):064x}"[:64],
                       "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                                   "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}
                      for m in self.server.models]
            return self._json(200, {"models": models})
        return self._send(404, "404 page not found", "text/plain")

    def do_POST(self) -> None:
        t0 = time.perf_counter_ns()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            request = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self.server.record({"method": "POST", "path": self.path, "raw": raw[:200]}, self.server.requests)
            return self._json(400, {"error": f"invalid character in request body: {exc.msg}"})
        self.server.record({"method": "POST", "path": self.path, **request}, self.server.requests)
        if self.path != "/api/chat":
            return self._send(404, "404 page not found", "text/plain")
        model = request.get("model")
        if not model:
            return self._json(400, {"error": "model is required"})
        if not self.server.serves(model):
            return self._json(404, {"error": f"model '{model}' not found"})
        loaded = time.perf_counter_ns()

        t_gen = time.perf_counter_ns()
        reply = self.server.responder(request)
        reply = reply if isinstance(reply, Reply) else Reply(content=str(reply))
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            return self._json(reply.status, {"error": reply.error or "error"})
        if reply.body is not None:
            return self._send(200, reply.body, reply.content_type)

        prompt_text = "".join(str(m.get("content", "")) for m in request.get("messages") or [])
        prompt_tokens, tokens = count_tokens(prompt_text), count_tokens(reply.content)
        eval_ns = max(time.perf_counter_ns() - t_gen, 1)
        if self.server.tokens_per_s:
            eval_ns = int(tokens / self.server.tokens_per_s * 1e9)
            time.sleep(max(eval_ns - (time.perf_counter_ns() - t_gen), 0) / 1e9)
        counters = {"total_duration": 0, "load_duration": loaded - t0, "prompt_eval_count": prompt_tokens,
                    "prompt_eval_duration": max(t_gen - loaded, 1), "eval_count": tokens, "eval_duration": eval_ns}
        head = {"model": model, "created_at": _now()}
        if request.get("stream", True):
            return self._stream(head, reply, counters, t0)
        counters["total_duration"] = time.perf_counter_ns() - t0
        body = {**head, "message": {"role": "assistant", "content": reply.content}, "done": True,
                "done_reason": reply.done_reason, **counters}
        self.server.record(body, self.server.responses)
        self._json(200, body)

    def _stream(self, head: dict[str, Any], reply: Reply, counters: dict[str, int], t0: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj: dict[str, Any]) -> None:
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        for piece in _PIECE.findall(reply.content):
            chunk({**head, "message": {"role": "assistant", "content": piece}, "done": False})
        counters["total_duration"] = time.perf_counter_ns() - t0
        last = {**head, "message": {"role": "assistant", "content": ""}, "done": True,
                "done_reason": reply.done_reason, **counters}
        self.server.record({**last, "message": {"role": "assistant", "content": reply.content}},
                           self.server.responses)
        chunk(last)
        self.wfile.write(b"0\r\n\r\n")


# ---------------------------------------------------------------------------------------------
# The answer set
# ---------------------------------------------------------------------------------------------

SETS = ("good", "hostile", "degenerate")
EXPECTS = ("accept", "reject", "accept_keep_category")


def load_answers(path: Path = ANSWERS_PATH) -> list[dict[str, Any]]:
    """The entries of the answer set: ``name``, ``set``, ``expect``, optional ``reason``,
    ``applies_to`` (the rules' categories it is written for; absent: every incident), and either
    ``answer`` (a JSON object template) or ``raw`` (the verbatim content template), optional
    ``done_reason``."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = doc["answers"]
    for e in entries:
        if e.get("set") not in SETS or e.get("expect") not in EXPECTS:
            raise ValueError(f"answer {e.get('name')!r}: set must be one of {SETS}, expect one of {EXPECTS}")
        if ("answer" in e) == ("raw" in e):
            raise ValueError(f"answer {e['name']!r}: give exactly one of 'answer' and 'raw'")
    return entries


def applies(entry: dict[str, Any], rule_category: str) -> bool:
    """Whether ``entry`` is written for an incident the rules categorise as ``rule_category``."""
    cats = entry.get("applies_to")
    return not cats or rule_category in cats


# Evidence lines as :mod:`opsloop.evidence` writes them (the rendered facts quote them verbatim).
_T = r"(?P<start>\d{4}-\d{2}-\d{2} \d{2}:\d{2}|\d{2}:\d{2}) to (?P<end>\d{4}-\d{2}-\d{2} \d{2}:\d{2}|\d{2}:\d{2}) UTC"
_EVIDENCE = {
    "err": re.compile(r"^(?P<errors>\d+) of (?P<calls>\d+) calls to (?P<endpoint>.+?) returned (?P<status>\d{3}) "
                      r"\((?P<pct>[\d.]+)% vs baseline (?P<base_pct>[\d.]+)%.*?\) from " + _T),
    "ratio": re.compile(r"^(?P<down>\d+) (?P<down_event>\S+) for (?P<up>\d+) (?P<up_event>\S+) on stage "
                        r"(?P<stage>\S+) \(ratio (?P<ratio>[\d.]+) vs baseline (?P<base>[\d.]+); about "
                        r"(?P<missing>\d+) missing.*?\) from " + _T),
    "kpi": re.compile(r"^(?P<metric>.+?) on stage (?P<stage>\S+) fell to (?P<value>[\d.]+) \(baseline "
                      r"(?P<base>[\d.]+); about (?P<missing>\d+) orders missing.*?\) from " + _T),
    "lat": re.compile(r"^(?P<metric>\S+) rose to (?P<value>[\d.]+) \(expected (?P<expected>[\d.]+); robust z "
                      r"[\d.]+\) from " + _T),
    "tix": re.compile(r"^(?P<n>\d+) support tickets about '(?P<label>.+?)' \(.*?\)(?: from " + _T + ")?$"),
    "log": re.compile(r"^log template '(?P<template>.+)': (?P<n>\d+) events \((?P<rate>[\d.]+)/h vs "
                      r"(?P<base_rate>[\d.]+)/h baseline\)"),
}
_PASSAGE = re.compile(r'^<<<PASSAGE id=(?P<id>\S+) document=(?P<document>\S+) section="(?P<section>[^"]*)"',
                      re.MULTILINE)
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})")


def _hm(when: str) -> str:
    return when.split()[-1] if " " in when else when


def _minutes(start: str, end: str) -> int:
    """Minutes between two times of one evidence line (``YYYY-MM-DD HH:MM`` or ``HH:MM``)."""
    def at(s: str) -> datetime:
        return datetime.strptime(s, "%Y-%m-%d %H:%M") if " " in s else datetime.strptime(s, "%H:%M")

    a, b = at(start), at(end)
    if " " in start and " " not in end:
        b = a.replace(hour=b.hour, minute=b.minute)
    minutes = (b - a).total_seconds() / 60
    return int(minutes + 1440 if minutes < 0 else minutes)


def _g(x: float, digits: int = 1) -> str:
    """``x`` rounded to ``digits`` decimals, without trailing zeros (``2.6``, ``45``)."""
    s = f"{x:,.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def answer_context(prompt: Any) -> dict[str, str]:
    """The placeholder values for one incident, parsed from ``prompt.facts`` (its evidence lines)
    and the passages of ``prompt.user``.

    Always present: ``title``, ``first_seen_hm``, ``last_seen_hm``, ``first_seen_date``,
    ``duration_minutes``, ``duration_hours``, ``category`` (the rules'), ``alt_category`` (an
    allowed category that is neither the rules' nor one of their hypotheses, if any), ``E1``…``En``
    (the evidence ids), ``passage1``…, ``document1``, ``passage_symptoms`` / ``_diagnosis`` /
    ``_impact`` / ``_mitigation`` (the first retrieved passage of that section, else ``passage1``),
    ``anomalies``, ``tickets``, ``merchants``, ``stages``, ``stage_names``, ``lost_orders``,
    ``revenue_window``, ``revenue_per_hour``, ``revenue_per_minute``, ``risk_high``, ``currency``,
    ``ev1`` (the first evidence the rules' top hypothesis counts for it).

    Per kind of evidence line, from the first such line (the slowest series for ``lat_``; the
    largest cluster for ``tix_max_``): its values as written and the numbers an SRE derives from
    them, with ``_id``, ``_from_hm``, ``_to_hm`` and ``_minutes`` (the span of the line):

    * ``err_`` (``N of M calls returned S``), ``err2_`` (the second such line): ``errors``, ``calls``,
      ``endpoint``, ``status``, ``pct``, ``base_pct``, ``share`` (100·errors/calls);
    * ``ratio_`` (event ratio): ``down``, ``up``, ``down_event``, ``up_event``, ``stage``, ``ratio``,
      ``base``, ``missing``, ``share_pct`` (100·down/up), ``drop_pct`` (100·(base−ratio)/base);
    * ``kpi_`` (a KPI that fell): ``metric``, ``stage``, ``value``, ``base``, ``missing``,
      ``drop_pct``, ``base_ratio`` (base/value);
    * ``lat_`` (a latency series, ms): ``ms``, ``expected_ms``, ``s``, ``expected_s``, ``ratio``
      (observed/expected), ``increase_pct``;
    * ``tix_`` (tickets): ``n``, ``label``, ``hours``; ``tix_max_n``, ``tix_max_label``, ``tix_max_id``;
    * ``log_`` (a log template): ``n``, ``rate`` (per hour), ``per_min``.
    """
    f = prompt.facts
    inc, risk = f["incident"], f["risk"]
    cats = list(prompt.categories)
    hyp_cats = {h["category"] for h in f["hypotheses"]}
    alt = next((c for c in cats if c != f["rule_category"] and c not in hyp_cats),
               next((c for c in cats if c != f["rule_category"]), f["rule_category"]))
    ctx: dict[str, str] = {
        "title": inc["title"], "first_seen_hm": _hm(inc["first_seen"].removesuffix(" UTC")),
        "last_seen_hm": _hm(inc["last_seen"].removesuffix(" UTC")), "first_seen_date": inc["first_seen"][:10],
        "duration_minutes": f"{inc['duration_minutes']:g}", "duration_hours": f"{inc['duration_hours']:g}",
        "category": f["rule_category"], "alt_category": alt,
        "anomalies": str(f["counts"]["anomalies"]), "tickets": str(f["counts"]["tickets"]),
        "currency": risk["currency"] or "USD",
    }
    for k, v in f["blast_radius"].items():
        ctx[{"merchant_id": "merchants", "stage": "stages"}.get(k, f"affected_{k}")] = str(len(v))
    ctx["stage_names"] = " and ".join(f["blast_radius"].get("stage", [])) or "all stages"
    if risk["revenue_at_risk_window"] is not None:
        ctx.update(lost_orders=f"{round(risk['lost_orders'] or 0):,}",
                   revenue_window=f"{risk['revenue_at_risk_window']:,.0f}",
                   revenue_per_hour=f"{risk['revenue_at_risk_per_hour']:,.0f}",
                   revenue_per_minute=f"{risk['revenue_at_risk_per_hour'] / 60:,.0f}")
        if risk["interval_95"]:
            ctx["risk_high"] = f"{risk['interval_95'][1]:,.0f}"

    for i, pid in enumerate(prompt.passage_ids):
        ctx[f"passage{i + 1}"] = pid
    for i, doc in enumerate(prompt.documents):
        ctx[f"document{i + 1}"] = doc
    sections = [(m["id"], m["section"].lower()) for m in _PASSAGE.finditer(prompt.user)]
    for word in ("symptoms", "diagnosis", "impact", "mitigation", "rollback"):
        hit = next((pid for pid, sec in sections if word in sec), None)
        if hit or prompt.passage_ids:
            ctx[f"passage_{word}"] = hit or prompt.passage_ids[0]

    evidence: list[str] = f["evidence"]
    for i in range(len(evidence)):
        ctx[f"E{i + 1}"] = f"E{i + 1}"
    top = f["hypotheses"][0]["supporting"] if f["hypotheses"] else []
    first = next((i for i, line in enumerate(evidence) if line in top), 0)
    ctx["ev1"] = f"E{first + 1}" if evidence else "E1"

    parsed: dict[str, list[tuple[int, dict[str, str]]]] = {k: [] for k in _EVIDENCE}
    for i, line in enumerate(evidence):
        for kind, rx in _EVIDENCE.items():
            m = rx.match(line)
            if m:
                parsed[kind].append((i, {k: v for k, v in m.groupdict().items() if v is not None}))
                break

    def span(prefix: str, i: int, d: dict[str, str]) -> None:
        ctx[f"{prefix}_id"] = f"E{i + 1}"
        if "start" in d:
            ctx[f"{prefix}_from_hm"], ctx[f"{prefix}_to_hm"] = _hm(d["start"]), _hm(d["end"])
            ctx[f"{prefix}_minutes"] = str(_minutes(d["start"], d["end"]))
            ctx[f"{prefix}_hours"] = _g(_minutes(d["start"], d["end"]) / 60, 2)

    for prefix, (i, d) in zip(("err", "err2"), parsed["err"], strict=False):
        span(prefix, i, d)
        ctx.update({f"{prefix}_{k}": d[k] for k in ("errors", "calls", "endpoint", "status", "pct", "base_pct")})
        ctx[f"{prefix}_share"] = _g(100 * int(d["errors"]) / int(d["calls"]))
    if parsed["ratio"]:
        i, d = parsed["ratio"][0]
        span("ratio", i, d)
        ctx.update({f"ratio_{k}": d[k] for k in ("down", "up", "down_event", "up_event", "stage", "base", "missing")})
        ctx["ratio"] = d["ratio"]
        r, b = float(d["ratio"]), float(d["base"])
        ctx["ratio_share_pct"] = _g(100 * int(d["down"]) / int(d["up"]), 0)
        ctx["ratio_drop_pct"] = _g(100 * (b - r) / b, 0)
    if parsed["kpi"]:
        i, d = parsed["kpi"][0]
        span("kpi", i, d)
        ctx.update({f"kpi_{k}": d[k] for k in ("metric", "stage", "value", "base", "missing")})
        v, b = float(d["value"]), float(d["base"])
        ctx["kpi_drop_pct"] = _g(100 * (b - v) / b, 0)
        ctx["kpi_base_ratio"] = _g(b / v, 1)
    lat = [(i, d) for i, d in parsed["lat"] if d["metric"].split("{")[0].endswith("_ms")]
    if lat:
        i, d = max(lat, key=lambda x: float(x[1]["value"]))
        span("lat", i, d)
        v, e = float(d["value"]), float(d["expected"])
        ctx.update(lat_metric=d["metric"], lat_ms=d["value"], lat_expected_ms=d["expected"], lat_s=_g(v / 1000),
                   lat_expected_s=_g(e / 1000, 2), lat_ratio=_g(v / e), lat_increase_pct=_g(100 * (v - e) / e, 0))
    if parsed["tix"]:
        i, d = next(((i, d) for i, d in parsed["tix"] if "start" in d), parsed["tix"][0])
        span("tix", i, d)
        ctx.update(tix_n=d["n"], tix_label=d["label"])
        i, d = max(parsed["tix"], key=lambda x: int(x[1]["n"]))
        ctx.update(tix_max_n=d["n"], tix_max_label=d["label"], tix_max_id=f"E{i + 1}")
    if parsed["log"]:
        i, d = parsed["log"][0]
        span("log", i, d)
        ctx.update(log_n=d["n"], log_rate=d["rate"], log_per_min=_g(float(d["rate"]) / 60, 2))
    return ctx


def _fill(template: str, ctx: dict[str, str], name: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in ctx:
            raise KeyError(f"answer {name!r}: placeholder {{{key}}} has no value for this incident")
        return ctx[key]

    return _PLACEHOLDER.sub(sub, template)


def _fill_all(value: Any, ctx: dict[str, str], name: str) -> Any:
    if isinstance(value, str):
        return _fill(value, ctx, name)
    if isinstance(value, list):
        return [_fill_all(v, ctx, name) for v in value]
    if isinstance(value, dict):
        return {k: _fill_all(v, ctx, name) for k, v in value.items()}
    return value


def render(entry: dict[str, Any], prompt: Any) -> Reply:
    """The reply the fake serves for ``entry`` on ``prompt``'s incident: the ``answer`` template filled
    (string leaves only: a value with quotes or braces, such as a title, cannot break the JSON) and
    serialised, or the ``raw`` template filled verbatim. Raises ``KeyError`` naming the placeholder
    this incident has no value for."""
    ctx = answer_context(prompt)
    if "raw" in entry:
        content = _fill(entry["raw"], ctx, entry["name"])
    else:
        content = json.dumps(_fill_all(entry["answer"], ctx, entry["name"]), ensure_ascii=False)
    return Reply(content=content, done_reason=entry.get("done_reason", "stop"))


def demo_cases(workdir: Path, seed: int = 7, days: int = 3) -> list[tuple[Any, Any]]:
    """``(incident, rule-based assessment)`` of the demo's simulated checkout week (``seed``, ``days``):
    one cycle with the rules only (no LLM), the way ``benchmarks/scenario.py`` runs it, in ``workdir``.
    Three days of seed 7 hold all six injected incident kinds."""
    from opsloop.config import LLMConfig, Settings
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.observe import observe
    from opsloop.store.session import open_store

    paths = write_scenario(simulate(seed=seed, days=days), workdir / "scenario")
    signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
    settings = Settings(home=workdir, pack="checkout", llm=LLMConfig(backend="off"))
    result = run_cycle(signals, open_store(f"sqlite:///{workdir / 'demo.db'}"), settings)
    return [(inc, inc.assessment) for inc in result.incidents if inc.assessment is not None]
