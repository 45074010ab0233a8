"""Settings read from the environment (prefix ``OPSLOOP_``) via pydantic-settings.

The settings are grouped (``settings.llm.timeout``, ``settings.detection.kpi_z_threshold``, ...).
Each knob has one default, here (the backend-specific LLM fields default to ``None``: the
backend's own default). Two spellings of the environment set a knob:

* the **flat** variables the README documents (and the other flat names older releases read), e.g.
  ``OPSLOOP_LLM`` (the LLM backend), ``OPSLOOP_LLM_TIMEOUT``, ``OPSLOOP_KPI_Z_THRESHOLD``: see
  :data:`FLAT_ENV` for the complete table;
* the **nested** form of any field, group and field joined by ``__``: ``OPSLOOP_LLM__TIMEOUT``,
  ``OPSLOOP_DETECTION__KPI_Z_THRESHOLD``, ``OPSLOOP_RAG__TOP_K``.

Priority: keyword arguments, then nested variables, then flat variables, then the defaults. A value
that does not validate raises :class:`SettingsError`, whose one-line message names the variable
(or the field, for keyword arguments) and what was wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from opsloop.domain import Policy
from opsloop.llm.base import LLMKind

if TYPE_CHECKING:
    from opsloop.packs.model import Pack

ENV_PREFIX = "OPSLOOP_"
NESTED_DELIMITER = "__"


class SettingsError(ValueError):
    """A setting has a value that does not validate; the message names the variable and the problem."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionConfig(_Group):
    """Detector thresholds, each in its detector's score unit.

    ``kpi_z_threshold``: robust z above which a KPI point is anomalous; ``count_threshold``:
    −log10 p of the Poisson/binomial tail tests (error rates, event ratios) above which a count is.
    """

    kpi_z_threshold: float = Field(8.0, gt=0)
    count_threshold: float = Field(8.0, gt=0)


class CorrelationConfig(_Group):
    """``merge_gap_seconds``: a recurring fingerprint seen within this many seconds of its open
    incident updates that incident instead of opening a new one."""

    merge_gap_seconds: float = Field(6 * 3600.0, ge=0)


class LLMConfig(_Group):
    """The optional LLM narrative.

    ``backend``: ``off`` (rules only), ``ollama`` or ``llamacpp``; ``timeout``: seconds per
    assessment (on timeout the rule-based assessment stands). The other fields are the backend's
    and ``None`` means the backend's default (see :func:`opsloop.llm.factory.get_llm`): ``model``
    (the Ollama model name, or a ``.gguf`` path for llama.cpp), ``host`` (the Ollama URL),
    ``threads`` (llama.cpp), ``max_tokens`` (per answer), ``retries`` (Ollama, after the first
    attempt), ``context_tokens`` (the context window: Ollama's ``num_ctx``, llama.cpp's ``n_ctx``;
    ``None`` sizes it from each prompt and the answer schema, see :mod:`opsloop.llm.sizing`).
    """

    backend: LLMKind = "off"
    model: str | None = None
    host: str | None = None
    timeout: float = Field(60.0, gt=0)
    threads: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0)
    context_tokens: int | None = Field(None, ge=256)


class ActionsConfig(_Group):
    """The approval policy and the webhook executor.

    ``auto_execute_confidence``: a low-risk action whose assessment confidence reaches it runs
    without approval; ``approval_ttl_seconds``: how long (seconds) a proposal or an approval stays
    valid; ``webhook_url``/``webhook_secret``: where the webhook executor POSTs and the HMAC-SHA256
    key it signs with; ``timeout_seconds`` per executor call (unless the executor declares
    ``deadline_seconds``), ``retries`` after an executor raised, ``backoff_seconds`` (sleep
    ``backoff * 2**i`` before retry ``i + 1``), ``stale_margin_seconds`` after its deadline at which an
    ``executing`` claim that never finished is reported as stale (:mod:`opsloop.actions.outbox`).
    """

    auto_execute_confidence: float = Field(0.7, ge=0, le=1)
    approval_ttl_seconds: float = Field(4 * 3600.0, ge=0)
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    timeout_seconds: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0)
    backoff_seconds: float = Field(0.5, ge=0)
    stale_margin_seconds: float = Field(60.0, ge=0)


