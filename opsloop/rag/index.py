"""Hybrid retrieval over runbook chunks: dense (FAISS) + lexical (BM25), fused by reciprocal rank.

* **Dense**: L2-normalised embeddings in FAISS; inner product of normalised vectors is cosine
  similarity (Johnson et al. 2019). Exact ``IndexFlatIP`` up to ``hnsw_threshold`` chunks, above it
  the approximate ``IndexHNSWFlat`` with the inner-product metric (Malkov & Yashunin 2018).
* **Lexical**: Okapi BM25 (Robertson & Zaragoza 2009; ``bm25s``, Lucene variant) over the tokens of
  :func:`opsloop.rag.text.tokenize` (identifier splitting, stopwords, Porter stemming).
* **Hybrid**: reciprocal rank fusion (Cormack, Clarke & Büttcher 2009): each chunk scores
  ``Σ_mode 1 / (k_rrf + rank_mode)`` over the modes that retrieved it (``k_rrf`` = 60, ranks from 1,
  each mode's top ``depth`` chunks; BM25 only ranks chunks sharing a term with the query).

What is indexed for each chunk is :attr:`~opsloop.rag.documents.Chunk.embed_text` (title, section
path, keywords and passage). Documents are ranked by their best chunk (max aggregation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from opsloop.clustering.embedders import Embedder
from opsloop.domain import Citation, SectionKind
from opsloop.rag.documents import Chunk
from opsloop.rag.sections import section_kind
from opsloop.rag.text import TOKENIZER_VERSION, tokenize, tokenize_many

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
#: Above this many chunks the dense index is approximate (HNSW) instead of exact.
HNSW_THRESHOLD = 20_000
RRF_K = 60
#: BM25 parameters (Lucene defaults; the benchmark found them as good as any nearby setting).
BM25_K1, BM25_B = 1.2, 0.75


def build_dense_index(vectors: np.ndarray, hnsw_threshold: int = HNSW_THRESHOLD) -> faiss.Index:
    """A FAISS inner-product index holding ``vectors`` (shape (n, dim), L2-normalised float32):
    ``IndexFlatIP`` if ``n <= hnsw_threshold``, else ``IndexHNSWFlat`` (M=32, efConstruction=80)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) > hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def index_kind(index: faiss.Index) -> str:
    """``"hnsw"`` or ``"flat"``."""
    return "hnsw" if isinstance(index, faiss.IndexHNSW) or "HNSW" in type(index).__name__ else "flat"


