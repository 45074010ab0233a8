"""Runbook chunking and retrieval."""

from __future__ import annotations

import pytest

from opsloop.clustering.embedders import TfidfEmbedder, get_embedder
from opsloop.rag.documents import chunk_markdown, load_documents
from opsloop.packs import load_pack
from opsloop.rag.index import RunbookIndex

from ..conftest import shared_dataset

MD = """---
title: Webhook 403
category: webhook_auth
---
# Webhook 403

Intro text.

## Symptoms

Deliveries fail with 403.

## Mitigation

### Re-sync the secret

Run the re-sync.

```bash
# not a heading
curl -X POST ...
```
"""


def test_markdown_chunks_follow_headings_and_keep_section_paths():
    chunks = chunk_markdown(MD, "webhook.md")
    sections = [c.section for c in chunks]
    assert sections == ["Webhook 403", "Webhook 403 > Symptoms", "Webhook 403 > Mitigation > Re-sync the secret"]
    assert "# not a heading" in chunks[-1].text  # code blocks are not split at '#'
    assert all(c.meta["category"] == "webhook_auth" for c in chunks)
    assert [c.id for c in chunks] == [c.id for c in chunk_markdown(MD, "webhook.md")]  # stable ids


def test_long_sections_are_split_with_overlap():
    body = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(20))
    chunks = chunk_markdown(f"# T\n\n## Long\n\n{body}", "t.md", max_chars=600, overlap_chars=100)
    assert len(chunks) > 3 and all(len(c.text) <= 600 + 250 for c in chunks)


def test_bad_runbook_paths_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_documents(tmp_path / "no-such-dir")
    with pytest.raises(ValueError, match="no runbooks found"):
        load_documents(tmp_path)


def test_bundled_runbooks_cover_every_category():
    from opsloop.packs import load_pack

    CATEGORIES = load_pack("checkout").category_names

    chunks = load_documents(load_pack("checkout").runbooks_path)
    assert {c.meta.get("category") for c in chunks} == set(CATEGORIES)


@pytest.mark.parametrize("query,category", [
    ("merchants report webhook deliveries rejected with 403 signature verification failed", "webhook_auth"),
    ("customers charged but order never created, payment.succeeded without order.created", "event_loss"),
    ("checkout p95 latency is very high and requests time out with 504", "latency"),
    ("cart is empty at checkout after the frontend release", "cart_state"),
])
def test_dense_retrieval_finds_the_right_bundled_runbook(query, category):
    embedder, _ = get_embedder("minilm")
    index = RunbookIndex(load_documents(load_pack("checkout").runbooks_path), embedder)
    hits = index.query(query, k=3)
    assert index.category_of(hits[0].document) == category
    assert hits[0].score >= hits[-1].score


def test_tfidf_fallback_retrieves_too():
    index = RunbookIndex(load_documents(load_pack("checkout").runbooks_path), TfidfEmbedder())
    hits = index.query("webhook 403 signature verification failed secret rotation", k=3)
    assert index.category_of(hits[0].document) == "webhook_auth"


def test_prometheus_operator_runbooks_load_and_retrieve():
    root = shared_dataset("runbooks", "prometheus-operator", "content", "runbooks")
    chunks = load_documents(root)
    assert len({c.document for c in chunks}) >= 100
    embedder, _ = get_embedder("minilm")
    hits = RunbookIndex(chunks, embedder).query("pod keeps restarting and crashing, back-off restarting failed container", k=3)
    assert any("KubePodCrashLooping" in h.document for h in hits)
