"""Load runbooks into retrievable chunks.

Markdown chunks follow headings: each chunk is the text under one heading and keeps its section path
(e.g. ``Webhook 403 > Mitigation``); a section longer than ``max_chars`` is split at paragraph
boundaries with ``overlap_chars`` of overlap. YAML front matter (``title``, ``category``) is read.
Plain text files are chunked by paragraphs; PDF pages (pypdf) are chunked like text, each chunk's
section naming its page (``runbook p.3``). A single paragraph longer than ``max_chars`` is cut at
line, then sentence, then word boundaries. Re-reading an unchanged file yields the same chunk ids
(ids hash the document path, section and chunk text; a repeat within one document gets its ordinal).

Front-matter keywords (``signals``, ``keywords``, ``tags``, ``aliases``) travel in each chunk's
``meta["keywords"]`` and are indexed with it (see :attr:`Chunk.embed_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from opsloop.domain import stable_hash

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SUPPORTED = (".md", ".markdown", ".txt", ".pdf")
#: Bump when chunking changes, so that stored documents are re-chunked on their next ingest.
CHUNKER_VERSION = "2"
#: Default chunking (characters): a chunk holds at most about ``MAX_CHARS``; each split part after
#: the first starts with the last ``OVERLAP_CHARS`` of the previous one. The one default for every
#: loader here and for :class:`opsloop.rag.store.KnowledgeBase`.
MAX_CHARS = 1200
MAX_PDF_PAGES = 2000  # a longer PDF is refused before its text is extracted
OVERLAP_CHARS = 150


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage. ``document`` is the file's path relative to the ingested root."""

    id: str
    document: str
    section: str
    text: str
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def embed_text(self) -> str:
        """What is embedded and indexed: the document title (unless the section path starts with it),
        the section path, the document's keywords, then the passage."""
        head = self.section
        title = str(self.meta.get("title") or "")
        if title and not head.startswith(title):
            head = f"{title} > {head}"
        return "\n".join(p for p in (head, str(self.meta.get("keywords") or ""), self.text) if p)


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            try:
                meta = yaml.safe_load(text[3:end]) or {}
            except yaml.YAMLError:
                meta = {}
            if isinstance(meta, dict):
                return meta, text[end + 4 :]
    return {}, text


_KEYWORD_FIELDS = ("signals", "keywords", "tags", "aliases")


def _doc_meta(meta: dict) -> dict:
    """The front-matter fields a chunk carries: ``title``, ``category`` and joined ``keywords``."""
    out = {k: str(meta[k]) for k in ("title", "category") if meta.get(k) is not None}
    words = []
    for key in _KEYWORD_FIELDS:
        value = meta.get(key)
        if isinstance(value, str):
            words.append(value)
        elif isinstance(value, list):
            words.extend(str(v) for v in value if v is not None)
    if words:
        out["keywords"] = ", ".join(words)
    return out


def _pieces(para: str, max_chars: int) -> list[str]:
    """``para`` cut at line, then sentence, then word boundaries into pieces of at most ``max_chars``
    (a single word longer than that stays whole)."""
    if len(para) <= max_chars:
        return [para]
    for pattern in (r"\n", r"(?<=[.!?;:])\s+", r"\s+"):
        units = [u for u in re.split(pattern, para) if u.strip()]
        if len(units) > 1:
            break
    else:
        return [para]
    sep = "\n" if pattern == r"\n" else " "
    out: list[str] = []
    cur = ""
    for u in units:
        for piece in _pieces(u, max_chars) if len(u) > max_chars else [u]:
            if cur and len(cur) + len(sep) + len(piece) > max_chars:
                out.append(cur)
                cur = piece
            else:
                cur = f"{cur}{sep}{piece}" if cur else piece
    if cur:
        out.append(cur)
    return out


def _overlap(text: str, overlap_chars: int) -> str:
    """The last ``overlap_chars`` of ``text``, starting at a word boundary."""
    if overlap_chars <= 0:
        return ""
    tail = text[-overlap_chars:]
    if len(tail) < len(text) and not text[-overlap_chars - 1].isspace():
        cut = re.search(r"\s", tail)
        tail = tail[cut.end():] if cut else ""
    return tail.strip()


def _split(text: str, max_chars: int, overlap_chars: int) -> list[str]:
    """Paragraphs of ``text`` packed into parts of about ``max_chars``; each part after the first
    starts with the last ``overlap_chars`` of the previous one."""
    paras = [q for p in re.split(r"\n\s*\n", text) if p.strip() for q in _pieces(p.strip(), max_chars)]
    parts: list[str] = []
    cur = ""
    for p in paras:
        if cur and len(cur) + len(p) + 2 > max_chars:
            parts.append(cur)
            tail = _overlap(cur, overlap_chars)
            cur = f"{tail}\n\n{p}" if tail else p
        else:
            cur = f"{cur}\n\n{p}" if cur else p
    if cur:
        parts.append(cur)
    return parts


def _finish(chunks: list[Chunk]) -> list[Chunk]:
    """Drop empty chunks, make ids unique within the document and record each chunk's ordinal."""
    out: list[Chunk] = []
    seen: set[str] = set()
    for c in chunks:
        if not c.text.strip():
            continue
        cid = c.id if c.id not in seen else f"{c.id}-{len(out)}"
        seen.add(cid)
        out.append(Chunk(id=cid, document=c.document, section=c.section, text=c.text,
                         meta={**c.meta, "ordinal": len(out)}))
    return out


