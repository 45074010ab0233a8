"""Runbook sections are typed (symptoms, diagnosis, mitigation, verification) by the field's usual
headings, on the bundled runbooks and on the prometheus-operator runbooks nobody here wrote, and
mitigation steps are quoted from a section's list items."""

from __future__ import annotations

from collections import Counter

import pytest

from opsloop.domain import SectionKind
from opsloop.packs import load_pack
from opsloop.rag.documents import load_documents
from opsloop.rag.sections import section_kind, steps
from tests.conftest import shared_dataset


@pytest.mark.parametrize("section, kind", [
    ("Webhook 403 > Symptoms", SectionKind.symptoms),
    ("KubePodCrashLooping > Meaning", SectionKind.symptoms),
    ("KubePodCrashLooping > Diagnosis", SectionKind.diagnosis),
    ("Slow checkout > Investigation > Check the pool", SectionKind.diagnosis),
    ("Webhook 403 > Mitigation > Dispatcher signs with a stale secret", SectionKind.mitigation),
    ("Disk full > Remediation", SectionKind.mitigation),
    ("Webhook 403 > Verification", SectionKind.verification),
    ("Webhook 403 > Impact", SectionKind.other),
    ("Fix the disk", SectionKind.other),  # the title alone is not a role
])
def test_headings_give_the_section_kind(section, kind):
    assert section_kind(section) is kind


def test_every_bundled_runbook_has_each_kind():
    chunks = load_documents(load_pack("checkout").runbooks_path)
    kinds: dict[str, set[SectionKind]] = {}
    for c in chunks:
        kinds.setdefault(c.document, set()).add(section_kind(c.section))
    for doc, found in kinds.items():
        assert {SectionKind.symptoms, SectionKind.diagnosis, SectionKind.mitigation,
                SectionKind.verification} <= found, (doc, found)


def test_prometheus_operator_runbooks_are_typed():
    root = shared_dataset("runbooks", "prometheus-operator", "content")
    chunks = [c for c in load_documents(root) if " > " in c.section]
    kinds = Counter(section_kind(c.section) for c in chunks)
    # Meaning / Impact / Diagnosis / Mitigation: all but Impact (and a few non-runbook pages) typed
    assert kinds[SectionKind.mitigation] >= 100 and kinds[SectionKind.diagnosis] >= 100
    assert kinds[SectionKind.symptoms] >= 100
    mitigations = [c for c in chunks if section_kind(c.section) is SectionKind.mitigation]
    quoted = [steps(c.text) for c in mitigations]
    assert sum(bool(q) for q in quoted) >= 0.95 * len(quoted)
    for c, q in zip(mitigations, quoted, strict=True):
        flat = " ".join(c.text.split())
        assert all(s.rstrip("…") in flat or s.rstrip("…")[:40] in flat for s in q), (c.section, q)


def test_steps_are_the_top_level_list_items_without_code():
    text = """Intro paragraph.

1. Propose `resync_webhook_secret` for the merchants.
   It reloads the active version.
   ```
   curl -s http://example/admin
   ```
   - a nested note stays with its step
2. Watch the 403 count for 10 minutes.

- Then replay.
"""
    assert steps(text) == [
        "Propose `resync_webhook_secret` for the merchants. It reloads the active version. "
        "- a nested note stays with its step",
        "Watch the 403 count for 10 minutes.",
        "Then replay.",
    ]
    assert steps("Usually wait it out.\n\nMore text.") == ["Usually wait it out."]
    assert steps("") == []
    assert len(steps("\n".join(f"- step {i}" for i in range(10)), limit=4)) == 4
