"""Typed runbook sections and the steps quoted from a mitigation section.

Runbooks in the wild follow a few conventions: the prometheus-operator and Google SRE runbooks use
*Meaning / Impact / Diagnosis / Mitigation*, others *Symptoms / Investigation / Remediation /
Verification*. :func:`section_kind` maps a chunk's heading path (``Title > Mitigation > Stale
secret``) to a :class:`~opsloop.domain.SectionKind` by the shallowest heading that names one of these
roles, so a sub-heading under *Mitigation* is mitigation too. The words are the field's, not any
domain's.

:func:`steps` reads the list items (``-``, ``*``, ``1.``) of a section's text, continuation lines
joined and fenced code left out, so an assessment can quote what the runbook says to do.
"""

from __future__ import annotations

import re

from opsloop.domain import SectionKind

#: Heading words (lower-case prefixes) per kind, tried in this order on each heading.
_WORDS: tuple[tuple[SectionKind, tuple[str, ...]], ...] = (
    (SectionKind.verification, ("verif", "validat", "confirm", "check it worked", "success criteria",
                                "how to tell", "resolved when")),
    (SectionKind.mitigation, ("mitigat", "remediat", "resolution", "resolv", "fix", "workaround",
                              "recover", "response", "what to do", "actions", "immediate")),
    (SectionKind.diagnosis, ("diagnos", "investigat", "triage", "troubleshoot", "debug", "root cause",
                             "find the cause", "analysis")),
    (SectionKind.symptoms, ("symptom", "meaning", "overview", "description", "signs", "what it means",
                            "alert", "summary", "detection")),
)
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,2}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _kind_of(heading: str) -> SectionKind | None:
    h = heading.strip().lower()
    for kind, words in _WORDS:
        if any(h.startswith(w) or f" {w}" in f" {h}" for w in words):
            return kind
    return None


def section_kind(section: str) -> SectionKind:
    """The kind of the section whose heading path is ``section`` (``" > "``-separated): that of the
    shallowest heading that names a role (a variant under *Mitigation* is mitigation whatever its
    own words), else :attr:`SectionKind.other`. The first element (the document title) is not
    read, so a runbook titled "Fix X" is not all mitigation."""
    for heading in section.split(" > ")[1:]:
        kind = _kind_of(heading)
        if kind is not None:
            return kind
    return SectionKind.other


def steps(text: str, limit: int = 6, max_chars: int = 300) -> list[str]:
    """Up to ``limit`` list items of ``text`` (a section's Markdown), in order: top-level items only
    (an item indented under another is part of it), continuation lines joined, whitespace
    collapsed, fenced code skipped; each cut to ``max_chars`` with an ellipsis. A section with no
    list gives its first paragraph as one step (empty text: no step)."""
    items: list[str] = []
    base: int | None = None
    in_code = False
    current: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        m = _ITEM.match(line)
        indent = len(m.group(1)) if m else None
        if m and (base is None or indent <= base):
            base = indent if base is None else base
            current = [m.group(2).strip()]
            items.append("")
        elif current is not None and line.strip() and not line.lstrip().startswith("#"):
            if m is None or (indent is not None and base is not None and indent > base):
                current.append(line.strip())
        elif not line.strip():
            pass
        if current is not None and items:
            items[-1] = " ".join(current)
    out = [_cut(" ".join(i.split()), max_chars) for i in items if i.strip()]
    if not out:
        para = " ".join(text.strip().split("\n\n", 1)[0].split()) if text.strip() else ""
        out = [_cut(para, max_chars)] if para else []
    return out[:limit]


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1].rstrip() + "…"