def chunk_markdown(text: str, document: str,
                   max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks of one Markdown document (see module docstring)."""
    meta, body = _front_matter(text)
    title = str(meta.get("title") or Path(document).stem)
    path: list[tuple[int, str]] = []
    sections: list[tuple[str, list[str]]] = [(title, [])]
    in_code = False
    for line in body.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m:
            level, name = len(m.group(1)), m.group(2)
            path = [(lv, n) for lv, n in path if lv < level] + [(level, name)]
            names = [n for _, n in path]
            if names and names[0] != title and level > 1:
                names = [title, *names]
            sections.append((" > ".join(names), []))
        else:
            sections[-1][1].append(line)
    doc_meta = _doc_meta({"title": title, **meta}) if meta else {}
    chunks = []
    for section, lines in sections:
        for part in _split("\n".join(lines), max_chars, overlap_chars):
            chunks.append(Chunk(id="ch-" + stable_hash([document, section, part], 12), document=document,
                                section=section, text=part, meta=dict(doc_meta)))
    return _finish(chunks)


def chunk_text(text: str, document: str,
               max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks of a plain-text document, by paragraphs."""
    return _finish([
        Chunk(id="ch-" + stable_hash([document, i, part], 12), document=document, section=Path(document).stem, text=part)
        for i, part in enumerate(_split(text, max_chars, overlap_chars))
    ])


def chunk_pdf(path: Path, document: str,
              max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks of a PDF's text, page by page (``meta["page"]``, 1-based); ``ValueError`` naming the
    file if it cannot be read."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    with open(path, "rb") as fh:
        if fh.read(5) != b"%PDF-":
            raise ValueError(f"{path}: not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(str(path))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise ValueError(f"{path}: {len(reader.pages)} pages; at most {MAX_PDF_PAGES} are read")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or None
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read PDF: {exc}") from exc
    stem = Path(document).stem
    meta = {"title": str(title)} if title else {}
    return _finish([
        Chunk(id="ch-" + stable_hash([document, n, i, part], 12), document=document, section=f"{stem} p.{n}",
              text=part, meta={**meta, "page": n})
        for n, page in enumerate(pages, start=1)
        for i, part in enumerate(_split(page, max_chars, overlap_chars))
    ])


_BINARY_MAGIC = (b"PK\x03\x04", b"%PDF-", b"\x1f\x8b", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")


def read_text_document(path: Path) -> str:
    """A Markdown or text file's text; ``ValueError`` naming the file when its bytes are not text:
    a known binary signature (zip, PDF, gzip, ELF, PE, PNG, JPEG, GIF), a NUL byte, or more than
    1% of bytes that are not UTF-8."""
    data = path.read_bytes()
    if data.startswith(_BINARY_MAGIC) or b"\x00" in data[:65536]:
        raise ValueError(f"{path}: binary content, not Markdown or text")
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        raise ValueError(f"{path}: not UTF-8 text")
    return text


def chunk_file(path: str | Path, document: str,
               max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks of one supported file, named ``document`` (its path relative to the ingested root)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(f"{path}: unsupported document type (supported: {', '.join(SUPPORTED)})")
    if suffix == ".pdf":
        return chunk_pdf(path, document, max_chars, overlap_chars)
    text = read_text_document(path)
    if suffix == ".txt":
        return chunk_text(text, document, max_chars, overlap_chars)
    return chunk_markdown(text, document, max_chars, overlap_chars)


def find_documents(root: str | Path) -> list[tuple[Path, str]]:
    """``(file, document name)`` for each supported file under ``root`` (a directory, searched
    recursively, or one file); the name is the path relative to ``root`` (a file's own name when
    ``root`` is a file). Files named ``_index.md`` (section indexes) are skipped.

    Raises ``FileNotFoundError`` naming ``root`` if it does not exist, ``ValueError`` if it holds no
    supported document.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such runbook file or directory")
    if root.is_file():
        if root.suffix.lower() not in SUPPORTED:
            raise ValueError(f"{root}: unsupported document type (supported: {', '.join(SUPPORTED)})")
        return [(root, root.name)]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED
                   and p.name != "_index.md")
    if not files:
        raise ValueError(f"{root}: no runbooks found (supported: {', '.join(SUPPORTED)})")
    return [(f, f.relative_to(root).as_posix()) for f in files]


def load_documents(root: str | Path,
                   max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """All chunks of the supported files under ``root`` (see :func:`find_documents`).

    Raises ``FileNotFoundError`` naming ``root`` if it does not exist, ``ValueError`` if it holds no
    supported document or a PDF cannot be read.
    """
    chunks: list[Chunk] = []
    for f, rel in find_documents(root):
        chunks.extend(chunk_file(f, rel, max_chars, overlap_chars))
    return chunks


def uploads_dir(home: Path) -> Path:
    """Where runbooks uploaded through the API are kept (``OPSLOOP_HOME/runbooks``)."""
    return Path(home) / "runbooks"


def load_default_documents(home: Path, bundled: Path | None) -> list[Chunk]:
    """The domain pack's runbooks (``bundled``, a directory, or ``None``) plus any uploaded under
    ``home``: the default retrieval corpus (empty when there are none)."""
    chunks = load_documents(bundled) if bundled is not None else []
    up = uploads_dir(home)
    if up.exists() and any(p.suffix.lower() in SUPPORTED for p in up.iterdir()):
        chunks += load_documents(up)
    return chunks
