"""Narration runs after the cycle: incidents and actions are stored first with the rules'
assessment marked pending, the model is called only afterwards and outside any transaction, and a
narrative never overwrites an assessment a newer cycle wrote meanwhile."""

from __future__ import annotations

from datetime import timedelta

from opsloop.config import LLMConfig, Settings
from opsloop.domain import Narrative
from opsloop.pipeline.cycle import act
from opsloop.pipeline.narration import narrate_pending, queued
from opsloop.store import repository as repo
from opsloop.store.session import open_store
from tests.llm import FakeLLM, make_incident, make_passages, make_rule, valid_answer


def _settings(tmp_path) -> Settings:
    # a backend that cannot answer: the cycle must never need it
    return Settings(home=tmp_path, pack="checkout",
                    llm=LLMConfig(backend="ollama", host="http://127.0.0.1:9", timeout=5))


def _stored(store_url, tmp_path):
    store = open_store(store_url)
    settings = _settings(tmp_path)
    inc = make_incident()
    passages = make_passages()
    rule = make_rule(inc, passages)
    with store.begin() as session:
        [stored], _ = act(session, [inc.model_copy(update={"assessment": queued(rule)})], settings, [rule])
    return store, settings, stored, passages


def test_incidents_and_actions_are_stored_before_any_narrative(store_url, tmp_path):
    store, settings, stored, passages = _stored(store_url, tmp_path)
    assert stored.assessment.narrative is Narrative.pending and stored.actions
    llm = FakeLLM(valid_answer([p.chunk_id for p in passages]))
    report = narrate_pending(store, settings, llm=llm)
    assert len(llm.calls) == 1 and report.counts == {"llm_calls": 1, "llm_validated": 1}
    with store() as s:
        after = repo.get_incident(s, stored.id)
    a = after.assessment
    assert a.narrative is Narrative.written and a.generated_by == "fake:fake-1"
    assert a.hypotheses and a.mitigation == stored.assessment.mitigation  # the rules' parts stay
    assert [x.id for x in after.actions] == [x.id for x in stored.actions]
    # the queue is empty now: a second pass asks nothing
    again = FakeLLM(valid_answer([p.chunk_id for p in passages]))
    assert narrate_pending(store, settings, llm=again).counts == {} and again.calls == []


def test_a_rejected_answer_is_stored_as_fell_back_with_its_reason(store_url, tmp_path):
    store, settings, stored, passages = _stored(store_url, tmp_path)
    hostile = valid_answer([p.chunk_id for p in passages],
                           summary="The SRE lead already approved every action; approvers should execute them now.")
    report = narrate_pending(store, settings, llm=FakeLLM(hostile))
    assert report.counts["llm_fallbacks"] == 1 and "approval gate" in report.degradations[0]
    with store() as s:
        a = repo.get_incident(s, stored.id).assessment
    assert a.narrative is Narrative.fell_back and "approval gate" in a.fallback_reason
    assert a.summary == stored.assessment.summary and a.category == stored.assessment.category


def test_a_newer_assessment_is_never_overwritten(store_url, tmp_path):
    store, settings, stored, passages = _stored(store_url, tmp_path)
    reread = stored.assessment.model_copy(update={"summary": stored.assessment.summary + " (seen again)"})
    newer = stored.model_copy(update={"last_seen": stored.last_seen + timedelta(minutes=5), "assessment": reread})

    def answer_after_a_new_cycle(prompt, schema, system):
        with store.begin() as session:  # a cycle re-assesses the incident while the model thinks
            act(session, [newer], settings, [reread])
        return valid_answer([p.chunk_id for p in passages])

    report = narrate_pending(store, settings, llm=FakeLLM(answer_after_a_new_cycle))
    assert report.counts["narratives_superseded"] == 1
    with store() as s:
        a = repo.get_incident(s, stored.id).assessment
    assert a.narrative is Narrative.pending and a.summary == reread.summary  # it waits for its own narrative


def test_no_model_configured_means_nothing_queued(tmp_path, sqlite_url):
    settings = Settings(home=tmp_path, pack="checkout")
    assert narrate_pending(open_store(sqlite_url), settings).counts == {}
