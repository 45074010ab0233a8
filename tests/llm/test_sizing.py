"""Token budgets: the prompt estimate, the answer's upper bound from its schema, the context window."""

from __future__ import annotations

import math

import pytest

from opsloop.llm.prompts import HYPOTHESES_MAX, ITEM_MAX, ITEMS_MAX, ROOT_CAUSE_MAX, SUMMARY_MAX, WHY_MAX, output_schema
from opsloop.llm.sizing import (
    ANSWER_FLOOR,
    MESSAGE_TOKENS,
    NUMBER_TOKENS,
    TEMPLATE_TOKENS,
    UNBOUNDED_ITEMS,
    UNBOUNDED_STRING_CHARS,
    answer_budget,
    answer_tokens,
    context_for,
    estimate_chat,
    estimate_tokens,
)


def test_prose_counts_three_and_a_half_characters_a_token():
    assert estimate_tokens("", messages=0) == 0
    assert estimate_tokens("abcdefg", messages=0) == 2
    assert estimate_tokens("a" * 35, messages=0) == 10
    assert estimate_tokens("a" * 36, messages=0) == 11  # rounded up


def test_digits_punctuation_and_non_ascii_bytes_count_one_token_each():
    assert estimate_tokens("2024-05-14", messages=0) == 10
    assert estimate_tokens("412 of 1530", messages=0) == 7 + math.ceil(4 / 3.5)
    assert estimate_tokens("ü", messages=0) == 2  # two UTF-8 bytes
    assert estimate_tokens("注文", messages=0) == 6
    # never below the plain characters / 3.5 figure
    for text in ("HTTP 403 on POST /webhooks/orders since 09:00 UTC", "plain words only", "€ 6,912.50"):
        assert estimate_tokens(text, messages=0) >= math.ceil(len(text) / 3.5)


def test_chat_messages_add_the_template_overhead():
    assert estimate_tokens("hi") == 1 + TEMPLATE_TOKENS + MESSAGE_TOKENS
    assert estimate_tokens("hi", messages=2) == 1 + TEMPLATE_TOKENS + 2 * MESSAGE_TOKENS
    chat = [{"role": "system", "content": "You write JSON."}, {"role": "user", "content": "412 errors"}]
    assert estimate_chat(chat) == estimate_tokens("You write JSON.\n412 errors", messages=2)
    assert estimate_chat([]) == 0
    with pytest.raises(ValueError, match="messages must be >= 0"):
        estimate_tokens("hi", messages=-1)


def test_answer_tokens_of_flat_fields():
    # a string: its quotes + maxLength / 3, plus the end-of-text token
    assert answer_tokens({"type": "string", "maxLength": 30}) == 2 + 10 + 1
    assert answer_tokens({"type": "string", "maxLength": 31}) == 2 + 11 + 1
    assert answer_tokens({"type": "string"}) == 2 + UNBOUNDED_STRING_CHARS // 3 + 1
    assert answer_tokens({"type": "number"}) == NUMBER_TOKENS + 1
    # an enum counts its longest value, as JSON (quotes and "_" are punctuation: one token each)
    assert answer_tokens({"type": "string", "enum": ["a", "webhook_auth", "b"]}) == 3 + math.ceil(11 / 3.5) + 1
    assert answer_tokens({"enum": [1, 12345]}) == 5 + 1
    assert answer_tokens({"const": "abc"}) == 2 + 1 + 1
    # anyOf / oneOf: the largest branch; a list of types: the largest type
    assert answer_tokens({"anyOf": [{"type": "string", "maxLength": 90}, {"type": "null"}]}) == 32 + 1
    assert answer_tokens({"type": ["string", "null"], "maxLength": 90}) == 32 + 1


def test_answer_tokens_of_nested_objects_and_arrays():
    leaf = {"type": "string", "maxLength": 9}  # 2 + 3 tokens
    inner = {"type": "object", "properties": {"id": leaf}}  # 2 + (6 + 2 + ceil(2/3.5)=1) + 5 = 16
    assert answer_tokens(inner) == 16 + 1
    array = {"type": "array", "items": inner, "maxItems": 3}  # 2 + 3 * (16 + 1)
    assert answer_tokens(array) == 53 + 1
    outer = {"type": "object", "properties": {"rows": array, "n": {"type": "integer"}}}
    rows = 6 + (2 + math.ceil(4 / 3.5)) + 53
    n = 6 + (2 + 1) + NUMBER_TOKENS
    assert answer_tokens(outer) == 2 + rows + n + 1
    # an array without maxItems counts UNBOUNDED_ITEMS items; without a type, keywords tell
    assert answer_tokens({"items": leaf}) == 2 + UNBOUNDED_ITEMS * 6 + 1
    assert answer_tokens({"properties": {"id": leaf}}) == answer_tokens(inner)
    # more items make a bigger bound; deeper nesting is counted, not cut off
    assert answer_tokens({**array, "maxItems": 4}) > answer_tokens(array)
    assert answer_tokens({"type": "object", "properties": {"x": outer}}) > answer_tokens(outer)


def test_answer_tokens_of_the_narrative_schema():
    ids = ["ch-a6a697fbd46a", "ch-fa38ae71fca2"]
    schema = output_schema(ids, ["webhook_auth", "latency"])
    total = answer_tokens(schema)
    text = (SUMMARY_MAX + ROOT_CAUSE_MAX + 2 * ITEMS_MAX * ITEM_MAX + HYPOTHESES_MAX * WHY_MAX) / 3
    assert text < total < text + 400  # the free text dominates; structure and enums the rest
    assert answer_tokens(output_schema(ids + ["ch-000000000000"], ["webhook_auth"])) > total
    # the budget: a configured figure wins, else the bound but at least ANSWER_FLOOR
    assert answer_budget(schema) == total and answer_budget(schema, 99) == 99
    assert answer_budget({"type": "object"}) == ANSWER_FLOOR


def test_context_is_rounded_up_to_the_step_and_at_least_the_floor():
    assert context_for(0, 0) == 2048
    assert context_for(1500, 500) == 2048
    assert context_for(1500, 549) == 3072
    assert context_for(3000, 72) == 3072  # an exact multiple stays
    assert context_for(3000, 73, step=2048) == 4096
    assert context_for(100, 100, floor=512, step=256) == 512
    assert context_for(30000, 2768) == 32768  # exactly the cap


def test_context_beyond_the_cap_is_an_error():
    with pytest.raises(ValueError, match=r"prompt of ~32000 tokens \+ 769 answer tokens needs a "
                                         r"32769-token context, more than the cap of 32768 tokens"):
        context_for(32000, 769)
    with pytest.raises(ValueError, match="cap of 4096"):
        context_for(4000, 200, cap=4096)
    assert context_for(3000, 100, step=2048, cap=5000) == 4096
    assert context_for(4000, 100, step=2048, cap=5000) == 5000  # rounding never passes the cap
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        context_for(-1, 10)
    with pytest.raises(ValueError, match="step > 0"):
        context_for(10, 10, step=0)
