"""Load runbooks into retrievable chunks.

Markdown chunks follow headings: each chunk is the text under one heading and keeps its section path
(e.g. ``Webhook 403 > Mitigation``); a section longer than ``max_chars`` is split at paragraph
boundaries with ``overlap_chars`` of overlap. YAML front matter (``title``, ``category``) is read.
Plain text files are chunked by paragraphs; PDF pages (pypdf) are chunked like text, each chunk's
section naming its page (``runbook p.3``). Re-reading an unchanged file yields the same chunk ids
(ids hash the document path and chunk text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from opsloop.domain import stable_hash

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SUPPORTED = (".md", ".markdown", ".txt", ".pdf")


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
        """What is embedded and indexed: the section path, then the passage."""
        return f"{self.section}\n{self.text}"


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


def _split(text: str, max_chars: int, overlap_chars: int) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    parts: list[str] = []
    cur = ""
    for p in paras:
        if cur and len(cur) + len(p) + 2 > max_chars:
            parts.append(cur)
            cur = cur[-overlap_chars:] + "\n\n" + p if overlap_chars else p
        else:
            cur = f"{cur}\n\n{p}" if cur else p
    if cur:
        parts.append(cur)
    return parts


def chunk_markdown(text: str, document: str, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """Chunks of one Markdown document (see module docstring)."""
    meta, body = _front_matter(text)
    title = str(meta.get("title") or Path(document).stem)
    path: list[tuple[int, str]] = []
    sections: list[tuple[str, list[str]]] = [(title, [])]
    in_code = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
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
    chunks = []
    for section, lines in sections:
        for part in _split("\n".join(lines), max_chars, overlap_chars):
            chunks.append(
                Chunk(id="ch-" + stable_hash([document, section, part], 12), document=document,
                      section=section, text=part, meta={k: meta[k] for k in ("title", "category") if k in meta})
            )
    return chunks


def chunk_text(text: str, document: str, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """Chunks of a plain-text document, by paragraphs."""
    return [
        Chunk(id="ch-" + stable_hash([document, i, part], 12), document=document, section=Path(document).stem, text=part)
        for i, part in enumerate(_split(text, max_chars, overlap_chars))
    ]


def chunk_pdf(path: Path, document: str, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """Chunks of a PDF's text, page by page; ``ValueError`` naming the file if it cannot be read."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        pages = [page.extract_text() or "" for page in PdfReader(str(path)).pages]
    except (PyPdfError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read PDF: {exc}") from exc
    stem = Path(document).stem
    return [
        Chunk(id="ch-" + stable_hash([document, n, i, part], 12), document=document, section=f"{stem} p.{n}", text=part)
        for n, page in enumerate(pages, start=1)
        for i, part in enumerate(_split(page, max_chars, overlap_chars))
    ]


def load_documents(root: str | Path, max_chars: int = 1200, overlap_chars: int = 150) -> list[Chunk]:
    """All chunks of the supported files under ``root`` (a directory, searched recursively, or one
    file). Files named ``_index.md`` (section indexes) are skipped.

    Raises ``FileNotFoundError`` naming ``root`` if it does not exist, ``ValueError`` if it holds no
    supported document.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such runbook file or directory")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in SUPPORTED)
    files = [f for f in files if f.name != "_index.md"]
    if not files:
        raise ValueError(f"{root}: no runbooks found (supported: {', '.join(SUPPORTED)})")
    chunks: list[Chunk] = []
    for f in files:
        rel = f.name if root.is_file() else str(f.relative_to(root))
        if f.suffix.lower() == ".pdf":
            chunks.extend(chunk_pdf(f, rel, max_chars, overlap_chars))
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix.lower() == ".txt":
            chunks.extend(chunk_text(text, rel, max_chars, overlap_chars))
        else:
            chunks.extend(chunk_markdown(text, rel, max_chars, overlap_chars))
    return [c for c in chunks if c.text.strip()]


def uploads_dir(home: Path) -> Path:
    """Where runbooks uploaded through the API are kept (``OPSLOOP_HOME/runbooks``)."""
    return Path(home) / "runbooks"


def load_default_documents(home: Path) -> list[Chunk]:
    """The bundled runbooks plus any uploaded under ``home`` (the default retrieval corpus)."""
    chunks = load_documents(bundled_runbooks_dir())
    up = uploads_dir(home)
    if up.exists() and any(p.suffix.lower() in SUPPORTED for p in up.iterdir()):
        chunks += load_documents(up)
    return chunks


def bundled_runbooks_dir() -> Path:
    """The runbooks shipped in the package (``opsloop/data/runbooks``)."""
    return Path(__file__).resolve().parent.parent / "data" / "runbooks"
