"""The one log masker: variable tokens of a log message replaced by a class token before templating.

Masking is Drain's pre-processing step (He et al. 2017, "Drain: An Online Log Parsing Approach with
Fixed Depth Tree", §III-A: "simple regular expressions ... based on domain knowledge" for ids, IPs,
numbers). :data:`MASKS` is the one list, in application order; it serves the drain3 miners
(:mod:`opsloop.clustering.drain`, through :func:`mask_one` on raw lines and :func:`mask_messages`
on frames) and the simple log signatures (:mod:`opsloop.clustering.logs`).

**One token per field.** A field gets the same token whatever its value's length or spelling: hex
and decimal numbers of any number of digits (``7``, ``1234``, ``0x0000abcd``, ``12345678``,
``8f3a21bc``) are all ``<NUM>``, so a count that is sometimes 5 and sometimes 8 digits long stays
one template (on Loghub's BGL sample ``63543 double-hummer alignment exceptions`` and ``12345678
double-hummer ...`` used to become a ``<NUM>`` and a ``<HEX>`` template); a number with its unit
glued on (``30s``, ``512ms``, ``4KB``) is one ``<NUM>``; an id is ``<ID>`` whether its value holds
digits (``ord_8f3a…``), none (``dlv_bebedccfffaa``, eight or more hex letters) or is elided
(``pk_live_...ceba``); a *list* of one field (``<IP>,<IP>``, ``blk_1 blk_2 blk_3``) is one token,
since its length varies from line to line and Drain groups by token count. A hex run needs a digit
or eight characters, so words made of the letters a-f (``added``, ``face``) are kept.

**Short events stay apart.** A mask never swallows a word around the field: letters before digits
stay (``bglio559`` → ``bglio<NUM>``, ``J16`` → ``J<NUM>``, ``wl0`` → ``wl<NUM>``), an API version
segment alone (``/v1/health``) does not make a path an id path, and each kind of field keeps its own
token, so two short events that differ in one word keep that word (Drain's similarity counts equal
masks as equal tokens, so a mask that ate the word would merge them).

**Masks** (in order): ``<EMAIL>``; ``<UUID>``; ``<TIME>`` (ISO date and time, syslog/ctime date
such as ``Fri Jul 1 12:34:56 PDT 2005``, clock time ``12:34:56.789``); ``<MAC>``; ``<IP>`` (IPv6, full
or compressed from a leading group, and dotted quad, optional ``:port``); ``<HOST>`` (a dotted host
name ending in a common top-level or site domain -- ``com``, ``org``, ``net``, ``edu``, ``gov``,
``io``, ``local``, ``internal``, ``corp``, ``lan`` -- with an optional ``:port``, masked whole:
``host123.example.org:8080``; a Java package such as ``org.apache.hadoop.io.compress`` is not a
host, because a host name must not be followed by another ``.label``); ``<PATH>`` (an absolute path
with a segment naming an id -- one holding a digit that is not a bare ``v2`` -- masked whole:
``/v2/54fa…/servers/detail``, ``/user/root/_task_2008…_m_0018_0/part-01866``); ``<ID>`` (a letter
prefix of up to 16, ``_`` and a run holding a digit: ``ord_8f3a…``, ``m_019``,
``attempt_1445_0020_m_000000_0``, ``container_1445…_01_000005``, ``blk_-1608…``; or the digit-less
ids above); ``<VERSION>`` (``v4``, ``v2.14.0``) and ``<NUM>``.

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
_HEX4 = r"[0-9a-fA-F]{1,4}"
# characters of a path segment; a segment naming an id holds a digit and is not an API version
# (``v2``), or holds a field masked already (``/openstack/<TIME>/meta_data.json``)
_SEG = r"[A-Za-z0-9_.~%+@=*<>-]"
_ID_SEG = rf"(?:[A-Za-uw-z0-9_.~%+@=*-]{_SEG}*[0-9]{_SEG}*|[0-9]{_SEG}*|{_SEG}*<[A-Z]+>{_SEG}*)"
# what may stand just before a path: start, space, quote, bracket, ``=``, ``,`` or ``:``
_PATH_LEFT = r"(^|[ \t\"'(\[=,:])"

#: (token name, pattern, replacement) in application order, one pass each (each pass copies every
#: string, so alternatives of one token share a pass). The replacement writes ``<NAME>`` around what
#: the pattern had to consume before or after the field (``\1``) where a look-around would otherwise
#: give the edge.
MASKS: list[tuple[str, str, str]] = [
    ("EMAIL", r"[\w.+-]+@[\w-]+\.[\w.-]+", "<EMAIL>"),
    ("UUID", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<UUID>"),
    # a timestamp inside a message: ISO date (and time), syslog/ctime date, clock time
    ("TIME", r"\b(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
     r"|(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +[0-9]{1,2}"
     r"(?:,? [0-9]{4})?(?: [0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)?(?: [A-Z]{3,4})?(?: [0-9]{4})?"
     r"|[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?)\b", "<TIME>"),
    ("MAC", r"\b(?:[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}|[0-9a-fA-F]{2}(?:-[0-9a-fA-F]{2}){5})\b", "<MAC>"),
    # IPv6 (eight groups, or compressed from a leading group: ``fe80::1``), then a dotted quad
    ("IP", rf"\b(?:{_HEX4}(?::{_HEX4}){{7}}|{_HEX4}(?::{_HEX4})*::(?:{_HEX4}(?::{_HEX4})*)?"
     r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]+)?\b)", "<IP>"),
    # a host is not followed by ".label" (that is a package or file name): the next character is
    # consumed and written back
    ("HOST", r"\b[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\." + _TLD + r"(?::[0-9]+)?(\.?[^A-Za-z0-9_.-]|\.?$)",
     r"<HOST>\1"),
    # an absolute path with a segment naming an id, whole: /v2/54fa.../servers/detail, /tmp/job_17/part-3
    ("PATH", _PATH_LEFT + rf"/(?:{_SEG}*/)*{_ID_SEG}(?:/{_SEG}*)*", r"\1<PATH>"),
    # a prefix, "_" and a run with a digit; or a value without one: all hex (dlv_bebedccfffaa) or
    # elided (pk_live_...ceba)
    ("ID", r"\b(?:_?[A-Za-z]{1,16}_-?[0-9A-Za-z_.]*[0-9][0-9A-Za-z_.]*"
     r"|[A-Za-z]{1,16}_(?:[0-9a-f]{8,}|(?:[A-Za-z]+_)*\.\.\.[0-9A-Za-z]+))\b", "<ID>"),
    ("VERSION", r"\bv[0-9]+(?:\.[0-9]+)*\b", "<VERSION>"),
    # a word then digits (bglio559, J16, wl0): the digits are the field, the word stays (a word of
    # hex letters only, as in ``dcbf0``, is a hex number: next pass)
    ("NUM", r"\b([A-Za-z]*[g-zG-Z][A-Za-z]*)[0-9]+\b", r"\1<NUM>"),
    # a number with a unit glued on (30s, 512ms, 4KB); hex, dotted and decimal numbers
    ("NUM", r"\b(?:[0-9]+(?:\.[0-9]+)?(?:[numµ]?s|ms|min|[hdm]|[KMGT]i?B|[kKMGT]?b|[KMGT])"
     r"|0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)+|[0-9a-fA-F]*[0-9][0-9a-fA-F]*|[0-9a-f]{8,}|[0-9A-F]{8,})\b", "<NUM>"),
]

#: The tokens :data:`MASKS` writes.
TOKENS: tuple[str, ...] = tuple(dict.fromkeys(f"<{name}>" for name, _, _ in MASKS))

# A list of one field (``<IP>,<IP>``, ``<ID> <ID> <ID>``) is one field: its length varies from line
# to line. One pass for all tokens (RE2 rewrites name at most 9 groups; e-mail and version lists
# are left as they are).
_LISTED = [t for t in TOKENS if t not in ("<EMAIL>", "<VERSION>")]
_LIST = ("|".join(rf"({t})(?:[, ]{t})+" for t in _LISTED), "".join(rf"\{i}" for i in range(1, len(_LISTED) + 1)))

_STATUS = r"\b([1-5][0-9][0-9]) ([A-Z][A-Za-z])"
_PROTECT, _RESTORE = (_STATUS, r"zzs\1zz \2"), (r"\bzzs([0-9]{3})zz\b", r"\1")
_PASSES = [(p, r) for _, p, r in MASKS] + [_LIST]
_COMPILED = [(re.compile(p), r) for p, r in _PASSES]
_PROTECT_RE, _RESTORE_RE, _SPACE_RE = (re.compile(_PROTECT[0]), re.compile(_RESTORE[0]),
                                          re.compile(r"[ \t\n\r\f\v]+"))


def mask_messages(messages: pd.Series) -> pd.Series:
    """Masked text per message: a ``str`` Series on ``messages``' index (vectorised, RE2). Missing
    messages become ``""``; runs of whitespace become one space and the ends are stripped (Drain
    splits on whitespace anyway; equal messages then mask equal for the log signatures)."""
    out = messages.fillna("").astype("str")
    out = out.str.replace(_PROTECT[0], _PROTECT[1], regex=True)
    for pattern, repl in _PASSES:
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
