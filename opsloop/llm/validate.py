"""Validation of an LLM answer before it may replace the rule-based narrative.

:func:`validate` returns ``(ok, reason)``; the answer is rejected when

1. it is not a JSON object;
2. its ``category`` is not one of the allowed categories;
3. it cites a passage id that was not retrieved for this incident;
4. it does not match the answer schema (:func:`opsloop.llm.prompts.output_schema`, checked with
   ``jsonschema``: required fields, types, lengths, ``confidence`` in [0, 1], no extra field);
5. any of its free texts (:func:`free_texts`: every string of the answer, found by walking its objects
   and arrays, except strings whose schema is an ``enum`` or ``const`` such as ``category`` and
   citation or evidence ids) opens with filler ("The following is a summary…", "Here is…", "As an
   AI…"), carries markup (``<NUM>…</NUM>``, ``{{…}}``, headings), addresses the approval gate or names
   actions ("approve", "execute", ``act-…`` ids: :func:`steers_the_gate`), names a document that was
   not retrieved, states a number the facts do not support (:func:`unsupported_numbers`), or loops (a
   run of 4 words occurring 3 times, :func:`is_degenerate`). The reason names the field by its path
   (``summary``, ``assumptions[0]``, ``hypotheses[1].why``), so a new text field of the schema is
   checked without changing this module;
6. its ``summary`` or ``root_cause`` only restates the incident's title, repeats the prompt's
   instructions (any run of 8 words of the system turn, :func:`echoes_instructions`) or is not prose
   (:func:`is_prose`) — small models do all three instead of narrating;
7. it cites one passage twice.

Number rule (deliberately conservative: it rejects invented quantities, not style)
-------------------------------------------------------------------------------
Numbers are read from every free text. These are never checked:

* dates and times of day (``2024-05-01``, ``14:05``, ``2024-05-01T14:05Z``), years 1900–2100
  written without a unit;
* numbers inside identifiers (``ch-7a36…``, ``v2``, ``p95``, ``SmolLM2``, ``5xx``, ``order-123``);
* bare integers 0–10 with no unit, unless a count noun follows (``2 possible causes`` is not
  checked; ``2 customers``, ``3 hours``, ``5 errors`` are);
* ordinals and list positions (``step 3``, ``#2``, ``1st``).

Every other number — counts, percentages, money (``$``, ``€``, ``£``, a currency code), amounts
with ``k``/``M``/``thousand``/``million``, durations, rates, ratios, HTTP status codes — must match a
number of the reference text (the rendered facts only — never a retrieved passage, see
:class:`~opsloop.llm.prompts.Prompt`), or one derived from them as listed below, *within rounding*:
the tolerance is half a unit of the last digit written (``12.3`` ± 0.05; ``12%`` ± 0.5), at least 1%
of the fact; after a hedge word (``about``, ``around``, ``roughly``, ``nearly``, ``over``, ``more
than``, ``~`` …) trailing zeros count as rounding too (``about 1,200`` matches 1,234.56).

Units. A number of the facts carries the unit written with it: a suffix or the next word (``ms``,
``s``, ``min``/``minutes``, ``h``/``hours``, ``days``; ``%``/``percent``; a currency; ``/h``,
``/min``, ``/day``, ``USD/h``, ``per hour``; ``k``/``M`` scale it). The values of an evidence line of
a series whose metric name ends in a time unit (``latency_ms{…} rose to 1747 (expected 420…``) carry
that unit, as does the value after a key whose name ends in one (``duration_hours: 1.42``). The unit
of a number of the answer is read the same way (``1.7 s``, ``1.7 seconds``, ``85 minutes``, ``2
hours``, ``2.7/min``, ``46 USD per minute``, ``3.8x``, ``3.8 times``). The parts of dates and times
of the facts, and numbers inside their identifiers (``m-17``, ``log10``), are not numbers of the facts.

* A duration (a number with a time unit) must match, after conversion (ms ↔ s ↔ min ↔ h ↔ days), a
  duration of the facts or the difference of two of the facts' times (below); or, as written, a
  unitless fact (``150 minutes`` for a bare 150). It never matches a percentage, an amount, a rate or
  a duration of another length: ``2.5 hours`` is not supported by ``2.5%``, ``2.5 USD`` or ``2.5 min``.
* A rate (``/h``, ``per minute``, ``a day``) matches a rate of the facts after conversion (per hour
  ↔ per minute ↔ per day: ``2.7/min`` for 164.8/h), or any fact as written.
* A percentage matches any fact as written, a unitless fact up to 1 times 100 (``45%`` for
  ``ratio 0.45``), or a share or a relative change of a pair (below); a unitless number also matches
  a percentage of the facts divided by 100 (``0.27`` for 26.9%).
* A ratio (``3.8x``, ``3.8 times``) matches any fact as written or the ratio of a pair.
* Any other number matches a fact as written; a count (an integer without unit or currency) above
  :data:`SMALL_COUNT` also matches the sum or the difference of two counts of a pair, *exactly*
  (within the rounding of the count as written, without the 1% allowance: ``115 more errors`` for
  412 and 297). Small counts are never derived — with a few small counts in the facts every small
  number is a sum of two, and ``3 customers`` must stay wrong when the facts say 2.

Durations between times. Every pair of the facts' times of day and datetimes (``HH:MM``,
``YYYY-MM-DD HH:MM``, ``YYYY-MM-DDTHH:MM[:SS]``) yields its difference as a duration (``85 minutes``,
``1.42 hours`` or ``5100 s`` from 14:05 and 15:30). A time without a date takes the last date written
before it, or the next day when it is earlier than the time just before it (``from 2024-05-14 23:00
to 01:30``); a pair where one time had no date also yields the plain difference of the times of day.

Pairs. For two positive facts *a* and *b* of one kind (both unitless, both percentages, both
durations, both amounts, both rates) written on one line of the facts — the facts put an observed
value and its baseline on one line, and pairing across lines mostly invents coincidences — a
percentage may be the share ``100·a/b`` or the relative change ``100·|a−b|/b`` (``277% increase`` for
baseline 0.9 and observed 3.4, ``a 73% drop`` the other way), a ratio ``a/b`` (``3.8x``), and counts
their sum or difference (above). Codes and scores (a number after ``HTTP``, ``status``, ``returned``,
``p``, ``z``, ``confidence`` …) are never paired, and at most :data:`MAX_PAIRED` facts (the first ones)
enter the search. A number of the answer after ``HTTP``, ``status`` or ``code`` is never derived: it
must be in the facts as written. So an HTTP status code, a year or a time that appears in the facts is
always fine, and one that does not (``HTTP 500`` when only 403s were computed) is rejected, as are
``$9,999,999``, ``3,000 lost orders`` when the facts say 120, and ``45%`` when no fact and no pair of
facts gives 45%.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsonschema
import numpy as np

from opsloop.llm.prompts import Prompt

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")
_NUM = re.compile(
    r"^(?P<cur>[$€£])?(?P<sign>[-+])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<suf>%|k|K|M|bn|x|ms|s|h|min|m)?$"
)
_RANGE = re.compile(r"^\d[\d,.]*-\d[\d,.]*%?$")
_STRIP = "\"'`()[]{}<>,;:!?*“”‘’«»"
_CURRENCY = {"usd", "eur", "gbp", "chf", "jpy", "cad", "aud", "sek", "nok", "dkk", "pln", "inr", "cny", "brl",
             "mxn", "dollars", "dollar", "euros", "euro", "pounds"}
_PERCENT = {"percent", "per cent", "pct", "percentage", "%"}
_MULT = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "millions": 1e6, "bn": 1e9, "billion": 1e9}
_HEDGE = {"about", "around", "roughly", "approximately", "approx", "approx.", "nearly", "almost", "over",
          "under", "than", "some", "circa", "ca.", "~", "≈", "up", "to", "near", "close", "least", "most",
          "estimated", "est."}
_ORDINAL_PREV = {"step", "steps", "#", "phase", "section", "part", "rule", "item", "option", "no.", "number",
                 "attempt", "tier", "level", "p", "priority", "sev", "severity", "version", "v"}
#: Words after which a small number (0-10) is a manner of speaking, not a fact to check ("one or two
#: causes", "2 possible explanations"). Every other small count is checked against the facts, so
#: "3 customers" is wrong when the facts say 2, whatever the domain calls its entities.
_VAGUE_NOUNS = {
    "cause", "causes", "possible", "likely", "explanation", "explanations", "reason", "reasons", "way", "ways",
    "option", "options", "thing", "things", "hypothesis", "hypotheses", "factor", "factors", "idea", "ideas",
    "possibility", "possibilities", "scenario", "scenarios", "candidate", "candidates", "or", "and", "more",
    "main", "key", "other", "different", "separate", "distinct", "potential",
}
#: Time units written as the next word, in seconds ("1.7 s", "85 minutes", "2 hours", "3 days").
_TIME_WORDS = {"ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
               "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
               "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
               "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
               "day": 86400.0, "days": 86400.0, "week": 604800.0, "weeks": 604800.0}
#: Time units written as a suffix ("1747ms", "90s", "15min", "5m", "2h"), in seconds.
_TIME_SUFFIX = {"ms": 1e-3, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
#: "per <unit>" → factor to a rate per hour ("2.7/min" is 162/h, "66,360/day" is 2,765/h).
_PER = {"s": 3600.0, "sec": 3600.0, "second": 3600.0, "min": 60.0, "minute": 60.0, "h": 1.0, "hr": 1.0,
        "hour": 1.0, "d": 1 / 24, "day": 1 / 24}
_PER_WORD = {"hourly": 1.0, "daily": 1 / 24}
_RATIO_WORDS = {"times", "fold", "×"}
#: Words that tie a following "a day" to something else than a rate ("3 merchants in a day").
_LINK_WORDS = {"in", "within", "for", "over", "of", "after", "before", "during", "at", "from", "to", "and",
               "or", "since", "until", "by", "on", "per", "a", "an"}
#: A number after these is a code, never a derived quantity: it must be in the facts as written.
_CODE_PREV = {"http", "status", "code"}
#: A fact after these is a code or a score (``returned 403``, ``-log10 p 42.0``, ``robust z 8.1``,
#: ``confidence 0.90``), not a quantity: it is never one of a pair.
_NOT_QUANTITY_PREV = _CODE_PREV | {"returned", "p", "z", "score", "confidence", "severity", "sev", "priority",
                                   "version", "v", "tier", "level", "step"}
_PREV_WORD = re.compile(r"([A-Za-z]+)[\s=:#]*$")
#: At most this many reference numbers enter the pair search (the first ones of the facts).
MAX_PAIRED = 60
#: Sums and differences of two counts are accepted only for counts above this (see the docstring).
SMALL_COUNT = 10


def _words(text: str) -> list[str]:
    return text.split()


def _clean(token: str) -> str:
    t = token.strip(_STRIP)
    while t.endswith(".") and not t.endswith(".."):
        t = t[:-1]
    return t.strip(_STRIP)


class Mention:
    """One number as written in a text: its value, precision, and what kind of quantity it is.

    ``kind`` is ``time`` (a duration; ``factor`` converts ``value`` to seconds), ``rate`` (a count or
    amount per time; ``factor`` converts to per hour), ``percent``, ``ratio`` (``3.8x``, ``3.8
    times``) or ``plain``; ``money`` marks an amount of money (plain or a rate). ``derive`` is false
    for codes (``HTTP 500``): they must appear in the facts as written. ``count`` marks a plain integer
    that is not money (a count, for sums and differences of counts).
    """

    def __init__(self, raw: str, value: float, unit: float, percent: bool, money: bool, checked: bool,
                 candidates_pct: bool, kind: str = "plain", factor: float = 1.0, derive: bool = True,
                 count: bool = False) -> None:
        self.raw, self.value, self.unit = raw, value, unit
        self.percent, self.money, self.checked, self.pct = percent, money, checked, candidates_pct
        self.kind, self.factor, self.derive, self.count = kind, factor, derive, count

    def __repr__(self) -> str:
        kind = {"time": "duration", "rate": "rate", "percent": "percentage", "ratio": "ratio"}.get(self.kind, "number")
        if self.money:
            kind = "money" if self.kind == "plain" else f"money {kind}"
        return f"{self.raw!r} ({kind})"


def _rate_after(attached: str, after: list[str]) -> float | None:
    """Factor to per hour if the words after a number make it a rate ("/h", "USD/h", "per hour",
    "an hour", "errors per minute", "daily"), else ``None``."""
    if attached:
        return _PER.get(attached.lower())
    w = [a.lower() for a in after[:3]] + ["", "", ""]
    if "/" in w[0]:
        return _PER.get(w[0].split("/", 1)[1])
    if w[0] in _PER_WORD:
        return _PER_WORD[w[0]]
    if w[0] in ("per", "a", "an") and w[1] in _PER:
        return _PER[w[1]]
    if w[0] and not any(ch.isdigit() for ch in w[0]) and w[0] not in _LINK_WORDS and w[0] not in _TIME_WORDS:
        if "/" in w[1]:
            return _PER.get(w[1].split("/", 1)[1])
        if w[1] in _PER_WORD:
            return _PER_WORD[w[1]]
        if w[1] in ("per", "a", "an") and w[2] in _PER:
            return _PER[w[2]]
    return None


def _parse(raw: str, prev: str, nxt: str, prev2: str, attached: str = "",
           after: list[str] | None = None) -> Mention | None:
    m = _NUM.match(raw)
    if not m:
        return None
    num, suf, cur = m.group("num"), (m.group("suf") or ""), m.group("cur")
    digits = num.replace(",", "")
    value = float(digits)
    if m.group("sign") == "-":
        value = -value
    decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
    mult = 1.0
    if suf in ("k", "K", "M", "bn") or (suf == "m" and cur):
        mult = _MULT.get(suf.lower(), 1.0)
    elif nxt.lower() in ("thousand", "million", "millions", "billion"):
        mult = _MULT[nxt.lower()]
    pl, nl = prev.lower(), nxt.lower().rstrip(".")
    percent = suf == "%" or nl in _PERCENT
    money = bool(cur) or pl in _CURRENCY or nl.split("/")[0] in _CURRENCY
    hedged = pl in _HEDGE or prev2.lower() in ("more", "less", "fewer", "up") or prev in ("~", "≈")
    unit = 10.0 ** (-decimals)
    if hedged and decimals == 0 and value != 0:
        trailing = len(digits) - len(digits.rstrip("0"))
        unit = 10.0 ** min(trailing, max(len(digits) - 1, 0))
    unit *= mult
    value *= mult
    kind, factor = "plain", 1.0
    rate = _rate_after(attached, after if after is not None else [nxt])
    if percent:
        kind = "percent"
    elif not money and suf in _TIME_SUFFIX and mult == 1.0:
        kind, factor = "time", _TIME_SUFFIX[suf]
    elif not money and nl in _TIME_WORDS:
        kind, factor = "time", _TIME_WORDS[nl]
    elif rate is not None:
        kind, factor = "rate", rate
    elif suf == "x" or nl in _RATIO_WORDS:
        kind = "ratio"
    has_unit = percent or money or mult != 1.0 or kind != "plain" or suf in ("x", "ms", "s", "h", "min", "m")
    checked = True
    if pl in _ORDINAL_PREV or prev.endswith("#"):
        checked = False
    elif not has_unit and decimals == 0 and "," not in num and 1900 <= value <= 2100:
        checked = False  # a year
    elif not has_unit and decimals == 0 and 0 <= value <= 10 and nl in _VAGUE_NOUNS:
        checked = False  # "one or two causes", "2 possible explanations"
    count = kind == "plain" and not money and decimals == 0 and mult == 1.0
    return Mention(raw, value, unit, percent, money, checked, percent, kind=kind, factor=factor,
                   derive=pl not in _CODE_PREV, count=count)


def mentions(text: str) -> list[Mention]:
    """Every number written in ``text`` (see the module docstring for what is skipped)."""
    words = _words(text)
    out: list[Mention] = []
    for i, word in enumerate(words):
        token = _clean(word)
        if not token or not any(ch.isdigit() for ch in token):
            continue
        if _DATE.search(token):
            continue
        if "-" in token and not _RANGE.match(token) and not _NUM.match(token):
            continue  # identifier such as ch-7a36 or order-123
        parts = re.split(r"[/–—~]|(?<=\d)-(?=\d)", token)
        prev = _clean(words[i - 1]) if i > 0 else ""
        prev2 = _clean(words[i - 2]) if i > 1 else ""
        after = [_clean(w) for w in words[i + 1 : i + 4]]
        nxt = after[0] if after else ""
        for j, part in enumerate(parts):
            if not part or not any(ch.isdigit() for ch in part):
                continue
            if part.lower().endswith(("st", "nd", "rd", "th")) and part[:-2].isdigit():
                continue  # ordinal
            attached = parts[j + 1] if j + 1 < len(parts) and parts[j + 1].isalpha() else ""
            mention = _parse(part, prev, nxt, prev2, attached, after)
            if mention is not None:  # anything else with digits is an identifier (v2, p95, 5xx, SmolLM2)
                out.append(mention)
            # for "401/403" both parts share the neighbours; a currency on the left of "USD/h" is kept
    return out


# --- the reference: numbers of the facts, and what may be derived from them -------------------------

_WHEN = re.compile(
    r"(?<![\d:.+])(?:(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?"
    r"|(?P<h2>\d{1,2}):(?P<mi2>\d{2})(?::(?P<s2>\d{2}))?)(?![\d:])"
)
_FACT = re.compile(
    r"(?<![\w.])(?<![A-Za-z]-)(?P<cur>[$€£])?(?P<sign>-)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<suf>%|k|K|M|bn|x|ms|s|min|h)?(?!\.?\w)"
)
_FACT_TIME = re.compile(
    r"^\s*(ms|msec|milliseconds?|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?|weeks?)\b", re.IGNORECASE)
_FACT_RATE = re.compile(r"^\s*(?:[A-Za-z$€£]{1,12})?\s*(?:/|\bper\s+)\s*(second|sec|s|minute|min|hour|hr|h|day|d)\b",
                        re.IGNORECASE)
_FACT_PERCENT = re.compile(r"^\s*(percent|per cent|pct)\b", re.IGNORECASE)
_FACT_MONEY = re.compile(r"^\s*([A-Za-z]{3,7})\b")
#: An evidence line of a series whose metric name carries a time unit (``latency_ms{…} rose to 1747``).
_METRIC_UNIT = re.compile(r"^\W*[A-Za-z_:][\w:]*?_(ms|milliseconds|msec|seconds|secs|sec|s|minutes|mins|min|"
                          r"hours|h)(?:\{[^}]*\})?\s+(?:rose|fell)\s+to\b")
_METRIC_VALUE = re.compile(r"(?:\b(?:rose|fell)\s+to|\bexpected|\bbaseline)\s*$")
#: A value after a key whose name ends in a time unit (``duration_hours: 1.42``, ``"p95_ms"=1747``).
_KEY_UNIT = re.compile(r"\b[A-Za-z]\w*?_(ms|milliseconds|msec|seconds|secs|sec|s|minutes|mins|min|hours|h|days)"
                       r"[\"']?\s*[:=]?\s*$")


@dataclass(frozen=True)
class Fact:
    """One number of the facts: ``value`` as written (``k``/``M`` applied), its ``kind`` (``plain``,
    ``percent``, ``money``, ``time``, ``rate``), ``base`` (seconds for a duration, per hour for a rate,
    else ``value``), the ``line`` of the facts it is on, whether it is a ``count`` (a plain integer) and
    a ``quantity`` (not a code or a score, see :data:`_NOT_QUANTITY_PREV`: only quantities are paired)."""

    value: float
    kind: str
    base: float
    line: int
    count: bool
    quantity: bool = True


def _arr(values: Any) -> np.ndarray:
    """Sorted distinct ``values``, read-only (a :class:`Reference` is cached and shared)."""
    out = np.unique(np.asarray(list(values), dtype=float))
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Reference:
    """What an answer's numbers are checked against (built once per facts text by :func:`reference`).

    ``written``: every fact as written; ``plain``: the unitless ones; ``seconds``: durations (time facts
    and the differences of the times of day / datetimes of the facts); ``per_hour``: rates;
    ``percent``: unitless facts up to 1 as percentages; ``fractions``: percentage facts as ratios;
    ``pair_percent``, ``pair_ratio``, ``pair_sums``: shares and relative changes, ratios, and sums and
    differences of two facts (see the module docstring)."""

    facts: tuple[Fact, ...]
    written: np.ndarray = field(repr=False)
    plain: np.ndarray = field(repr=False)
    seconds: np.ndarray = field(repr=False)
    per_hour: np.ndarray = field(repr=False)
    percent: np.ndarray = field(repr=False)
    fractions: np.ndarray = field(repr=False)
    pair_percent: np.ndarray = field(repr=False)
    pair_ratio: np.ndarray = field(repr=False)
    pair_sums: np.ndarray = field(repr=False)


def _times(text: str) -> tuple[str, list[float]]:
    """``text`` with its dates and times blanked out, and the differences (seconds) of every pair of its
    times. A time of day without a date takes the date of the last date before it (the next day when it
    is earlier than the time just before it: ``from 2024-05-14 23:00 to 01:30``); a pair where one of
    the two had no date also yields the plain difference of the times of day."""
    points: list[tuple[datetime, bool]] = []
    last_date: datetime | None = None
    last_point: datetime | None = None
    chars = list(text)
    for m in _WHEN.finditer(text):
        date = m.group("date")
        h, mi, s = m.group("h") or m.group("h2"), m.group("mi") or m.group("mi2"), m.group("s") or m.group("s2")
        try:
            day = datetime.strptime(date, "%Y-%m-%d") if date else None
        except ValueError:
            continue
        if h is not None and (int(h) > 23 or int(mi) > 59 or int(s or 0) > 59):
            continue
        chars[m.start():m.end()] = " " * (m.end() - m.start())
        if day is not None:
            last_date = day
        if h is None:
            continue
        clock = timedelta(hours=int(h), minutes=int(mi), seconds=int(s or 0))
        if day is not None:
            point, dated = day + clock, True
        else:
            point, dated = (last_date or datetime(2000, 1, 1)) + clock, False
            if last_point is not None and point < last_point and point.date() == last_point.date():
                point += timedelta(days=1)
        last_point = point
        points.append((point, dated))
    points = list(dict.fromkeys(points))[:24]
    diffs: list[float] = []
    for i, (a, da) in enumerate(points):
        for b, db in points[i + 1:]:
            diffs.append(abs((b - a).total_seconds()))
            if not (da and db):
                ta, tb = a - a.replace(hour=0, minute=0, second=0), b - b.replace(hour=0, minute=0, second=0)
                diffs.append(abs((tb - ta).total_seconds()))
    return "".join(chars), [d for d in diffs if d > 0]


def _facts(text: str) -> list[Fact]:
    out: list[Fact] = []
    for n, line in enumerate(text.splitlines()):
        metric = _METRIC_UNIT.match(line)
        for m in _FACT.finditer(line):
            num, suf, rest = m.group("num"), m.group("suf") or "", line[m.end():]
            value = float(num.replace(",", "")) * (-1.0 if m.group("sign") else 1.0)
            if suf in ("k", "K", "M", "bn"):
                value *= _MULT[suf.lower()]
            kind, base = "plain", value
            t, r = _FACT_TIME.match(rest), _FACT_RATE.match(rest)
            word = _FACT_MONEY.match(rest)
            if suf == "%" or _FACT_PERCENT.match(rest):
                kind = "percent"
            elif suf in _TIME_SUFFIX:
                kind, base = "time", value * _TIME_SUFFIX[suf]
            elif t:
                kind, base = "time", value * _TIME_WORDS[t.group(1).lower()]
            elif r:
                kind, base = "rate", value * _PER[r.group(1).lower()]
            elif key := _KEY_UNIT.search(line[: m.start()]):
                kind, base = "time", value * _TIME_WORDS[key.group(1)]
            elif metric and _METRIC_VALUE.search(line[: m.start()]):
                kind, base = "time", value * _TIME_WORDS[metric.group(1)]
            elif m.group("cur") or (word and word.group(1).lower() in _CURRENCY):
                kind = "money"
            count = kind == "plain" and "." not in num and suf == ""
            prev = _PREV_WORD.search(line[: m.start()])
            quantity = not (prev and prev.group(1).lower() in _NOT_QUANTITY_PREV)
            out.append(Fact(value, kind, base, n, count, quantity))
    return out


def _pairs(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares and relative changes (percent), ratios, and sums/differences of the counts, over every
    ordered pair of distinct ``values``."""
    a, b = values[:, None], values[None, :]
    off = ~np.eye(len(values), dtype=bool)
    share = (100.0 * a / b)[off]
    change = (100.0 * np.abs(a - b) / b)[off]
    ratio = (a / b)[off]
    c = values[counts]
    ca, cb = c[:, None], c[None, :]
    upper = np.triu(np.ones((len(c), len(c)), dtype=bool), 1)
    sums = np.concatenate([(ca + cb)[upper], np.abs(ca - cb)[upper]])
    return np.concatenate([share, change]), ratio, sums


