"""The persisted retrieval knowledge base: chunk metadata in the store, vectors and indexes on disk.

What lives where:

* **store** (tables ``rag_documents`` and ``rag_chunks``, migration 0003, read and written only
  through :mod:`opsloop.store.knowledge`): each document's name
  (its path relative to the ingested root, as cited), source file, content hash, title, category,
  and its chunks (ordinal, section path, text, hash of the embedded text). The store is the truth:
  everything on disk is derived from it and rebuilt when missing or stale.
* **directory** (``OPSLOOP_HOME/rag`` by default):

  - ``embeddings/<embedder>.npy`` + ``embeddings/<embedder>.json``: one L2-normalised vector per
    distinct embedded text, keyed by the SHA-256 of that text, so an unchanged chunk is never
    embedded twice (not even when its document changed around it);
  - ``index/<fingerprint>/``: ``dense.faiss`` (FAISS ``IndexFlatIP``, or ``IndexHNSWFlat`` above
    ``hnsw_threshold`` chunks), ``bm25/`` (``bm25s``) and ``manifest.json`` (chunk ids in index
    order). The fingerprint hashes the embedder, the tokenizer version, the index kind and every
    document's (name, content hash), so :meth:`KnowledgeBase.load` finds a matching index without
    re-embedding or re-indexing anything, and a stale one is never used.

Re-ingesting an unchanged document (same bytes, same chunking parameters) is a no-op; a changed one
replaces all its chunks. Works on SQLite and PostgreSQL. With the TF-IDF fallback embedder (no
MiniLM), vectors depend on the whole corpus, so nothing dense is persisted: :meth:`load` re-embeds
in memory (cheap for TF-IDF).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from opsloop.clustering.embedders import Embedder, content_hash, get_embedder
from opsloop.domain import Citation, stable_hash
from opsloop.rag.documents import CHUNKER_VERSION, MAX_CHARS, OVERLAP_CHARS, Chunk, chunk_file, find_documents
from opsloop.rag.index import BM25, HNSW_THRESHOLD, Mode, RunbookIndex, build_dense_index
from opsloop.rag.text import TOKENIZER_VERSION, tokenize_many
from opsloop.store import knowledge as kdb
from opsloop.store.session import Store


def _file_hash(path: Path, max_chars: int, overlap_chars: int) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(f"|chunker={CHUNKER_VERSION}|max={max_chars}|overlap={overlap_chars}".encode())
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorCache:
    """Embeddings on disk keyed by the SHA-256 of the embedded text (one file pair per embedder)."""

    def __init__(self, directory: Path, embedder_name: str) -> None:
        self.npy = directory / f"{embedder_name}.npy"
        self.keys_file = directory / f"{embedder_name}.json"
        self.vectors: dict[str, np.ndarray] = {}
        try:
            keys = json.loads(self.keys_file.read_text())
            mat = np.load(self.npy)
            if len(keys) == len(mat):
                self.vectors = dict(zip(keys, mat.astype(np.float32)))
        except (OSError, ValueError):
            pass

    def save(self, keep: Iterable[str] | None = None) -> None:
        """Write the cache (only the ``keep`` keys, if given)."""
        keys = list(self.vectors) if keep is None else [k for k in dict.fromkeys(keep) if k in self.vectors]
        if not keys:
            self.npy.unlink(missing_ok=True)
            self.keys_file.unlink(missing_ok=True)
            return
        mat = np.stack([self.vectors[k] for k in keys]).astype(np.float32)
        buf = _npy_bytes(mat)
        _atomic_write(self.npy, buf)
        _atomic_write(self.keys_file, json.dumps(keys).encode())

    @property
    def dim(self) -> int | None:
        return int(next(iter(self.vectors.values())).shape[0]) if self.vectors else None


def _npy_bytes(mat: np.ndarray) -> bytes:
    import io

    b = io.BytesIO()
    np.save(b, mat, allow_pickle=False)
    return b.getvalue()


class KnowledgeBase:
    """Ingest, persist and query runbooks (see the module docstring).

    ``store``: the :class:`~opsloop.store.session.Store` (migrated to 0003 or later);
    ``directory``: where vectors and indexes are kept (``OPSLOOP_HOME/rag``); ``embedder``: default
    MiniLM via :func:`~opsloop.clustering.embedders.get_embedder`, loaded on first use;
    ``max_chars``/``overlap_chars``: chunking; ``hnsw_threshold``: above this many chunks the dense
    index is approximate. One instance per process keeps the loaded index in memory and reloads it
    only when the stored documents change; it is thread-safe.
    """

    def __init__(self, store: Store, directory: str | Path, embedder: Embedder | None = None, *,
                 max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS,
                 hnsw_threshold: int = HNSW_THRESHOLD, embedder_name: str = "minilm") -> None:
        self.store = store
        self.directory = Path(directory)
        self._embedder = embedder
        self._embedder_name = embedder_name  # what to load on first use when ``embedder`` is None
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.hnsw_threshold = hnsw_threshold
        self.degradation: str | None = None
        self._index: RunbookIndex | None = None
        self._fingerprint: str | None = None
        self._lock = threading.RLock()

    # -- parts ---------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder, self.degradation = get_embedder(self._embedder_name)
            return self._embedder

    @property
    def _persist_vectors(self) -> bool:
        return self.embedder.name != "tfidf"  # TF-IDF vectors depend on the corpus they were fitted on

    def _cache(self) -> VectorCache:
        return VectorCache(self.directory / "embeddings", self.embedder.name)

    def _embed(self, chunks: list[Chunk], cache: VectorCache) -> int:
        """Embed the chunks whose text is not in ``cache`` (adds them); returns how many were embedded."""
        todo = {}
        for c in chunks:
            key = content_hash(c.embed_text)
            if key not in cache.vectors:
                todo.setdefault(key, c.embed_text)
        if todo:
            vecs = np.asarray(self.embedder.embed(list(todo.values())), dtype=np.float32)
            cache.vectors.update(zip(todo.keys(), vecs))
        return len(todo)

    def _fingerprint_of(self, docs: list[kdb.StoredDocument]) -> str:
        n = sum(d.chunks for d in docs)
        kind = "hnsw" if n > self.hnsw_threshold else "flat"
        return stable_hash([self.embedder.name, TOKENIZER_VERSION, kind, [(d.name, d.content_hash) for d in docs]], 24)

    # -- ingest --------------------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path]) -> dict[str, int]:
        """Add or update the documents under ``paths`` (files or directories; see
        :func:`~opsloop.rag.documents.find_documents` for how they are named) and rebuild the index.

        Returns ``{"added", "unchanged", "replaced", "chunks", "embedded"}``: documents new, unchanged
        (skipped) and changed (their chunks replaced), chunks written, texts embedded. Raises
        ``FileNotFoundError``/``ValueError`` naming the path before anything is written if a path is
        missing, holds no supported document or a PDF cannot be read.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        files: dict[str, Path] = {}
        for p in paths:
            for f, name in find_documents(p):
                files[name] = f  # a later path with the same document name wins
        hashes = {name: _file_hash(f, self.max_chars, self.overlap_chars) for name, f in files.items()}
        with self.store() as s:
            known = kdb.document_hashes(s)
        todo = [name for name in files if known.get(name) != hashes[name]]
        chunked = {name: chunk_file(files[name], name, self.max_chars, self.overlap_chars) for name in todo}
        new_chunks = [c for cs in chunked.values() for c in cs]
        embedded = 0
        if todo:
            with self._lock:
                if self._persist_vectors:
                    cache = self._cache()
                    embedded = self._embed(new_chunks, cache)
                    if embedded:
                        cache.save()
                self._write(todo, files, hashes, chunked)
                self._prune()
        replaced = sum(1 for name in todo if name in known)
        return {"added": len(todo) - replaced, "unchanged": len(files) - len(todo), "replaced": replaced,
                "chunks": len(new_chunks), "embedded": embedded}

    def _write(self, todo: list[str], files: dict[str, Path], hashes: dict[str, str],
               chunked: dict[str, list[Chunk]]) -> None:
        now = datetime.now(UTC)
        with self.store.begin() as s:
            for name in todo:
                chunks = chunked[name]
                meta = {k: v for k, v in (chunks[0].meta if chunks else {}).items() if k not in ("ordinal", "page")}
                doc = kdb.DocumentIn(name=name, source=str(files[name].resolve()), content_hash=hashes[name],
                                     title=str(meta.get("title") or Path(name).stem), category=meta.get("category"),
                                     meta=meta)
                kdb.upsert_document(s, doc, [kdb.ChunkIn(id=c.id, section=c.section, text=c.text,
                                                         content_hash=content_hash(c.embed_text), meta=c.meta)
                                             for c in chunks], now)

    # -- load / query --------------------------------------------------------------------------------
    def load(self) -> RunbookIndex | None:
        """The index over every stored chunk, or ``None`` if the knowledge base is empty.

        Uses the in-memory index if the stored documents have not changed, else the matching index
        files on disk, else rebuilds them from the stored chunks and the vector cache (embedding only
        texts missing from it) and writes them.
        """
        with self._lock:
            with self.store() as s:
                docs = kdb.list_documents(s)
                if not docs:  # nothing to index: no need to load the embedder for a fingerprint
                    self._index = self._fingerprint = None
                    return None
                fp = self._fingerprint_of(docs)
                if self._index is not None and fp == self._fingerprint:
                    return self._index
                chunks = [Chunk(id=c.id, document=c.document, section=c.section, text=c.text, meta=c.meta)
                          for c in kdb.list_chunks(s)]
            if not chunks:
                self._index, self._fingerprint = None, fp
                return None
            index = self._read_index(fp, chunks) if self._persist_vectors else None
            if index is None:
                index = self._build_index(fp, chunks)
            self._index, self._fingerprint = index, fp
            return index

    def _index_dir(self, fp: str) -> Path:
        return self.directory / "index" / fp

    def _read_index(self, fp: str, chunks: list[Chunk]) -> RunbookIndex | None:
        import faiss

        d = self._index_dir(fp)
        try:
            manifest = json.loads((d / "manifest.json").read_text())
            if manifest["chunk_ids"] != [c.id for c in chunks]:
                return None
            dense = faiss.read_index(str(d / "dense.faiss"))
            bm25 = BM25.load(d / "bm25")
        except (OSError, ValueError, KeyError, RuntimeError):
            return None
        return RunbookIndex(chunks, self.embedder, dense=dense, bm25=bm25, hnsw_threshold=self.hnsw_threshold)

    def _build_index(self, fp: str, chunks: list[Chunk]) -> RunbookIndex:
        import faiss

        if not self._persist_vectors:
            return RunbookIndex(chunks, type(self.embedder)(), hnsw_threshold=self.hnsw_threshold)
        cache = self._cache()
        if self._embed(chunks, cache):
            cache.save()
        vectors = np.stack([cache.vectors[content_hash(c.embed_text)] for c in chunks])
        dense = build_dense_index(vectors, self.hnsw_threshold)
        bm25 = BM25.build(tokenize_many([c.embed_text for c in chunks]))
        index = RunbookIndex(chunks, self.embedder, dense=dense, bm25=bm25, hnsw_threshold=self.hnsw_threshold)
        root = self.directory / "index"
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
        try:
            faiss.write_index(dense, str(tmp / "dense.faiss"))
            (tmp / "bm25").mkdir()
            bm25.save(tmp / "bm25")
            (tmp / "manifest.json").write_text(json.dumps({
                "fingerprint": fp, "embedder": self.embedder.name, "dim": int(vectors.shape[1]), "kind": index.kind,
                "tokenizer": TOKENIZER_VERSION, "chunk_ids": [c.id for c in chunks]}))
            target = self._index_dir(fp)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        for old in root.iterdir():
            if old.name != fp and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        return index

    def query(self, text: str, k: int = 3, mode: Mode = "hybrid") -> list[Citation]:
        """Up to ``k`` passages best first (see :meth:`RunbookIndex.query`); ``[]`` if empty."""
        index = self.load()
        return index.query(text, k, mode) if index is not None else []

    # -- inspect / remove ----------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        """Stored documents: name, title, category, chunks, content hash, source, times."""
        with self.store() as s:
            docs = kdb.list_documents(s)
        return [{"document": d.name, "title": d.title, "category": d.category, "chunks": d.chunks,
                 "content_hash": d.content_hash, "source": d.source, "ingested_at": d.ingested_at.isoformat(),
                 "updated_at": d.updated_at.isoformat()} for d in docs]

    def stats(self) -> dict:
        """``{"documents", "chunks", "index": "flat"|"hnsw", "dim", "embedder"}``.

        Counts come from the store first: an empty knowledge base whose embedder is not loaded yet
        answers without loading it (``dim`` 0, ``embedder`` the configured name), in milliseconds
        rather than the seconds MiniLM takes to load."""
        with self.store() as s:
            counts = kdb.knowledge_counts(s)
        n_docs, n_chunks = counts["documents"], counts["chunks"]
        if not n_docs and self._embedder is None:
            return {"documents": 0, "chunks": int(n_chunks), "index": "flat", "dim": 0,
                    "embedder": self._embedder_name}
        dim = self._index.dim if self._index is not None else None
        if dim is None and self._persist_vectors:
            dim = self._cache().dim
        if dim is None:
            dim = int(getattr(self.embedder, "dim", 0) or 0)
        return {"documents": int(n_docs), "chunks": int(n_chunks),
                "index": "hnsw" if n_chunks > self.hnsw_threshold else "flat", "dim": dim,
                "embedder": self.embedder.name}

    def delete(self, document: str) -> int:
        """Remove ``document`` (its name as cited) and its chunks; returns how many chunks went.
        Raises ``KeyError`` if there is no such document."""
        with self._lock:
            with self.store.begin() as s:
                n = kdb.delete_document(s, document)
            self._prune()
            return n

    def clear(self) -> dict[str, int]:
        """Remove every document, chunk, vector and index; returns what was removed."""
        with self._lock:
            with self.store.begin() as s:
                removed = kdb.clear_knowledge(s)
            shutil.rmtree(self.directory / "index", ignore_errors=True)
            shutil.rmtree(self.directory / "embeddings", ignore_errors=True)
            self._index = self._fingerprint = None
            return removed

    def _prune(self) -> None:
        """Drop cached vectors of texts no longer stored and rebuild the index (no embedding)."""
        self._index = self._fingerprint = None
        if self._persist_vectors:
            with self.store() as s:
                live = kdb.chunk_content_hashes(s)
            cache = self._cache()
            cache.save(keep=live)
        if self.load() is None:
            shutil.rmtree(self.directory / "index", ignore_errors=True)