class RagConfig(_Group):
    """``top_k``: runbook passages retrieved (and citable) per incident."""

    top_k: int = Field(3, gt=0)


#: The settings groups by field name of :class:`Settings`.
GROUPS: dict[str, type[_Group]] = {"detection": DetectionConfig, "correlation": CorrelationConfig,
                                   "llm": LLMConfig, "actions": ActionsConfig, "rag": RagConfig}

#: Flat environment variables → (group, field) they set. The documented ones (README) and every
#: flat name that configured a setting before the settings were grouped.
FLAT_ENV: dict[str, tuple[str, str]] = {
    "OPSLOOP_LLM": ("llm", "backend"),
    "OPSLOOP_LLM_MODEL": ("llm", "model"),
    "OPSLOOP_OLLAMA_HOST": ("llm", "host"),
    "OPSLOOP_LLM_TIMEOUT": ("llm", "timeout"),
    "OPSLOOP_LLM_THREADS": ("llm", "threads"),
    "OPSLOOP_LLM_MAX_TOKENS": ("llm", "max_tokens"),
    "OPSLOOP_LLM_CONTEXT_TOKENS": ("llm", "context_tokens"),
    "OPSLOOP_LLM_RETRIES": ("llm", "retries"),
    "OPSLOOP_KPI_Z_THRESHOLD": ("detection", "kpi_z_threshold"),
    "OPSLOOP_COUNT_THRESHOLD": ("detection", "count_threshold"),
    "OPSLOOP_INCIDENT_MERGE_GAP_SECONDS": ("correlation", "merge_gap_seconds"),
    "OPSLOOP_AUTO_EXECUTE_CONFIDENCE": ("actions", "auto_execute_confidence"),
    "OPSLOOP_APPROVAL_TTL_SECONDS": ("actions", "approval_ttl_seconds"),
    "OPSLOOP_WEBHOOK_URL": ("actions", "webhook_url"),
    "OPSLOOP_WEBHOOK_SECRET": ("actions", "webhook_secret"),
    "OPSLOOP_RAG_TOP_K": ("rag", "top_k"),
}


def _environ() -> dict[str, str]:
    """``os.environ`` with upper-cased names (variables are matched case-insensitively); empty
    values count as unset."""
    return {k.upper(): v for k, v in os.environ.items() if v != ""}


class FlatEnvSource(PydanticBaseSettingsSource):
    """The flat variables of :data:`FLAT_ENV`, as the nested values they stand for."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the table directly

    def __call__(self) -> dict[str, Any]:
        env, out = _environ(), {}
        for var, (group, name) in FLAT_ENV.items():
            if var in env:
                out.setdefault(group, {})[name] = env[var]
        return out


class NestedEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source for top-level fields (``OPSLOOP_HOME``) and group fields
    (``OPSLOOP_LLM__TIMEOUT``), without the flat names of :data:`FLAT_ENV` (so that
    ``OPSLOOP_LLM=ollama`` is the backend, not a value for the whole ``llm`` group).

    Raises :class:`SettingsError` for a variable that names a whole group (``OPSLOOP_RAG``): set its
    fields one by one instead.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        flat = {v.lower() for v in FLAT_ENV}
        env = {k: v for k, v in super()._load_env_vars().items() if k.lower() not in flat}
        for name in GROUPS:
            var = (ENV_PREFIX + name).lower()
            if var in env:
                example = env_names((name, next(iter(GROUPS[name].model_fields))))[0]
                raise SettingsError(f"{var.upper()}: {name} is a group of settings; "
                                    f"set its fields one by one, e.g. {example}")
        return env


def env_names(path: tuple[str, ...]) -> list[str]:
    """The environment variables that can set the field at ``path`` (e.g. ``("llm", "timeout")``),
    nested form first."""
    nested = ENV_PREFIX + NESTED_DELIMITER.join(path).upper()
    return [nested, *(var for var, p in FLAT_ENV.items() if p == tuple(path))]


def _source_of(path: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The variable that supplied the value at ``path`` (the one that wins), or ``None``."""
    return next((var for var in env_names(path) if var in env), None)


