"""Settings read from the environment (prefix ``OPSLOOP_``) via pydantic-settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsloop.domain import Policy


class Settings(BaseSettings):
    """Runtime configuration.

    * ``home`` (``OPSLOOP_HOME``): where the embedded SQLite store, indexes and demo data live
      (default ``~/.opsloop``).
    * ``database_url`` (``OPSLOOP_DATABASE_URL``): SQLAlchemy URL; empty means SQLite under ``home``.
    * ``llm`` (``OPSLOOP_LLM``): ``off`` (rules only, default), ``ollama`` or ``llamacpp``; with
      ``llm_model``, ``ollama_host``, ``llm_timeout`` (seconds per assessment) and friends.
    * actions: ``action_timeout_seconds`` per executor call (seconds), ``action_retries`` after an
      executor error, ``action_backoff_seconds``, and ``action_stale_margin_seconds`` after which a
      claim that never finished is reported as stale (see :mod:`opsloop.actions.outbox`).
    * thresholds: detector thresholds in each detector's score unit, the confidence above which
      low-risk actions auto-execute, and the gap (seconds) within which a recurring fingerprint
      updates its incident instead of opening a new one.
    """

    model_config = SettingsConfigDict(env_prefix="OPSLOOP_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".opsloop")
    database_url: str = ""
    llm: Literal["off", "ollama", "llamacpp"] = "off"
    llm_model: str = ""  # Ollama model name (default llama3.2) or a .gguf path (default SmolLM2-135M)
    ollama_host: str = ""  # default $OLLAMA_HOST, then http://127.0.0.1:11434
    llm_timeout: float = 60.0
    llm_threads: int = 0  # 0: automatic
    llm_max_tokens: int = 384
    llm_retries: int = 2
    embedder: Literal["minilm", "tfidf"] = "minilm"

    kpi_z_threshold: float = 8.0
    count_threshold: float = 8.0  # -log10 p of the Poisson/binomial tail tests
    auto_execute_confidence: float = 0.7
    approval_ttl_seconds: float = 4 * 3600.0
    action_timeout_seconds: float = 30.0  # per executor call, unless the executor declares deadline_seconds
    action_retries: int = 2  # retries after an executor raised (not after a timeout or a reported failure)
    action_backoff_seconds: float = 0.5  # sleep backoff * 2**i before retry i + 1
    action_stale_margin_seconds: float = 60.0  # an executing claim older than its deadline + this is stale
    webhook_url: str = ""
    webhook_secret: str = ""
    incident_merge_gap_seconds: float = 6 * 3600.0
    rag_top_k: int = 3

    def policy(self) -> Policy:
        """The approval policy these settings describe."""
        return Policy(auto_execute_confidence=self.auto_execute_confidence,
                      approval_ttl_seconds=self.approval_ttl_seconds)

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in force: ``database_url`` or SQLite at ``home/opsloop.db``."""
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'opsloop.db'}"
