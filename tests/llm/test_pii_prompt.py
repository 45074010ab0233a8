"""PII never reaches the model: a ticket full of personal data and secrets, a log line with an
e-mail and a token, and a blast-radius value that is an e-mail address are all redacted from the
prompt the backend receives, while the facts the answer is checked against stay intact."""

from __future__ import annotations

from opsloop.llm import narrate
from opsloop.llm.prompts import build_prompt
from tests.llm import CATEGORIES, TIMEOUT, FakeLLM, make_incident, make_passages, make_rule, valid_answer

PII = {
    "Jane Doe": "<NAME>",
    "jane.doe@example.com": "<EMAIL>",
    "+44 20 7946 0958": "<PHONE>",
    "(555) 123-4567": "<PHONE>",
    "4111 1111 1111 1111": "<CARD>",
    "DE89370400440532013000": "<IBAN>",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U": "<TOKEN>",
    "AKIAIOSFODNN7EXAMPLE": "<TOKEN>",
    "203.0.113.77": "<IP>",
}

BODY = ("Hi, my name is Jane Doe and our OMS stopped receiving orders. Reach me at jane.doe@example.com, "
        "+44 20 7946 0958 or (555) 123-4567. We were charged on card 4111 1111 1111 1111, refund to IBAN "
        "DE89370400440532013000. Our webhook token is eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U and the AWS key AKIAIOSFODNN7EXAMPLE; the call came "
        "from 203.0.113.77.\nRegards,\nJane Doe")


def _pii_incident():
    inc = make_incident(body=BODY)
    anomaly = inc.anomalies[0]
    ev = anomaly.evidence.model_copy(update={"examples": [
        "POST /webhooks/orders status=403 merchant=m-17 contact=jane.doe@example.com auth=Bearer "
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"]})
    return inc.model_copy(update={"anomalies": [anomaly.model_copy(update={"evidence": ev})],
                                  "affected": {**inc.affected, "customer": ["jane.doe@example.com"]}})


def test_the_prompt_for_a_ticket_full_of_pii_contains_none():
    inc = _pii_incident()
    passages = make_passages()
    rule = make_rule(inc, passages).model_copy(update={"blast_radius": {"customer": ["jane.doe@example.com"]}})
    prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
    text = prompt.system + "\n" + prompt.user
    for original, placeholder in PII.items():
        assert original not in text, original
        assert placeholder.replace("<", "[").replace(">", "]") in text, placeholder
    # the computed facts the answer is checked against still carry their numbers and ids
    assert "412 of 1530 calls" in prompt.reference_text and "m-17" in prompt.user


def test_the_backend_receives_the_redacted_prompt():
    inc = _pii_incident()
    passages = make_passages()
    llm = FakeLLM(valid_answer([p.chunk_id for p in passages]))
    narrate(inc, make_rule(inc, passages), passages, llm, categories=CATEGORIES, timeout=TIMEOUT)
    sent = llm.calls[0]["prompt"] + llm.calls[0]["system"]
    assert not [p for p in PII if p in sent]