@functools.lru_cache(maxsize=64)
def reference(reference_text: str) -> Reference:
    """The :class:`Reference` of a facts text: its numbers with their units, and what may be derived
    from them (cached: one facts text serves every text of an answer)."""
    blanked, durations = _times(reference_text)
    facts = _facts(blanked)
    by_kind: dict[str, list[float]] = {}
    for f in facts:
        by_kind.setdefault(f.kind, []).append(f.base)
    paired = list(dict.fromkeys((f.line, f.kind, f.base, f.count) for f in facts
                            if f.base > 0 and f.quantity))[:MAX_PAIRED]
    groups: dict[tuple[int, str], list[tuple[float, bool]]] = {}
    for line, kind, base, count in paired:
        groups.setdefault((line, kind), []).append((base, count))
    pct, ratio, sums = [np.empty(0)], [np.empty(0)], [np.empty(0)]
    for (_line, kind), items in groups.items():
        if len(items) < 2:
            continue
        p, r, s = _pairs(np.array([v for v, _ in items]), np.array([c and kind == "plain" for _, c in items]))
        pct.append(p)
        ratio.append(r)
        sums.append(s)
    return Reference(
        facts=tuple(facts),
        written=_arr(f.value for f in facts),
        plain=_arr(by_kind.get("plain", [])),
        seconds=_arr(by_kind.get("time", []) + durations),
        per_hour=_arr(by_kind.get("rate", [])),
        percent=_arr(100.0 * v for v in by_kind.get("plain", []) if abs(v) <= 1.0),
        fractions=_arr(v / 100.0 for v in by_kind.get("percent", [])),
        pair_percent=_arr(np.concatenate(pct)),
        pair_ratio=_arr(np.concatenate(ratio)),
        pair_sums=_arr(np.concatenate(sums)),
    )


