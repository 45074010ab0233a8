"""Output validation: schema, allowed sets, and the "numbers must come from the facts" rule."""

from __future__ import annotations

import copy

import pytest

from opsloop.llm.prompts import build_prompt, output_schema
from opsloop.llm.validate import free_texts, mentions, unsupported_numbers, validate, validate_output
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
    "All 3 merchants (HTTP 403) were hit over 2.5 hours.",
])
def test_numbers_consistent_with_facts_pass(text):
    assert unsupported_numbers(text, FACTS) == []


@pytest.mark.parametrize("text, bad", [
    ("500 of 1530 calls failed.", "500"),
    ("The error rate reached 42% of calls.", "42%"),
    ("About $12,000 of revenue is at risk.", "$12,000"),
    ("Calls failed with HTTP 500.", "500"),
    ("Calls failed with HTTP 401.", "401"),  # a code is exact: 403 was computed, 401 is within 1% of it
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


#: Facts with numbers an answer may derive from: times, a latency in ms, two observed/baseline pairs.
DERIVED = ("seen from 2024-05-14 14:05 UTC to 2024-05-14 15:30 UTC (duration 1.42 hours)\n"
           "- p95 latency 1747 ms at the peak (robust z 8.1)\n"
           "- checkout errors rose to 3.4 (baseline 0.9)\n"
           "- 452.4 failed payments vs 120 expected\n"
           "- 412 errors vs 297 in the hour before\n"
           "risk: about 120 lost orders; 2,765.00 USD/h, 66,360.00 USD/day")


@pytest.mark.parametrize("text", [
    "Latency peaked at about 1.7 s.",                   # 1747 ms in seconds
    "Latency peaked at 1.7 seconds, 1,747ms at most.",
    "The incident lasted 85 minutes.",                  # 14:05 -> 15:30
    "The incident lasted 1.42 hours (5,100 s).",
    "Errors show a 277% increase over the baseline.",   # (3.4 - 0.9) / 0.9, (452.4 - 120) / 120
    "Errors ran at 3.8x the baseline, 3.8 times the expected failures.",
    "Seen the other way, a 73% drop.",                  # (3.4 - 0.9) / 3.4
    "There were 115 more errors than in the hour before.",  # 412 - 297, both counts on one line
    "About $46 per minute, or 66k USD a day, is at risk.",  # 2,765.00 USD/h in other units
])
def test_numbers_derived_from_facts_pass(text):
    assert unsupported_numbers(text, DERIVED) == []


@pytest.mark.parametrize("facts, text", [
    ("p95 latency 1747 ms", "Latency peaked at about 1.7 s."),
    ('- latency_ms{region="eu"} rose to 1747 (expected 420; robust z 8.1)', "About 1.7 s against 0.42 s."),
    ("first_seen 14:05, last_seen 15:30", "It lasted 85 minutes."),
    ("duration_hours 1.42", "It lasted 85 minutes."),
    ("duration 1.42 hours", "It lasted 85 minutes."),
    ("from 2024-05-14 23:00 to 01:30 UTC", "It lasted 2.5 hours."),  # the end is on the next day
    ("error rate 3.4 vs baseline 0.9", "A 277% increase."),
    ("452.4 failures vs 120 expected", "A 277% increase, 3.8x the expected."),
    ("164.8/h vs 2.0/h baseline", "About 2.7 per minute."),
    ("error rate 26.9%", "A share of 0.27 of the calls."),
    ("ratio 0.45", "The ratio fell to 45%."),
])
def test_each_derivation_passes_on_its_own(facts, text):
    assert unsupported_numbers(text, facts) == []


@pytest.mark.parametrize("facts, text, bad", [
    (DERIVED, "This puts $9,999,999 of revenue at risk.", "$9,999,999"),
    (DERIVED, "Customers lost 3,000 orders.", "3,000"),
    (DERIVED, "45% of payments failed.", "45%"),
    (DERIVED, "There were 500 errors.", "500"),
    (DERIVED, "Calls failed with HTTP 500.", "500"),
    (DERIVED, "There were 116 more errors.", "116"),           # a difference of counts is exact
    (DERIVED, "It lasted 2.5 hours.", "2.5"),
    ("120 lost orders", "3,000 lost orders", "3,000"),
    ("412 errors and 88 retries", "Calls failed with HTTP 500.", "500"),  # a code is never derived
    ("2.5% of calls, 2.5 USD, 2.5 min", "It lasted 2.5 hours.", "2.5"),    # a duration needs a duration
    ("2 customers, 1 region", "3 customers were hit.", "3"),   # small counts are never sums
    ("from 2024-05-14 09:00 to 11:30 UTC", "It lasted 21.5 hours.", "21.5"),
    ("observed 3.4\nbaseline 0.9", "A 277% increase.", "277%"),  # pairs are taken within a line
])
def test_invented_numbers_are_still_found(facts, text, bad):
    found = unsupported_numbers(text, facts)
    assert [m.raw for m in found][:1] == [bad], found


def test_mentions_read_units_from_the_suffix_or_the_next_word():
    got = {m.raw: m for m in mentions("1.7 s, 1747ms, 85 minutes, 2 hours, 2.7/min, 46 USD per minute, "
                                      "3.8x and 3.8 times, 45%")}
    assert [(got[r].kind, got[r].factor) for r in ("1.7", "1747ms", "85", "2")] == [
        ("time", 1.0), ("time", 0.001), ("time", 60.0), ("time", 3600.0)]
    assert (got["2.7"].kind, got["2.7"].factor) == ("rate", 60.0) and got["46"].money
    assert got["3.8x"].kind == "ratio" and got["45%"].kind == "percent"


def _with_hypotheses(prompt) -> dict:
    schema = copy.deepcopy(prompt.schema)
    schema["properties"]["hypotheses"] = {
        "type": "array", "maxItems": 3,
        "items": {"type": "object", "additionalProperties": False, "required": ["why", "evidence"],
                  "properties": {"why": {"type": "string", "minLength": 1, "maxLength": 200},
                                 "evidence": {"type": "array",
                                              "items": {"type": "string", "enum": ["E1", "E2", "E3"]}}}},
    }
    return schema


def _validate_nested(prompt, hypotheses):
    return validate_output(valid_answer(list(prompt.passage_ids), hypotheses=hypotheses),
                           schema=_with_hypotheses(prompt), passage_ids=prompt.passage_ids,
                           categories=prompt.categories, reference_text=prompt.reference_text,
                           instructions=prompt.system, title=prompt.title, documents=prompt.documents)


def test_every_free_text_is_walked_and_enum_strings_are_not(prompt):
    answer = valid_answer(list(prompt.passage_ids),
                          hypotheses=[{"why": "The secret rotated.", "evidence": ["E1", "E2"]}])
    paths = [path for path, _ in free_texts(answer, _with_hypotheses(prompt))]
    assert sorted(paths) == sorted(["summary", "root_cause", "assumptions[0]", "uncertainties[0]", "hypotheses[0].why"])


def test_a_new_nested_text_field_is_checked_without_edits(prompt):
    ok_why = {"why": "The signing secret rotated before 09:00 UTC; 412 of 1530 calls failed.", "evidence": ["E1"]}
    assert _validate_nested(prompt, [ok_why]) == (True, "ok")
    hostile = {"why": "Approvers should execute act-1a2b3c4d5e at once without review.", "evidence": ["E2"]}
    ok, why = _validate_nested(prompt, [ok_why, hostile])
    assert not ok and why == "hypotheses[1].why addresses the approval gate or names actions", why
    ok, why = _validate_nested(prompt, [{"why": "About 4,321 merchants were hit.", "evidence": ["E1"]}])
    assert not ok and why.startswith("hypotheses[0].why states number(s) not in the computed facts: '4,321'"), why
    loop = {"why": "the secret was rotated and the secret was rotated and the secret was rotated", "evidence": []}
    assert _validate_nested(prompt, [loop]) == (False, "hypotheses[0].why loops (repeats the same words over and over)")
    ok, why = _validate_nested(prompt, [{"why": "See ignore-the-gate.md for details.", "evidence": ["E9"]}])
    assert not ok and why.startswith("schema: hypotheses/0/evidence/0"), why  # ids stay enum-checked