def _given(values: Mapping[str, Any]) -> frozenset[tuple[str, ...]]:
    """The field paths that constructor arguments ``values`` set (a group given as a model sets all
    its fields)."""
    given: set[tuple[str, ...]] = set()
    for key, value in values.items():
        if key in GROUPS:
            given.update((key, f) for f in (value if isinstance(value, dict) else GROUPS[key].model_fields))
        else:
            given.add((key,))
    return frozenset(given)


def _describe(exc: ValidationError, given: frozenset[tuple[str, ...]]) -> str:
    env = _environ()
    parts = []
    for e in exc.errors():
        path = tuple(str(p) for p in e["loc"])
        var = None if path in given or path[:1] in given else _source_of(path, env)
        where = f"{var}={env[var]!r}" if var else ".".join(path)
        parts.append(f"{where}: {e['msg']}")
    return "invalid settings: " + "; ".join(parts)


class Settings(BaseSettings):
    """Runtime configuration (see the module docstring for the environment variables).

    * ``home`` (``OPSLOOP_HOME``): where the embedded SQLite store, indexes, caches and demo data
      live (default ``~/.opsloop``);
    * ``database_url`` (``OPSLOOP_DATABASE_URL``): SQLAlchemy URL; empty means SQLite under ``home``;
    * ``embedder`` (``OPSLOOP_EMBEDDER``): ``minilm`` or ``tfidf``;
    * ``pack`` (``OPSLOOP_PACK``): the domain pack, a built-in pack name or a directory;
    * the groups ``detection``, ``correlation``, ``llm``, ``actions``, ``rag``.

    Raises :class:`SettingsError` when a value does not validate.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED_DELIMITER,
                                      env_ignore_empty=True, extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".opsloop")
    database_url: str = ""
    embedder: Literal["minilm", "tfidf"] = "minilm"
    pack: str = "generic"  # a built-in domain pack (checkout, generic) or a pack directory
    detection: DetectionConfig = DetectionConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    llm: LLMConfig = LLMConfig()
    actions: ActionsConfig = ActionsConfig()
    rag: RagConfig = RagConfig()
    _arguments: frozenset[tuple[str, ...]] = PrivateAttr(frozenset())

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, _given(values))) from None
        self._arguments = _given(values)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then nested variables, then the flat ones (no dotenv, no secrets dir)."""
        return init_settings, NestedEnvSource(settings_cls), FlatEnvSource(settings_cls)

    def policy(self, pack: Pack | None = None) -> Policy:
        """The approval policy these settings describe; with a domain ``pack``
        (:class:`opsloop.packs.model.Pack`), only its ``actions.auto_execute`` types run alone."""
        types = frozenset(pack.actions.auto_execute) if pack is not None else None
        return Policy(auto_execute_confidence=self.actions.auto_execute_confidence,
                      approval_ttl_seconds=self.actions.approval_ttl_seconds, auto_execute_types=types)

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in force: ``database_url`` or SQLite at ``home/opsloop.db``."""
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'opsloop.db'}"


def _shown(value: Any) -> Any:
    """``value`` as JSON: paths as strings, a secret that is set as ``***``."""
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    return str(value) if isinstance(value, Path) else value


def _origin(settings: Settings, path: tuple[str, ...], env: Mapping[str, str]) -> str:
    if path in settings._arguments:
        return "argument"
    var = _source_of(path, env)
    return f"env {var}" if var else "default"


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings in force, shaped like :class:`Settings`: each field is ``{"value", "source"}``,
    where ``source`` is ``"argument"`` (given to the constructor), ``"env VARIABLE"`` (the variable
    that set it, as the environment is now) or ``"default"``; the groups are dicts of such fields.
    A secret that is set shows as ``***``."""
    env: dict[str, Any] = _environ()
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in GROUPS:
            out[name] = {f: {"value": _shown(getattr(value, f)), "source": _origin(settings, (name, f), env)}
                         for f in GROUPS[name].model_fields}
        else:
            out[name] = {"value": _shown(value), "source": _origin(settings, (name,), env)}
    return out