def reference_numbers(reference_text: str) -> list[tuple[float, bool]]:
    """Numbers of the facts as written: (value, written as a percentage)."""
    return [(f.value, f.kind == "percent") for f in reference(reference_text).facts]


def _near(value: float, half: float, candidates: np.ndarray, relative: float = 0.01) -> bool:
    """Whether some candidate is within rounding of ``value``: ``half`` (half a unit of the last digit
    written), at least ``relative`` of the candidate."""
    if candidates.size == 0:
        return False
    tol = np.maximum(max(half, 1e-9), relative * np.abs(candidates))
    return bool(np.any(np.abs(candidates - value) <= tol + 1e-9))


def _matches(m: Mention, ref: Reference) -> bool:
    half = m.unit / 2.0
    if m.kind == "time":
        return _near(m.value * m.factor, half * m.factor, ref.seconds) or _near(m.value, half, ref.plain)
    if _near(m.value, half, ref.written):
        return True
    if m.kind == "rate":
        return _near(m.value * m.factor, half * m.factor, ref.per_hour)
    if m.kind == "percent":
        return _near(m.value, half, ref.percent) or (m.derive and _near(abs(m.value), half, ref.pair_percent))
    if m.kind == "ratio":
        return m.derive and _near(m.value, half, ref.pair_ratio)
    if _near(m.value, half, ref.fractions):
        return True
    return (m.derive and m.count and abs(m.value) > SMALL_COUNT
            and _near(abs(m.value), half, ref.pair_sums, relative=0.0))