class BM25:
    """BM25 over pre-tokenised chunks (a thin wrapper over ``bm25s.BM25``)."""

    def __init__(self, retriever, n_docs: int) -> None:
        self.retriever = retriever
        self.n_docs = n_docs

    @classmethod
    def build(cls, tokens: list[list[str]], k1: float = BM25_K1, b: float = BM25_B) -> BM25:
        import bm25s

        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index([t or [""] for t in tokens], show_progress=False)
        return cls(retriever, len(tokens))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every chunk, shape (n_docs,); zeros if no query token is in the vocabulary."""
        vocab = self.retriever.vocab_dict
        ids = [vocab[t] for t in query_tokens if t and t in vocab]
        if not ids or not self.n_docs:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(ids), dtype=np.float32)

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)
        (Path(directory) / "opsloop.json").write_text(json.dumps({"n_docs": self.n_docs, "tokenizer": TOKENIZER_VERSION}))

    @classmethod
    def load(cls, directory: Path) -> BM25:
        """Raises ``ValueError`` if it was built with another tokenizer version."""
        import bm25s

        info = json.loads((Path(directory) / "opsloop.json").read_text())
        if info.get("tokenizer") != TOKENIZER_VERSION:
            raise ValueError(f"{directory}: BM25 index built with tokenizer {info.get('tokenizer')!r}")
        return cls(bm25s.BM25.load(str(directory), show_progress=False), int(info["n_docs"]))


def _rank(scores: np.ndarray, depth: int, positive_only: bool = False) -> list[int]:
    """Indices of the ``depth`` highest ``scores``, best first (ties by index)."""
    if positive_only:
        cand = np.flatnonzero(scores > 0)
    else:
        cand = np.arange(len(scores))
    if len(cand) > depth:
        part = np.argpartition(-scores[cand], depth - 1)[:depth]
        cand = cand[part]
    order = np.lexsort((cand, -scores[cand]))
    return [int(i) for i in cand[order]]


#: Primed query vectors a :class:`RunbookIndex` holds at most (see :meth:`RunbookIndex.prime`).
QUERY_CACHE = 256


class RunbookIndex:
    """Dense + BM25 index over ``chunks`` embedded with ``embedder``.

    ``query(text, k, mode)`` returns up to ``k`` :class:`Citation` best first; ``score`` is the
    cosine similarity in [-1, 1] (``dense``), the BM25 score (``bm25``) or the RRF score
    (``hybrid``, at most 2 / (60 + 1)). Prebuilt parts (``vectors``, ``dense``, ``bm25``) can be
    passed to skip embedding and indexing (see :class:`opsloop.rag.store.KnowledgeBase`).
    """

    def __init__(self, chunks: list[Chunk], embedder: Embedder, *, vectors: np.ndarray | None = None,
                 dense: faiss.Index | None = None, bm25: BM25 | None = None,
                 hnsw_threshold: int = HNSW_THRESHOLD, mode: Mode = "hybrid", depth: int = 100) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; one of {', '.join(MODES)}")
        self.chunks = list(chunks)
        self.embedder = embedder
        self.mode = mode
        self.depth = depth
        if dense is None:
            if vectors is None:
                vectors = embedder.embed([c.embed_text for c in self.chunks]) if self.chunks else None
            dim = vectors.shape[1] if vectors is not None else int(getattr(embedder, "dim", 0) or 1)
            dense = build_dense_index(vectors if vectors is not None else np.zeros((0, dim), np.float32),
                                      hnsw_threshold)
        if dense.ntotal != len(self.chunks):
            raise ValueError(f"dense index holds {dense.ntotal} vectors for {len(self.chunks)} chunks")
        self.dense = dense
        self.bm25 = bm25 if bm25 is not None else BM25.build(tokenize_many([c.embed_text for c in self.chunks]))
        self._queries: dict[str, np.ndarray] = {}
        self._category = {}
        self._title: dict[str, str] = {}
        for c in self.chunks:
            self._title.setdefault(c.document, str(c.meta.get("title") or c.section.split(" > ")[0]))
            if "category" in c.meta:
                self._category.setdefault(c.document, str(c.meta["category"]))

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate) dense index."""
        return index_kind(self.dense)

    @property
    def dim(self) -> int:
        return int(self.dense.d)

    def prime(self, texts: list[str]) -> None:
        """Embed the query ``texts`` in one batch for the :meth:`query` calls that follow: each
        primed vector is used once, by the first query of its text (a batch costs about one call;
        at most :data:`QUERY_CACHE` wait). Queries of unprimed texts embed as before."""
        todo = list(dict.fromkeys(t for t in texts if t.strip() and t not in self._queries))
        if todo and self.chunks:
            for t, v in zip(todo, np.asarray(self.embedder.embed(todo), dtype=np.float32), strict=True):
                self._queries[t] = v
            while len(self._queries) > QUERY_CACHE:
                self._queries.pop(next(iter(self._queries)))

    def _dense_rank(self, text: str, depth: int) -> list[tuple[int, float]]:
        vector = self._queries.pop(text, None)
        if vector is None:
            vector = np.asarray(self.embedder.embed([text]), dtype=np.float32)[0]
        q = np.ascontiguousarray(vector[None, :], dtype=np.float32)
        if self.kind == "hnsw":
            faiss.ParameterSpace().set_index_parameter(self.dense, "efSearch", max(64, depth))
        scores, ids = self.dense.search(q, min(depth, len(self.chunks)))
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def _bm25_rank(self, text: str, depth: int) -> list[tuple[int, float]]:
        scores = self.bm25.scores(tokenize(text))
        return [(i, float(scores[i])) for i in _rank(scores, depth, positive_only=True)]

    def rank(self, text: str, mode: Mode | None = None, depth: int | None = None) -> list[tuple[int, float]]:
        """``(chunk position, score)`` pairs, best first, for ``mode`` (default: the index's)."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; one of {', '.join(MODES)}")
        if not self.chunks or not text.strip():
            return []
        depth = max(depth or self.depth, 1)
        if mode == "dense":
            return self._dense_rank(text, depth)
        if mode == "bm25":
            return self._bm25_rank(text, depth)
        fused: dict[int, float] = {}
        for ranking in (self._dense_rank(text, depth), self._bm25_rank(text, depth)):
            for r, (i, _) in enumerate(ranking, start=1):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r)
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    def _citation(self, i: int, score: float) -> Citation:
        c = self.chunks[i]
        return Citation(chunk_id=c.id, document=c.document, section=c.section, score=score, text=c.text,
                        kind=section_kind(c.section))

    def query(self, text: str, k: int = 3, mode: Mode | None = None) -> list[Citation]:
        """Up to ``k`` passages best first (see the class docstring for ``score``)."""
        return [self._citation(i, s) for i, s in self.rank(text, mode, max(self.depth, k))[:k]]

    def query_documents(self, text: str, k: int = 3, mode: Mode | None = None) -> list[Citation]:
        """The best passage of each of the ``k`` best documents (a document scores as its best chunk)."""
        out: list[Citation] = []
        seen: set[str] = set()
        for i, s in self.rank(text, mode, max(self.depth, k)):
            doc = self.chunks[i].document
            if doc not in seen:
                seen.add(doc)
                out.append(self._citation(i, s))
                if len(out) == k:
                    break
        return out

    def category_of(self, document: str) -> str | None:
        """The ``category`` front-matter field of ``document``, if it has one."""
        return self._category.get(document)

    def title_of(self, document: str) -> str:
        """``document``'s title (front matter, else its first section), or its name if not indexed."""
        return self._title.get(document, document)

    def documents_of(self, category: str) -> list[str]:
        """The documents whose front matter names ``category``, in index order."""
        return [d for d, c in self._category.items() if c == category]

    def passages(self, document: str, kind: SectionKind | None = None) -> list[Citation]:
        """``document``'s chunks in reading order (of section ``kind`` only, when given), as
        citations with score 1.0 (they are chosen by document, not ranked)."""
        out = [self._citation(i, 1.0) for i, c in enumerate(self.chunks) if c.document == document]
        return [c for c in out if kind is None or c.kind == kind]
