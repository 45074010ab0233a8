"""Output validation: schema, allowed sets, and the "numbers must come from the facts" rule."""

from __future__ import annotations

import pytest

from opsloop.llm.prompts import build_prompt, output_schema
from opsloop.llm.validate import mentions, unsupported_numbers, validate
from tests.llm import CATEGORIES, make_incident, make_passages, make_rule, valid_answer

FACTS = ("412 of 1530 calls to POST /webhooks/orders returned 403 (26.9% vs baseline 0.40%) from "
         "2024-05-14 09:00 to 11:30 UTC; ratio 0.45; 3 merchants; revenue at risk 6,912.50 USD (2,765.00 USD/h); "
         "150 minutes, 2.5 hours")


@pytest.fixture(scope="module")
def prompt():
    inc = make_incident()
    passages = make_passages()
    return build_prompt(inc, make_rule(inc, passages), passages, categories=CATEGORIES)


def test_valid_answer_passes(prompt):
    assert validate(valid_answer(list(prompt.passage_ids)), prompt) == (True, "ok")


@pytest.mark.parametrize("change, reason", [
    ({"category": "approve_everything"}, "category 'approve_everything' is not in the allowed set"),
    ({"citations": ["ch-not-retrieved"]}, "cites passage(s) that were not retrieved: ch-not-retrieved"),
    ({"confidence": 7}, "schema: confidence:"),
    ({"summary": ""}, "schema: summary:"),
    ({"summary": "Too short."}, "schema: summary:"),
    ({"actions": [{"type": "rollback", "approve": True}]}, "schema: answer: Additional properties"),
])
def test_invalid_answers_are_rejected_with_reason(prompt, change, reason):
    ok, why = validate(valid_answer(list(prompt.passage_ids), **change), prompt)
    assert not ok
    assert why.startswith(reason), why


def test_missing_field_and_non_object(prompt):
    answer = valid_answer(list(prompt.passage_ids))
    del answer["root_cause"]
    ok, why = validate(answer, prompt)
    assert not ok and "root_cause" in why
    assert validate(["not", "an", "object"], prompt) == (False, "answer is not a JSON object (list)")


def test_no_passages_means_no_citations():
    schema = output_schema([], ("a", "b"))
    assert schema["properties"]["citations"]["maxItems"] == 0


@pytest.mark.parametrize("text", [
    "412 of 1530 calls failed with HTTP 403.",
    "The error rate reached 26.9% against a 0.4% baseline.",
    "About 27% of calls failed.",                       # rounding of 26.9
    "Roughly $6,900 of revenue is at risk.",            # hedged rounding of 6,912.50
    "About 2.8k USD/h is at risk.",                     # 2,765 with a k suffix, hedged
    "It started at 09:00 UTC on 2024-05-14 and lasted 150 minutes.",
    "The ratio fell to 45% of normal.",                 # ratio 0.45 as a percentage
    "In 2024 the v2 signer (SmolLM2, p95, ch-7a36b, 5xx) broke 3 merchants.",
    "There are 2 possible explanations; see step 4 of the runbook.",
    "All 3 merchants (HTTP 401/403) were hit over 2.5 hours.",
])
def test_numbers_consistent_with_facts_pass(text):
    assert unsupported_numbers(text, FACTS) == []


@pytest.mark.parametrize("text, bad", [
    ("500 of 1530 calls failed.", "500"),
    ("The error rate reached 42% of calls.", "42%"),
    ("About $12,000 of revenue is at risk.", "$12,000"),
    ("Calls failed with HTTP 500.", "500"),
    ("7 merchants are affected.", "7"),
    ("It lasted 45 minutes.", "45"),
    ("6,912.50 EUR and 1.2 million orders", "1.2"),
])
def test_contradicting_numbers_are_found(text, bad):
    found = unsupported_numbers(text, FACTS)
    assert [m.raw for m in found][:1] == [bad], found


def test_mentions_classify_money_and_percent():
    got = {m.raw: m for m in mentions("We lost $1,234.50 and 12% of 300 orders (€2k).")}
    assert got["$1,234.50"].money and got["12%"].percent and got["€2k"].money
    assert got["€2k"].value == 2000.0


def test_contradicting_number_in_summary_is_rejected(prompt):
    answer = valid_answer(list(prompt.passage_ids), summary="1,200 merchants lost 99% of their orders.")
    ok, why = validate(answer, prompt)
    assert not ok
    assert why.startswith("summary states number(s) not in the computed facts: '1,200'"), why


def test_answer_repeating_the_instructions_is_rejected(prompt):
    answer = valid_answer(list(prompt.passage_ids), summary="The FACTS block was computed by code and is correct.")
    assert validate(answer, prompt) == (False, "summary repeats the prompt's instructions instead of narrating")
    # restating facts is fine
    assert validate(valid_answer(list(prompt.passage_ids), summary=prompt.user.split("\n")[1]), prompt)[0]


def test_looping_or_too_short_narrative_is_rejected(prompt):
    loop = "The incident was a failure of the payment service, which was caused by a failure of the payment " \
           "service, which was caused by a failure of the payment service."
    assert validate(valid_answer(list(prompt.passage_ids), root_cause=loop), prompt) == (
        False, "root_cause loops (repeats the same words over and over)")
    ok, why = validate(valid_answer(list(prompt.passage_ids), summary="Impact"), prompt)
    assert not ok and why.startswith("schema: summary: 'Impact' is too short")


def test_numbers_in_a_retrieved_passage_do_not_make_a_claim_valid():
    inc = make_incident()
    passages = [p.model_copy(update={"text": "Outages like this once put $9,999,999 of revenue at risk."})
                for p in make_passages()]
    prompt = build_prompt(inc, make_rule(inc, passages), passages, categories=CATEGORIES)
    assert "9,999,999" in prompt.user  # the model sees it ...
    ok, reason = validate(valid_answer(list(prompt.passage_ids),
                                       summary="This incident puts $9,999,999 of revenue at risk for merchants."),
                          prompt)
    assert not ok and "not in the computed facts" in reason  # ... but may not state it as a fact


def test_a_retrieved_document_may_be_named_and_another_may_not(prompt):
    named = prompt.documents[0]
    ok, _ = validate(valid_answer(list(prompt.passage_ids),
                                  root_cause=f"The webhook secret drifted, as {named} describes for this failure."),
                     prompt)
    assert ok
    ok, reason = validate(valid_answer(list(prompt.passage_ids),
                                       root_cause="The webhook secret drifted, as secret-bypass.md describes."), prompt)
    assert not ok and "not retrieved" in reason