def unsupported_numbers(text: str, reference_text: str) -> list[Mention]:
    """The checked numbers of ``text`` that match no number of ``reference_text``, and no number
    derived from them, within rounding (see the module docstring)."""
    ref = reference(reference_text)
    return [m for m in mentions(text) if m.checked and not _matches(m, ref)]


_WORD = re.compile(r"[a-z0-9_]+")


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echoes_instructions(text: str, instructions: str, n: int = 8) -> bool:
    """Whether ``text`` contains a run of ``n`` consecutive words of ``instructions``."""
    return bool(instructions) and bool(_shingles(text, n) & _shingles(instructions, n))


def is_degenerate(text: str, n: int = 4, times: int = 3) -> bool:
    """Whether some run of ``n`` words occurs ``times`` times or more in ``text`` (a generation loop)."""
    words = _WORD.findall(text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        key = tuple(words[i : i + n])
        counts[key] = counts.get(key, 0) + 1
        if counts[key] >= times:
            return True
    return False


_OPENER = re.compile(r"^\s*(the following (is|are)|here (is|are)|as an ai|as a language model|sure[,!]|"
                     r"certainly[,!]|below (is|are)|this (is|json) (a|the) (summary|assessment))", re.IGNORECASE)
_MARKUP = re.compile(r"</?[A-Za-z][\w-]*>|\{\{|\}\}|<%|%>|^\s*#{1,6}\s|```", re.MULTILINE)
_GATE = re.compile(r"\bact-[0-9a-f]{6,}\b|\bapprov(e|es|ed|er|ers|al|als|ing)\b|\bexecut(e|es|ed|ing)\b|"
                   r"\bwithout (review|approval)\b|\b(approvers?|on-call) should\b", re.IGNORECASE)
_DOCUMENT = re.compile(r"\b[\w./-]+\.(?:md|markdown|txt|pdf)\b", re.IGNORECASE)


def steers_the_gate(text: str) -> bool:
    """Whether ``text`` addresses the approval gate or names actions (a narrative describes the
    incident; what to do is the catalog's and the approvers' business, and injected text asks for it)."""
    return bool(_GATE.search(text))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _text_problem(name: str, text: str, reference_text: str, documents: tuple[str, ...] | list[str]) -> str | None:
    if _OPENER.search(text):
        return f"{name} opens with filler instead of the assessment"
    if _MARKUP.search(text):
        return f"{name} carries markup"
    if steers_the_gate(text):
        return f"{name} addresses the approval gate or names actions"
    known = {d.lower() for d in documents} | {d.rsplit("/", 1)[-1].lower() for d in documents}
    named = [d for d in _DOCUMENT.findall(text) if d.lower() not in known]
    if named:
        return f"{name} names a document that was not retrieved: {named[0][:60]!r}"
    bad = unsupported_numbers(text, reference_text)
    if bad:
        return f"{name} states number(s) not in the computed facts: {', '.join(repr(b) for b in bad[:3])}"
    if is_degenerate(text):
        return f"{name} loops (repeats the same words over and over)"
    return None


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any] | None:
    """``schema`` as a dict, following a local ``$ref`` (``#/$defs/...``); ``None`` if it is not one."""
    for _ in range(8):
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if not (isinstance(ref, str) and ref.startswith("#/")):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        schema = target
    return None


