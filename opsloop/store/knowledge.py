"""Repository functions for the retrieval knowledge base (tables ``rag_documents`` and
``rag_chunks``): one per operation, called by :class:`opsloop.rag.store.KnowledgeBase`.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller commits. A document is
known by its ``name`` (its path relative to the ingested root, as cited); its row id is
:func:`document_id` of the name. Values travel as the frozen dataclasses below, never as rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from opsloop.domain import stable_hash
from opsloop.store.models import RagChunkRow, RagDocumentRow


@dataclass(frozen=True)
class DocumentIn:
    """A document to store: ``content_hash`` hashes its bytes and the chunking parameters."""

    name: str
    source: str
    content_hash: str
    title: str
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkIn:
    """One chunk of a document to store, in document order; ``content_hash`` hashes the embedded text."""

    id: str
    section: str
    text: str
    content_hash: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDocument:
    """A stored document (``chunks``: how many it has)."""

    name: str
    title: str
    category: str | None
    chunks: int
    content_hash: str
    source: str
    ingested_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredChunk:
    """A stored chunk with the name of its document."""

    id: str
    document: str
    section: str
    text: str
    meta: dict[str, Any]


def document_id(name: str) -> str:
    """The row id of the document named ``name``."""
    return "doc-" + stable_hash(["rag-document", name], 16)


def upsert_document(session: Session, doc: DocumentIn, chunks: list[ChunkIn], now: datetime) -> None:
    """Store ``doc`` with exactly ``chunks`` (replacing any it had); ``now`` (UTC) becomes its
    ``updated_at``, and its ``ingested_at`` if it is new."""
    doc_id = document_id(doc.name)
    session.execute(delete(RagChunkRow).where(RagChunkRow.document_id == doc_id))
    row = session.get(RagDocumentRow, doc_id)
    if row is None:
        row = RagDocumentRow(id=doc_id, path=doc.name, ingested_at=now)
        session.add(row)
    row.source, row.content_hash = doc.source, doc.content_hash
    row.title, row.category = doc.title, doc.category
    row.meta, row.n_chunks, row.updated_at = dict(doc.meta), len(chunks), now
    session.flush()
    if chunks:
        session.execute(insert(RagChunkRow), [
            {"id": c.id, "document_id": doc_id, "ordinal": i, "section": c.section, "text": c.text,
             "content_hash": c.content_hash, "meta": c.meta}
            for i, c in enumerate(chunks)
        ])


def document_hashes(session: Session) -> dict[str, str]:
    """``{name: content_hash}`` of every stored document."""
    return {name: h for name, h in session.execute(select(RagDocumentRow.path, RagDocumentRow.content_hash))}


def list_documents(session: Session) -> list[StoredDocument]:
    """Every stored document, by name."""
    return [StoredDocument(name=d.path, title=d.title, category=d.category, chunks=d.n_chunks,
                           content_hash=d.content_hash, source=d.source, ingested_at=d.ingested_at,
                           updated_at=d.updated_at)
            for d in session.scalars(select(RagDocumentRow).order_by(RagDocumentRow.path))]


def list_chunks(session: Session) -> list[StoredChunk]:
    """Every stored chunk, by document name then position in the document."""
    rows = session.execute(
        select(RagChunkRow, RagDocumentRow.path)
        .join(RagDocumentRow, RagChunkRow.document_id == RagDocumentRow.id)
        .order_by(RagDocumentRow.path, RagChunkRow.ordinal)
    ).all()
    return [StoredChunk(id=r.id, document=path, section=r.section, text=r.text, meta=dict(r.meta or {}))
            for r, path in rows]


def chunk_content_hashes(session: Session) -> list[str]:
    """The embedded-text hash of every stored chunk (repeats kept)."""
    return list(session.scalars(select(RagChunkRow.content_hash)))


def knowledge_counts(session: Session) -> dict[str, int]:
    """``{"documents", "chunks"}``: how many are stored."""
    return {"documents": int(session.scalar(select(func.count()).select_from(RagDocumentRow)) or 0),
            "chunks": int(session.scalar(select(func.count()).select_from(RagChunkRow)) or 0)}


def delete_document(session: Session, name: str) -> int:
    """Remove the document ``name`` and its chunks; returns how many chunks went. Raises
    ``KeyError`` if there is no such document."""
    row = session.scalar(select(RagDocumentRow).where(RagDocumentRow.path == name))
    if row is None:
        raise KeyError(f"no document {name!r} in the knowledge base")
    n = row.n_chunks
    session.execute(delete(RagChunkRow).where(RagChunkRow.document_id == row.id))
    session.delete(row)
    return n


def clear_knowledge(session: Session) -> dict[str, int]:
    """Remove every document and chunk; returns ``{"documents", "chunks"}`` removed."""
    n_chunks = session.execute(delete(RagChunkRow)).rowcount or 0
    n_docs = session.execute(delete(RagDocumentRow)).rowcount or 0
    return {"documents": int(n_docs), "chunks": int(n_chunks)}