def default_sources(home: str | Path, bundled: Path | None) -> list[Path]:
    """The domain pack's runbooks (``bundled``, or ``None``), then the uploads directory under
    ``home`` if it holds a document: what to ingest so that the knowledge base keeps the pack's
    runbooks next to uploaded ones (an upload named like a bundled runbook replaces it)."""
    from opsloop.rag.documents import SUPPORTED, uploads_dir

    up = uploads_dir(Path(home))
    has_uploads = up.is_dir() and any(p.is_file() and p.suffix.lower() in SUPPORTED for p in up.rglob("*"))
    return [*([bundled] if bundled is not None else []), *([up] if has_uploads else [])]


_OPEN: dict[tuple, KnowledgeBase] = {}
_OPEN_LOCK = threading.Lock()


def open_knowledge_base(settings, store: Store | None = None) -> KnowledgeBase:
    """The process-wide :class:`KnowledgeBase` of ``settings`` (store at
    ``settings.resolved_database_url()``, files under ``settings.home / "rag"``, embedder
    ``settings.embedder``, loaded on first use: opening, :meth:`KnowledgeBase.stats` and a query
    on an empty knowledge base never load it); ``kb.degradation`` says, once the embedder is loaded,
    if it fell back to TF-IDF."""
    from opsloop.store.session import open_store

    url = settings.resolved_database_url()
    key = (url, str(Path(settings.home) / "rag"), settings.embedder, id(store) if store is not None else None)
    with _OPEN_LOCK:
        kb = _OPEN.get(key)
        if kb is None:
            kb = KnowledgeBase(store or open_store(url), Path(settings.home) / "rag",
                               embedder_name=settings.embedder)
            _OPEN[key] = kb
        return kb