def _is_closed(schema: dict[str, Any] | None, root: dict[str, Any]) -> bool:
    """Whether a string under ``schema`` is one of a fixed set (``enum``/``const``, or alternatives that
    all are): an id or a category, not free text."""
    if schema is None:
        return False
    if "enum" in schema or "const" in schema:
        return True
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    return bool(alternatives) and all(_is_closed(_resolve(a, root), root) for a in alternatives)


def free_texts(output: Any, schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every free-text string of ``output`` with its path (``summary``, ``assumptions[0]``,
    ``hypotheses[1].why``), walking objects and arrays recursively in the schema's property order;
    strings whose schema is an ``enum`` or ``const`` (category, citation and evidence ids) are left out.
    A string the schema does not describe counts as free text."""

    def walk(value: Any, node: Any, path: str) -> Iterator[tuple[str, str]]:
        sub = _resolve(node, schema)
        if isinstance(value, str):
            if not _is_closed(sub, schema):
                yield path or "answer", value
        elif isinstance(value, dict):
            props = (sub or {}).get("properties") or {}
            extra = (sub or {}).get("additionalProperties")
            for key in [k for k in props if k in value] + [k for k in value if k not in props]:
                yield from walk(value[key], props.get(key, extra), f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            prefix = (sub or {}).get("prefixItems") or []
            items = (sub or {}).get("items")
            for i, item in enumerate(value):
                yield from walk(item, prefix[i] if i < len(prefix) else items, f"{path}[{i}]")

    yield from walk(output, schema, "")


def validate_output(output: Any, *, schema: dict[str, Any], passage_ids: tuple[str, ...] | list[str],
                    categories: tuple[str, ...] | list[str], reference_text: str,
                    instructions: str = "", title: str = "",
                    documents: tuple[str, ...] | list[str] = ()) -> tuple[bool, str]:
    """``(True, "ok")`` if ``output`` may be used, else ``(False, reason)`` (see the module docstring)."""
    if not isinstance(output, dict):
        return False, f"answer is not a JSON object ({type(output).__name__})"
    category = output.get("category")
    if "category" in output and category not in categories:
        return False, f"category {str(category)[:60]!r} is not in the allowed set"
    cited = output.get("citations")
    if isinstance(cited, list):
        unknown = [c for c in cited if c not in passage_ids]
        if unknown:
            return False, f"cites passage(s) that were not retrieved: {', '.join(map(str, unknown[:3]))[:120]}"
        if len(set(map(str, cited))) < len(cited):
            return False, "cites the same passage twice"
    try:
        jsonschema.Draft202012Validator(schema).validate(output)
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "answer"
        return False, f"schema: {where}: {exc.message[:160]}"
    for name, text in free_texts(output, schema):
        problem = _text_problem(name, text, reference_text, documents)
        if problem:
            return False, problem
    for name in ("summary", "root_cause"):
        text = str(output.get(name, ""))
        if title and _norm(text) == _norm(title):
            return False, f"{name} only restates the incident's title"
        if echoes_instructions(text, instructions):
            return False, f"{name} repeats the prompt's instructions instead of narrating"
        if not is_prose(text):
            return False, f"{name} is not prose (fewer than {MIN_WORDS} words, or template markup)"
    return True, "ok"


MIN_WORDS = 6


def is_prose(text: str) -> bool:
    """At least :data:`MIN_WORDS` alphabetic words and no template markup (``{{``, ``}}``, ``<%``)."""
    if any(mark in text for mark in ("{{", "}}", "<%", "%>")):
        return False
    return len(re.findall(r"[A-Za-z]{2,}", text)) >= MIN_WORDS


def validate(output: Any, prompt: Prompt) -> tuple[bool, str]:
    """Validate ``output`` against what ``prompt`` allowed (schema, passage ids, categories, facts)."""
    return validate_output(output, schema=prompt.schema, passage_ids=prompt.passage_ids,
                           categories=prompt.categories, reference_text=prompt.reference_text,
                           instructions=prompt.system, title=prompt.title, documents=prompt.documents)
