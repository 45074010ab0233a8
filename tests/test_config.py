"""Settings: grouped fields, the documented flat variables and the nested ones, one default per
knob, errors that name the variable, and ``opsloop config show``."""

from __future__ import annotations

import inspect
import json
import os

import pytest
from typer.testing import CliRunner

from opsloop.cli import app
from opsloop.config import FLAT_ENV, Settings, SettingsError, effective_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith("OPSLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path))


def _show(*args: str):
    return CliRunner().invoke(app, ["config", "show", *args], catch_exceptions=False)


# The README's configuration variables, a value for each, and where it lands.
DOCUMENTED = [
    ("OPSLOOP_LLM", "llamacpp", ("llm", "backend"), "llamacpp"),
    ("OPSLOOP_LLM_MODEL", "/models/x.gguf", ("llm", "model"), "/models/x.gguf"),
    ("OPSLOOP_LLM_TIMEOUT", "12.5", ("llm", "timeout"), 12.5),
    ("OPSLOOP_OLLAMA_HOST", "http://ollama:11434", ("llm", "host"), "http://ollama:11434"),
    ("OPSLOOP_KPI_Z_THRESHOLD", "5", ("detection", "kpi_z_threshold"), 5.0),
    ("OPSLOOP_COUNT_THRESHOLD", "6.5", ("detection", "count_threshold"), 6.5),
    ("OPSLOOP_AUTO_EXECUTE_CONFIDENCE", "0.9", ("actions", "auto_execute_confidence"), 0.9),
    ("OPSLOOP_APPROVAL_TTL_SECONDS", "60", ("actions", "approval_ttl_seconds"), 60.0),
    ("OPSLOOP_WEBHOOK_URL", "https://hooks.example/x", ("actions", "webhook_url"), "https://hooks.example/x"),
    ("OPSLOOP_DATABASE_URL", "sqlite:///x.db", ("database_url",), "sqlite:///x.db"),
]


def _get(settings: Settings, path: tuple[str, ...]):
    value = settings
    for part in path:
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("var", "raw", "path", "expected"), DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_documented_flat_variables_set_their_grouped_field(monkeypatch, var, raw, path, expected):
    monkeypatch.setenv(var, raw)
    assert _get(Settings(), path) == expected


def test_home_and_webhook_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSLOOP_WEBHOOK_SECRET", "s3cret")
    s = Settings()
    assert s.home == tmp_path and s.actions.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_every_flat_name_maps_to_a_real_field():
    for var, path in FLAT_ENV.items():
        assert var.startswith("OPSLOOP_")
        _get(Settings(), path)  # AttributeError if the table names a field that does not exist


def test_nested_variables_and_their_priority_over_flat_ones(monkeypatch):
    monkeypatch.setenv("OPSLOOP_LLM", "ollama")
    monkeypatch.setenv("OPSLOOP_LLM__TIMEOUT", "7")
    monkeypatch.setenv("OPSLOOP_LLM_TIMEOUT", "99")  # the nested spelling wins
    monkeypatch.setenv("OPSLOOP_RAG__TOP_K", "5")
    monkeypatch.setenv("OPSLOOP_CORRELATION__MERGE_GAP_SECONDS", "600")
    monkeypatch.setenv("OPSLOOP_PACK", "/packs/shop")
    s = Settings()
    assert (s.llm.backend, s.llm.timeout, s.rag.top_k) == ("ollama", 7.0, 5)
    assert s.correlation.merge_gap_seconds == 600.0 and s.pack == "/packs/shop"


def test_arguments_win_and_merge_with_the_environment(monkeypatch):
    monkeypatch.setenv("OPSLOOP_LLM", "ollama")
    monkeypatch.setenv("OPSLOOP_LLM_TIMEOUT", "9")
    s = Settings(llm={"timeout": 3}, actions={"approval_ttl_seconds": 0})
    assert (s.llm.backend, s.llm.timeout, s.actions.approval_ttl_seconds) == ("ollama", 3.0, 0.0)
    p = s.policy()
    assert (p.approval_ttl_seconds, p.auto_execute_confidence) == (0.0, 0.7)


def test_defaults_live_in_the_settings_only():
    from opsloop.llm import narrate
    from opsloop.llm.prompts import build_prompt, output_schema

    s = Settings()
    assert (s.llm.backend, s.llm.timeout, s.llm.model, s.llm.retries) == ("off", 60.0, None, None)
    assert (s.detection.kpi_z_threshold, s.detection.count_threshold) == (8.0, 8.0)
    assert (s.actions.auto_execute_confidence, s.actions.approval_ttl_seconds) == (0.7, 4 * 3600.0)
    assert (s.correlation.merge_gap_seconds, s.rag.top_k, s.pack, s.embedder) == (6 * 3600.0, 3, "generic", "minilm")
    for fn, name in ((narrate, "timeout"), (narrate, "categories"), (build_prompt, "categories"),
                     (output_schema, "categories")):
        assert inspect.signature(fn).parameters[name].default is inspect.Parameter.empty, (fn, name)


@pytest.mark.parametrize(("env", "needle"), [
    ({"OPSLOOP_LLM": "gpt"}, "OPSLOOP_LLM='gpt': Input should be 'off', 'ollama' or 'llamacpp'"),
    ({"OPSLOOP_LLM_TIMEOUT": "soon"}, "OPSLOOP_LLM_TIMEOUT='soon': Input should be a valid number"),
    ({"OPSLOOP_LLM__TIMEOUT": "-1"}, "OPSLOOP_LLM__TIMEOUT='-1': Input should be greater than 0"),
    ({"OPSLOOP_LLM__TIMOUT": "3"}, "OPSLOOP_LLM__TIMOUT='3': Extra inputs are not permitted"),
    ({"OPSLOOP_AUTO_EXECUTE_CONFIDENCE": "1.5"}, "OPSLOOP_AUTO_EXECUTE_CONFIDENCE='1.5': Input should be less"),
    ({"OPSLOOP_EMBEDDER": "bert"}, "OPSLOOP_EMBEDDER='bert': Input should be 'minilm' or 'tfidf'"),
    ({"OPSLOOP_RAG": '{"top_k": 2}'}, "OPSLOOP_RAG: rag is a group of settings; set its fields one by one, "
                                      "e.g. OPSLOOP_RAG__TOP_K"),
])
def test_a_bad_value_is_an_error_naming_the_variable(monkeypatch, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as exc:
        Settings()
    assert needle in str(exc.value)
    res = _show()
    assert res.exit_code == 2 and res.stdout == ""
    assert needle in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_a_bad_argument_names_the_field():
    with pytest.raises(SettingsError, match=r"llm\.backend: Input should be"):
        Settings(llm={"backend": "gpt"})


def test_config_show_json_values_and_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSLOOP_LLM", "ollama")
    monkeypatch.setenv("OPSLOOP_LLM__TIMEOUT", "5")
    monkeypatch.setenv("OPSLOOP_WEBHOOK_SECRET", "s3cret")
    res = _show("--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"home", "database_url", "embedder", "pack", "detection", "correlation", "llm", "actions", "rag",
                        "pack_summary"}
    assert doc["pack_summary"]["name"] == "generic" and doc["pack_summary"]["revenue_model"] is False
    assert doc["pack_summary"]["auto_execute"] == ["collect_diagnostics"]
    assert doc["llm"]["backend"] == {"value": "ollama", "source": "env OPSLOOP_LLM"}
    assert doc["llm"]["timeout"] == {"value": 5.0, "source": "env OPSLOOP_LLM__TIMEOUT"}
    assert doc["llm"]["model"] == {"value": None, "source": "default"}
    assert doc["actions"]["webhook_secret"] == {"value": "***", "source": "env OPSLOOP_WEBHOOK_SECRET"}
    assert doc["detection"]["kpi_z_threshold"] == {"value": 8.0, "source": "default"}
    assert doc["home"] == {"value": str(tmp_path), "source": "env OPSLOOP_HOME"}
    assert doc["pack"] == {"value": "generic", "source": "default"}
    assert "s3cret" not in res.stdout


def test_config_show_table(monkeypatch):
    monkeypatch.setenv("OPSLOOP_KPI_Z_THRESHOLD", "4")
    monkeypatch.setenv("OPSLOOP_PACK", "checkout")
    res = _show()
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("pack: checkout (env OPSLOOP_PACK")
    assert "categories webhook_auth" in res.stdout and "revenue model yes" in res.stdout
    row = next(line for line in res.stdout.splitlines() if "detection.kpi_z_threshold" in line)
    assert "4.0" in row and "env OPSLOOP_KPI_Z_THRESHOLD" in row


def test_effective_settings_marks_arguments():
    shown = effective_settings(Settings(rag={"top_k": 9}))
    assert shown["rag"]["top_k"] == {"value": 9, "source": "argument"}
    assert shown["llm"]["timeout"] == {"value": 60.0, "source": "default"}


def test_an_error_names_the_variable_even_when_its_group_is_also_an_argument(monkeypatch):
    monkeypatch.setenv("OPSLOOP_LLM__TIMEOUT", "abc")
    with pytest.raises(SettingsError, match=r"^invalid settings: OPSLOOP_LLM__TIMEOUT='abc': Input should be"):
        Settings(llm={"model": "m"})
