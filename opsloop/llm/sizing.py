"""Token budgets for an LLM call: the prompt's size, the answer's upper bound, the context window.

All counts are in **tokens**. Nothing here runs a tokenizer: :func:`estimate_tokens` is an
*estimate* meant to err high, :func:`answer_tokens` an upper bound derived from the answer's JSON
schema, and :func:`context_for` turns the two into a context window (``num_ctx`` for Ollama,
``n_ctx`` for llama.cpp) rounded to a step, so that most calls ask for the same window.

Why the estimate is not plain ``chars / 3.5``: opsloop's prompts are dense with numbers, times and
ids, and Llama-family tokenizers split digits (and most punctuation) into one token each. Measured
with SmolLM2-135M's tokenizer, the incident prompts run at 2.5-3.0 characters a token, so
``chars / 3.5`` came out 14-29 % *below* the real count (and Ollama silently truncates a prompt
that overflows ``num_ctx``). :func:`estimate_tokens` therefore counts prose (letters and
whitespace) at 3.5 characters a token and every other character (digits, ASCII punctuation, each
UTF-8 byte of non-ASCII text) as one token: 11-36 % above the measured counts on the incident
prompts, runbook passages and the README. Runs of digits or hex ids can still come out about
10 % low; the rounding in :func:`context_for` absorbs that for realistic prompts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Letters and whitespace per token (prose); every other character counts as one token.
CHARS_PER_TOKEN = 3.5
#: Chat-template tokens per message (role markers, end-of-turn).
MESSAGE_TOKENS = 8
#: Chat-template tokens per conversation: BOS, the assistant turn's opener, and the default system
#: preamble some templates inject (SmolLM2 adds ~24 tokens without a system message, Llama 3.2 a
#: knowledge-cutoff line).
TEMPLATE_TOKENS = 32

#: Characters a token of a free JSON string is assumed to hold (``maxLength / 3``).
STRING_CHARS_PER_TOKEN = 3
#: Tokens of one JSON number (sign, up to ~16 fraction digits, exponent; digits are one token each).
NUMBER_TOKENS = 24
#: Tokens of ``true`` / ``false`` / ``null``.
LITERAL_TOKENS = 2
#: Tokens of a property's structure: the key's quotes, colon, comma and a little whitespace.
PROPERTY_TOKENS = 6
#: Tokens of an object's or array's brackets (and whitespace around them).
BRACKET_TOKENS = 2
#: Assumed ``maxLength`` (characters) of a string without one, and ``maxItems`` of an array without
#: one: such schemas have no upper bound, these keep the figure finite.
UNBOUNDED_STRING_CHARS = 600
UNBOUNDED_ITEMS = 8
#: Tokens assumed for a schema that allows any JSON value (``{}``, ``true``, unknown types).
ANY_VALUE_TOKENS = 256
#: The least ``num_predict`` / ``max_tokens`` opsloop gives an answer sized from its schema.
ANSWER_FLOOR = 256


def _text_tokens(text: str) -> int:
    """Estimated tokens of ``text`` on its own (no chat template): prose at :data:`CHARS_PER_TOKEN`
    characters a token, one token per digit, ASCII punctuation character or non-ASCII UTF-8 byte."""
    prose = other = 0
    for ch in text:
        if ch.isascii():
            if ch.isalpha() or ch.isspace():
                prose += 1
            else:
                other += 1
        else:
            other += len(ch.encode("utf-8"))
    return math.ceil(prose / CHARS_PER_TOKEN) + other


def estimate_tokens(text: str, messages: int = 1) -> int:
    """Estimated prompt tokens of ``text`` sent as ``messages`` chat messages (``0``: raw text).

    An estimate, not a tokenizer's count, meant to err high (see the module docstring): the text's
    tokens plus :data:`MESSAGE_TOKENS` per message and, for a chat (``messages > 0``),
    :data:`TEMPLATE_TOKENS` once.
    """
    if messages < 0:
        raise ValueError(f"messages must be >= 0, got {messages}")
    overhead = TEMPLATE_TOKENS + MESSAGE_TOKENS * messages if messages else 0
    return _text_tokens(text) + overhead


def estimate_chat(messages: Iterable[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of chat ``messages`` (``[{"role", "content"}, ...]``), template
    included (:func:`estimate_tokens` over their contents)."""
    contents = [str(m.get("content") or "") for m in messages]
    return estimate_tokens("\n".join(contents), messages=len(contents))


