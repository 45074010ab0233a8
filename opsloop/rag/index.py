"""Dense retrieval over runbook chunks: normalised embeddings in a FAISS exact inner-product index.

Inner product of L2-normalised vectors is cosine similarity (Johnson et al. 2019, FAISS).
"""

from __future__ import annotations

import faiss
import numpy as np

from opsloop.clustering.embedders import Embedder
from opsloop.domain import Citation
from opsloop.rag.documents import Chunk


class RunbookIndex:
    """FAISS ``IndexFlatIP`` over ``chunks`` embedded with ``embedder``.

    ``query(text, k)`` returns up to ``k`` :class:`Citation` best first, ``score`` the cosine
    similarity in [-1, 1].
    """

    def __init__(self, chunks: list[Chunk], embedder: Embedder) -> None:
        self.chunks = chunks
        self.embedder = embedder
        vecs = np.ascontiguousarray(embedder.embed([c.embed_text for c in chunks]), dtype=np.float32)
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    def query(self, text: str, k: int = 3) -> list[Citation]:
        if not self.chunks:
            return []
        q = np.ascontiguousarray(self.embedder.embed([text]), dtype=np.float32)
        scores, ids = self.index.search(q, min(k, len(self.chunks)))
        out = []
        for s, i in zip(scores[0], ids[0]):
            if i < 0:
                continue
            c = self.chunks[i]
            out.append(Citation(chunk_id=c.id, document=c.document, section=c.section, score=float(s), text=c.text))
        return out

    def category_of(self, document: str) -> str | None:
        """The ``category`` front-matter field of ``document``, if it has one."""
        for c in self.chunks:
            if c.document == document and "category" in c.meta:
                return str(c.meta["category"])
        return None
