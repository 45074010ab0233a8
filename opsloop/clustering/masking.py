"""The one log masker: variable tokens of a log message replaced by a class token before templating.

Masking is Drain's pre-processing step (He et al. 2017, "Drain: An Online Log Parsing Approach with
Fixed Depth Tree", §III-A: "simple regular expressions ... based on domain knowledge" for ids, IPs,
numbers). :data:`MASKS` is the one list, in application order; it serves the drain3 miners
(:mod:`opsloop.clustering.drain`, through :func:`mask_one` on raw lines and :func:`mask_messages`
on frames) and the simple log signatures (:mod:`opsloop.clustering.logs`).

**One token per field.** A field gets the same token whatever its value's length: hex and decimal
numbers of any number of digits (``7``, ``1234``, ``0x0000abcd``, ``12345678``, ``8f3a21bc``) are all
``<NUM>``, so a count that is sometimes 5 and sometimes 8 digits long stays one template (on
Loghub's BGL sample ``63543 double-hummer alignment exceptions`` and ``12345678 double-hummer
...`` used to become a ``<NUM>`` and a ``<HEX>`` template). A hex run needs a digit, so words made
of the letters a-f (``added``, ``face``) are kept.

**Masks:** ``<EMAIL>``, ``<UUID>``, ``<IP>`` (dotted quad, optional ``:port``), ``<HOST>`` (a dotted
host name ending in a common top-level or site domain -- ``com``, ``org``, ``net``, ``edu``,
``gov``, ``io``, ``local``, ``internal``, ``corp``, ``lan`` -- with an optional ``:port``, masked
whole: ``host123.example.org:8080``; a Java package such as ``org.apache.hadoop.io.compress`` is not
a host, because a host name must not be followed by another ``.label``), ``<ID>`` (a short letter
prefix, ``_`` and a run holding a digit: ``ord_8f3a…``, ``m_019``, ``pk_live_…a1b2``,
``attempt_1445_0020_m_000000_0``, ``blk_-1608…``), ``<VERSION>`` (``v2.14.0``) and ``<NUM>``.

**Kept:** an HTTP status code followed by its reason phrase (``403 Forbidden``): it is what an SRE
reads a template for. RE2 has no look-ahead, so the code is first rewritten to ``zzs403zz`` (no word
boundary before the digits, so no mask matches) and restored afterwards.

**Engines.** Patterns are RE2- and Python-``re``-compatible (no look-arounds, no back-references in
patterns): :func:`mask_messages` runs them vectorised through pandas (RE2 via pyarrow, ~5x faster
than Python ``re`` on large frames), :func:`mask_one` with Python ``re``; the two agree on ASCII
text.
"""

from __future__ import annotations

import re

import pandas as pd

# A host name's last label; ``io`` and ``local`` are as common in service names as the classic ones.
_TLD = r"(?:com|org|net|edu|gov|io|local|internal|corp|lan)"

#: (token name, pattern, replacement) in application order. The replacement writes ``<NAME>``
#: followed by what the pattern had to consume after the field (``\1``) when it needs a right edge
#: that a look-ahead would otherwise give.
MASKS: list[tuple[str, str, str]] = [
    ("EMAIL", r"[\w.+-]+@[\w-]+\.[\w.-]+", "<EMAIL>"),
    ("UUID", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<UUID>"),
    ("IP", r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]+)?\b", "<IP>"),
    # a host is not followed by ".label" (that is a package or file name): the next character is
    # consumed and written back
    ("HOST", r"\b[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\." + _TLD + r"(?::[0-9]+)?(\.?[^A-Za-z0-9_.-]|\.?$)",
     r"<HOST>\1"),
    ("ID", r"\b[A-Za-z]{1,8}_-?[0-9A-Za-z_.]*[0-9][0-9A-Za-z_.]*\b", "<ID>"),
    ("VERSION", r"\bv[0-9]+(?:\.[0-9]+)+\b", "<VERSION>"),
    ("NUM", r"\b(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)+|[0-9a-fA-F]*[0-9][0-9a-fA-F]*)\b", "<NUM>"),
]

#: The tokens :data:`MASKS` writes.
TOKENS: tuple[str, ...] = tuple(f"<{name}>" for name, _, _ in MASKS)

_STATUS = r"\b([1-5][0-9][0-9]) ([A-Z][A-Za-z])"
_PROTECT, _RESTORE = (_STATUS, r"zzs\1zz \2"), (r"\bzzs([0-9]{3})zz\b", r"\1")
_COMPILED = [(re.compile(p), r) for _, p, r in MASKS]
_PROTECT_RE, _RESTORE_RE, _SPACE_RE = (re.compile(_PROTECT[0]), re.compile(_RESTORE[0]),
                                          re.compile(r"[ \t\n\r\f\v]+"))


def mask_messages(messages: pd.Series) -> pd.Series:
    """Masked text per message: a ``str`` Series on ``messages``' index (vectorised, RE2). Missing
    messages become ``""``; runs of whitespace become one space and the ends are stripped (Drain
    splits on whitespace anyway; equal messages then mask equal for the log signatures)."""
    out = messages.fillna("").astype("str")
    out = out.str.replace(_PROTECT[0], _PROTECT[1], regex=True)
    for _, pattern, repl in MASKS:
        out = out.str.replace(pattern, repl, regex=True)
    out = out.str.replace(_RESTORE[0], _RESTORE[1], regex=True)
    # an explicit class, not \s: pandas runs \s through Python re (RE2's \s differs), ~10x slower
    return out.str.replace(r"[ \t\n\r\f\v]+", " ", regex=True).str.strip()


def mask_one(message: str | None) -> str:
    """:func:`mask_messages` for one string (Python ``re``); ``None`` gives ``""``."""
    out = _PROTECT_RE.sub(_PROTECT[1], message or "")
    for pattern, repl in _COMPILED:
        out = pattern.sub(repl, out)
    return _SPACE_RE.sub(" ", _RESTORE_RE.sub(_RESTORE[1], out)).strip()