def _literal_tokens(value: Any) -> int:
    """Tokens of one literal JSON value (an ``enum`` member or a ``const``), as compact JSON."""
    return _text_tokens(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _string_tokens(schema: Mapping[str, Any]) -> int:
    chars = schema.get("maxLength")
    chars = UNBOUNDED_STRING_CHARS if not isinstance(chars, int) or chars < 0 else chars
    return BRACKET_TOKENS + math.ceil(chars / STRING_CHARS_PER_TOKEN)  # the quotes + the text


def _type_tokens(kind: str, schema: Mapping[str, Any], depth: int) -> int:
    if kind == "string":
        return _string_tokens(schema)
    if kind in ("number", "integer"):
        return NUMBER_TOKENS
    if kind in ("boolean", "null"):
        return LITERAL_TOKENS
    if kind == "object":
        props = schema.get("properties") or {}
        return BRACKET_TOKENS + sum(PROPERTY_TOKENS + _literal_tokens(name) + _value_tokens(sub, depth + 1)
                                    for name, sub in props.items())
    if kind == "array":
        n = schema.get("maxItems")
        n = UNBOUNDED_ITEMS if not isinstance(n, int) or n < 0 else n
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        each = [_value_tokens(prefix[i] if i < len(prefix) else items, depth + 1) + 1 for i in range(n)]
        return BRACKET_TOKENS + sum(each)  # each item + its comma
    return ANY_VALUE_TOKENS


def _value_tokens(schema: Any, depth: int = 0) -> int:
    """Upper bound of the tokens of one JSON value matching ``schema``."""
    if depth > 32 or not isinstance(schema, Mapping):  # recursion guard; ``true`` / non-schemas
        return ANY_VALUE_TOKENS
    if "const" in schema:
        return _literal_tokens(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return max(_literal_tokens(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return max(_value_tokens(s, depth + 1) for s in schema[key])
    kind = schema.get("type")
    if kind is None:  # untyped: infer from the keywords
        kind = ("object" if "properties" in schema else "array" if "items" in schema or "maxItems" in schema
                else "string" if "maxLength" in schema else None)
    kinds = kind if isinstance(kind, list) else [kind]
    return max(_type_tokens(str(k), schema, depth) for k in kinds) if kinds else ANY_VALUE_TOKENS


def answer_tokens(schema: Mapping[str, Any]) -> int:
    """Upper bound, in tokens, of a JSON answer matching ``schema`` (plus its end-of-text token).

    Strings count ``maxLength / 3`` tokens plus their quotes; ``enum`` and ``const`` values count
    their longest member; numbers :data:`NUMBER_TOKENS`; objects their brackets plus, per declared
    property, the key and :data:`PROPERTY_TOKENS` of structure; arrays ``maxItems`` times their item
    (plus a comma each); ``anyOf`` / ``oneOf`` / ``allOf`` their largest branch. Nested objects and
    arrays are counted recursively. Unbounded parts (no ``maxLength`` / ``maxItems``, undeclared
    properties) cannot be bounded and count :data:`UNBOUNDED_STRING_CHARS` /
    :data:`UNBOUNDED_ITEMS` / nothing.
    """
    return _value_tokens(schema) + 1


def answer_budget(schema: Mapping[str, Any], configured: int | None = None) -> int:
    """Answer tokens to allow (``num_predict`` / ``max_tokens``): ``configured`` when set, else
    :func:`answer_tokens` of ``schema`` but at least :data:`ANSWER_FLOOR`."""
    if configured:
        return int(configured)
    return max(ANSWER_FLOOR, answer_tokens(schema))


def context_for(prompt_tokens: int, max_tokens: int, floor: int = 2048, step: int = 1024,
                cap: int = 32768) -> int:
    """Context window, in tokens, for a prompt of ``prompt_tokens`` and an answer of up to
    ``max_tokens``: their sum rounded up to a multiple of ``step``, at least ``floor`` (and at most
    ``cap``).

    Raises ``ValueError`` when the sum exceeds ``cap`` (the prompt cannot be served without
    truncation) or when an argument is out of range.
    """
    if prompt_tokens < 0 or max_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got prompt_tokens={prompt_tokens}, max_tokens={max_tokens}")
    if step <= 0 or floor < 0 or cap <= 0:
        raise ValueError(f"need step > 0, floor >= 0 and cap > 0, got step={step}, floor={floor}, cap={cap}")
    need = prompt_tokens + max_tokens
    if need > cap:
        raise ValueError(f"prompt of ~{prompt_tokens} tokens + {max_tokens} answer tokens needs a "
                         f"{need}-token context, more than the cap of {cap} tokens")
    return min(cap, max(floor, math.ceil(need / step) * step))
