"""Fixtures for retrieval tests: a fast deterministic embedder, a counting wrapper, a tiny PDF writer."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from opsloop.rag.text import tokenize


class HashEmbedder:
    """Deterministic bag-of-stems embedder (each stem hashed to a random unit direction): fast, no
    model, similar texts get similar vectors. For storage tests, not for quality."""

    name = "hash"
    dim = 64

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for tok in tokenize(t) or ["<empty>"]:
                seed = int.from_bytes(hashlib.sha256(tok.encode()).digest()[:8], "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to embed (``texts``) and the calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = getattr(inner, "dim", None)
        self.calls = 0
        self.texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def minilm():
    from opsloop.clustering.embedders import get_embedder

    embedder, note = get_embedder("minilm")
    if note:
        pytest.skip(note)
    return embedder


def tiny_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF (Helvetica text, one line per ``\\n``) with one page per string."""
    n = len(pages)
    page_ids = [4 + 2 * i for i in range(n)]
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for pid, text in zip(page_ids, pages):
        lines = " ".join(f"({line}) Tj 0 -16 Td" for line in text.split("\n"))
        content = f"BT /F1 11 Tf 72 740 Td {lines} ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {pid + 1} 0 R >>".encode())
        objs.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream".encode())
    if title:
        objs.append(f"<< /Title ({title}) >>".encode())
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    info = f" /Info {len(objs)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
