"""LLM narrative for incident assessments: the ``LLM`` protocol and its backends (Ollama, embedded
llama.cpp), prompts built from computed facts, output validation, and :func:`narrate`, which keeps
the rule-based facts and falls back to the rules whenever the model's answer is not usable."""

from opsloop.llm.base import (
    LLM,
    LLMBadOutput,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
)
from opsloop.llm.factory import get_llm, llm_from_settings
from opsloop.llm.narrate import LRUCache, narrate
from opsloop.llm.prompts import Prompt, build_prompt, output_schema
from opsloop.llm.validate import validate

__all__ = [
    "LLM",
    "LLMBadOutput",
    "LLMError",
    "LLMTimeout",
    "LLMUnavailable",
    "LRUCache",
    "Prompt",
    "build_prompt",
    "get_llm",
    "llm_from_settings",
    "narrate",
    "output_schema",
    "validate",
]
