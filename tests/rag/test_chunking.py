"""Chunking of Markdown, plain text and PDF; the tokenizer BM25 uses."""

from __future__ import annotations

from itertools import pairwise

import pytest

from opsloop.rag.documents import chunk_markdown, chunk_text, find_documents, load_documents
from opsloop.rag.text import stem, tokenize

from .conftest import tiny_pdf


def test_pdf_pages_become_chunks_with_page_numbers(tmp_path):
    (tmp_path / "guide.pdf").write_bytes(tiny_pdf(
        ["Webhook deliveries fail with 403\nRotate the signing secret", "Page two: re-sync the secret"],
        title="Webhook guide"))
    chunks = load_documents(tmp_path / "guide.pdf")
    assert [c.section for c in chunks] == ["guide p.1", "guide p.2"]
    assert [c.meta["page"] for c in chunks] == [1, 2]
    assert "signing secret" in chunks[0].text and chunks[0].document == "guide.pdf"
    assert chunks[0].embed_text.startswith("Webhook guide > guide p.1")


def test_unreadable_pdf_names_the_file(tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(ValueError, match="broken.pdf"):
        load_documents(tmp_path)


def test_plain_text_is_chunked_by_paragraphs_with_overlap_at_word_boundaries():
    paras = [f"Paragraph {i}: " + " ".join(f"word{i}x{j}" for j in range(30)) for i in range(6)]
    chunks = chunk_text("\n\n".join(paras), "notes.txt", max_chars=500, overlap_chars=60)
    assert len(chunks) >= 3 and all(c.section == "notes" for c in chunks)
    for prev, cur in pairwise(chunks):
        head = cur.text.split("\n\n")[0]
        assert prev.text.endswith(head)  # the overlap is the previous chunk's tail ...
        assert head.split()[0] in prev.text.split()  # ... starting at a whole word
    assert [c.meta["ordinal"] for c in chunks] == list(range(len(chunks)))


def test_a_single_overlong_paragraph_is_cut_at_sentences():
    para = " ".join(f"Sentence number {i} says something useful." for i in range(80))
    chunks = chunk_text(para, "long.txt", max_chars=400, overlap_chars=0)
    assert len(chunks) > 5 and all(len(c.text) <= 400 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)


def test_chunk_size_is_configurable():
    body = "\n\n".join("para " + "text " * 50 for _ in range(12))
    small = chunk_markdown(f"# T\n\n{body}", "t.md", max_chars=300, overlap_chars=0)
    large = chunk_markdown(f"# T\n\n{body}", "t.md", max_chars=3000, overlap_chars=0)
    assert len(small) > len(large) >= 1


def test_front_matter_keywords_are_indexed_and_repeated_sections_keep_unique_ids():
    md = "---\ntitle: Disk full\ncategory: disk\nsignals: [no space left on device, ENOSPC]\n---\n" \
         "# Disk full\n\n## Check\n\nsame text\n\n## Check\n\nsame text\n"
    chunks = chunk_markdown(md, "disk.md")
    assert len(chunks) == 2 and len({c.id for c in chunks}) == 2
    assert "no space left on device, ENOSPC" in chunks[0].embed_text
    assert chunks[0].meta["category"] == "disk"


def test_find_documents_names_files_relative_to_the_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.md").write_text("# One\n\ntext")
    (tmp_path / "two.txt").write_text("text")
    (tmp_path / "_index.md").write_text("# index")
    (tmp_path / "skip.csv").write_text("x")
    assert [n for _, n in find_documents(tmp_path)] == ["a/one.md", "two.txt"]
    assert [n for _, n in find_documents(tmp_path / "a" / "one.md")] == ["one.md"]


def test_porter_stemmer_and_identifier_aware_tokens():
    assert [stem(w) for w in ("restarting", "restarts", "relational", "ponies", "certificates")] == \
        ["restart", "restart", "relat", "poni", "certif"]
    toks = tokenize("KubePodCrashLooping: the pod is restarting, HTTP 403 on p95_latency_ms")
    assert {"kube", "pod", "crash", "loop", "kubepodcrashloop", "restart", "403", "p95", "latenc"} <= set(toks)
    assert "the" not in toks and "is" not in toks
    assert "down" in tokenize("the node is down")  # meaningful in operations: kept
