"""The persisted knowledge base, on SQLite and PostgreSQL (``store_url``)."""

from __future__ import annotations

import shutil

import pytest

from opsloop.rag.store import KnowledgeBase
from opsloop.store.session import open_store

from .conftest import CountingEmbedder, HashEmbedder, tiny_pdf

WEBHOOK = "---\ntitle: Webhook 403\ncategory: webhook_auth\n---\n# Webhook 403\n\n## Symptoms\n\n" \
          "Deliveries to merchant endpoints fail with 403 signature verification failed.\n\n" \
          "## Mitigation\n\nRe-sync the signing secret and replay the failed deliveries.\n"
LATENCY = "---\ntitle: Slow checkout\ncategory: latency\n---\n# Slow checkout\n\n## Symptoms\n\n" \
          "p95 latency is five times the baseline and the gateway returns 504 timeouts.\n\n" \
          "## Mitigation\n\nRaise the connection pool size and fail over the payment provider.\n"


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "runbooks"
    (root / "ops").mkdir(parents=True)
    (root / "webhook.md").write_text(WEBHOOK)
    (root / "ops" / "latency.md").write_text(LATENCY)
    (root / "notes.txt").write_text("Disk full on a node.\n\nDelete old container images to free space.")
    (root / "guide.pdf").write_bytes(tiny_pdf(["Certificates expire after a year", "Renew them with the CLI"]))
    return root


def _kb(url, tmp_path, embedder=None, **kw) -> KnowledgeBase:
    return KnowledgeBase(open_store(url), tmp_path / "rag", embedder or CountingEmbedder(HashEmbedder()), **kw)


def test_ingest_reingest_replace_delete_clear(store_url, tmp_path, corpus):
    kb = _kb(store_url, tmp_path)
    first = kb.ingest([corpus])
    assert first["added"] == 4 and first["unchanged"] == 0 and first["replaced"] == 0 and first["chunks"] >= 7
    stats = kb.stats()
    assert stats == {"documents": 4, "chunks": first["chunks"], "index": "flat", "dim": 64, "embedder": "hash"}

    calls = kb.embedder.texts
    assert kb.ingest([corpus]) == {"added": 0, "unchanged": 4, "replaced": 0, "chunks": 0, "embedded": 0}
    assert kb.embedder.texts == calls  # an unchanged document is a no-op

    (corpus / "webhook.md").write_text(WEBHOOK.replace("Re-sync the signing secret", "Roll back the secret"))
    again = kb.ingest([corpus])
    assert again["replaced"] == 1 and again["unchanged"] == 3
    assert again["embedded"] == 1  # only the changed section is embedded again
    hits = kb.query("roll back the secret", k=10)
    assert any("Roll back the secret" in h.text for h in hits)
    assert not any("Re-sync the signing secret" in h.text for h in hits)  # old chunks are gone
    assert kb.stats()["chunks"] == first["chunks"]

    docs = {d["document"]: d for d in kb.documents()}
    assert set(docs) == {"webhook.md", "ops/latency.md", "notes.txt", "guide.pdf"}
    assert docs["webhook.md"]["category"] == "webhook_auth" and docs["guide.pdf"]["chunks"] == 2

    assert kb.delete("ops/latency.md") == docs["ops/latency.md"]["chunks"]
    assert all(h.document != "ops/latency.md" for h in kb.query("p95 latency gateway 504", k=20))
    with pytest.raises(KeyError, match="no document"):
        kb.delete("ops/latency.md")
    assert kb.clear() == {"documents": 3, "chunks": first["chunks"] - docs["ops/latency.md"]["chunks"]}
    assert kb.stats()["documents"] == 0 and kb.query("secret") == [] and kb.load() is None
    assert not (tmp_path / "rag" / "index").exists() and not (tmp_path / "rag" / "embeddings").exists()


def test_load_in_a_new_process_needs_no_embedding(store_url, tmp_path, corpus):
    kb = _kb(store_url, tmp_path)
    kb.ingest([corpus])
    expected = [(h.chunk_id, round(h.score, 6)) for h in kb.query("signature verification failed 403", k=3)]

    fresh = CountingEmbedder(HashEmbedder())
    kb2 = _kb(store_url, tmp_path, fresh)
    index = kb2.load()
    assert fresh.texts == 0 and index.kind == "flat" and len(index.chunks) == kb.stats()["chunks"]
    got = [(h.chunk_id, round(h.score, 6)) for h in kb2.query("signature verification failed 403", k=3)]
    assert got == expected and fresh.texts == 1  # only the query was embedded
    assert index.category_of("webhook.md") == "webhook_auth"

    # index files lost: rebuilt from the vector cache, still without embedding a chunk
    shutil.rmtree(tmp_path / "rag" / "index")
    kb3 = _kb(store_url, tmp_path, fresh)
    assert kb3.load() is not None and fresh.texts == 1
    # another process ingested: this one notices and reloads
    (corpus / "more.md").write_text("# More\n\n## Body\n\nCompletely new runbook about DNS failures.")
    kb.ingest([corpus])
    assert any(h.document == "more.md" for h in kb2.query("DNS failures", k=3))


def test_approximate_index_above_the_threshold(store_url, tmp_path, corpus):
    kb = _kb(store_url, tmp_path, hnsw_threshold=3)
    kb.ingest([corpus])
    assert kb.stats()["index"] == "hnsw" and kb.load().kind == "hnsw"
    hits = kb.query("signature verification failed", k=3, mode="dense")
    assert hits[0].document == "webhook.md"
    kb2 = _kb(store_url, tmp_path, hnsw_threshold=3)
    assert kb2.load().kind == "hnsw"  # read back from disk
    assert _kb(store_url, tmp_path / "other").stats()["index"] == "flat"


def test_bad_paths_write_nothing(sqlite_url, tmp_path, corpus):
    kb = _kb(sqlite_url, tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        kb.ingest([corpus, tmp_path / "nope"])
    assert kb.stats()["documents"] == 0


def test_tfidf_fallback_persists_no_vectors(sqlite_url, tmp_path, corpus):
    from opsloop.clustering.embedders import TfidfEmbedder

    kb = _kb(sqlite_url, tmp_path, TfidfEmbedder())
    assert kb.ingest([corpus])["added"] == 4
    assert kb.query("signature verification failed 403", k=1)[0].document == "webhook.md"
    assert not (tmp_path / "rag" / "embeddings").exists()
    fresh = _kb(sqlite_url, tmp_path, TfidfEmbedder())
    assert fresh.query("gateway 504 timeouts", k=1)[0].document == "ops/latency.md"
