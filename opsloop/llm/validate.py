"""Validation of an LLM answer before it may replace the rule-based narrative.

:func:`validate` returns ``(ok, reason)``; the answer is rejected when

1. it is not a JSON object;
2. its ``category`` is not one of the allowed categories;
3. it cites a passage id that was not retrieved for this incident;
4. it does not match the answer schema (:func:`opsloop.llm.prompts.output_schema`, checked with
   ``jsonschema``: required fields, types, lengths, ``confidence`` in [0, 1], no extra field);
5. its ``summary`` or ``root_cause`` states a number that contradicts the computed facts
   (:func:`unsupported_numbers`);
6. its ``summary`` or ``root_cause`` repeats the prompt's instructions (any run of 8 words of the
   system turn, :func:`echoes_instructions`) or loops (a run of 4 words occurring 3 times,
   :func:`is_degenerate`) — small models do both instead of narrating;
7. it cites one passage twice, or its ``summary`` or ``root_cause`` only restates the incident's title;
8. any of its texts (``summary``, ``root_cause``, each assumption and uncertainty) opens with filler
   ("The following is a summary…", "Here is…", "As an AI…"), carries markup (``<NUM>…</NUM>``,
   ``{{…}}``, headings), addresses the approval gate or names actions ("approve", "execute",
   ``act-…`` ids: :func:`steers_the_gate`), names a document that was not retrieved, or states a
   number the facts do not hold (assumptions and uncertainties are checked like the rest).

Number rule (deliberately conservative: it rejects invented quantities, not style)
-------------------------------------------------------------------------------
Numbers are read from ``summary`` and ``root_cause``. These are never checked:

* dates and times of day (``2024-05-01``, ``14:05``, ``2024-05-01T14:05Z``), years 1900–2100
  written without a unit;
* numbers inside identifiers (``ch-7a36…``, ``v2``, ``p95``, ``SmolLM2``, ``5xx``, ``order-123``);
* bare integers 0–10 with no unit, unless a count noun follows (``2 possible causes`` is not
  checked; ``2 customers``, ``3 hours``, ``5 errors`` are);
* ordinals and list positions (``step 3``, ``#2``, ``1st``).

Every other number — counts, percentages, money (``$``, ``€``, ``£``, a currency code), amounts
with ``k``/``M``/``thousand``/``million``, durations, HTTP status codes — must match a number that
appears in the reference text (the rendered facts only — never a retrieved passage, see
:class:`~opsloop.llm.prompts.Prompt`) *within rounding*: the tolerance is half a unit of the last
digit written (``12.3`` ± 0.05; ``12%`` ± 0.5), at least 1% of the fact; after a hedge word
(``about``, ``around``, ``roughly``, ``nearly``, ``over``, ``more than``, ``~`` …) trailing zeros
count as rounding too (``about 1,200`` matches 1,234.56). A percentage may also match a ratio fact
times 100 (``45%`` for ``ratio 0.45``). So an HTTP status code, a year or a time that appears in the
facts is always fine, and one that does not (``HTTP 500`` when only 403s were computed) is rejected.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jsonschema

from opsloop.llm.prompts import Prompt

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")
_NUM = re.compile(
    r"^(?P<cur>[$€£])?(?P<sign>[-+])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<suf>%|k|K|M|bn|x|ms|s|h|min|m)?$"
)
_RANGE = re.compile(r"^\d[\d,.]*-\d[\d,.]*%?$")
_STRIP = "\"'`()[]{}<>,;:!?*“”‘’«»"
_CURRENCY = {"usd", "eur", "gbp", "chf", "jpy", "cad", "aud", "dollars", "dollar", "euros", "euro", "pounds"}
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


def _words(text: str) -> list[str]:
    return text.split()


def _clean(token: str) -> str:
    t = token.strip(_STRIP)
    while t.endswith(".") and not t.endswith(".."):
        t = t[:-1]
    return t.strip(_STRIP)


class Mention:
    """One number as written in a text: its value, precision, and what kind of quantity it is."""

    def __init__(self, raw: str, value: float, unit: float, percent: bool, money: bool, checked: bool,
                 candidates_pct: bool) -> None:
        self.raw, self.value, self.unit = raw, value, unit
        self.percent, self.money, self.checked, self.pct = percent, money, checked, candidates_pct

    def __repr__(self) -> str:
        kind = "money" if self.money else "percentage" if self.percent else "number"
        return f"{self.raw!r} ({kind})"


def _parse(raw: str, prev: str, nxt: str, prev2: str) -> Mention | None:
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
    has_unit = percent or money or mult != 1.0 or suf in ("x", "ms", "s", "h", "min", "m")
    checked = True
    if pl in _ORDINAL_PREV or prev.endswith("#"):
        checked = False
    elif not has_unit and decimals == 0 and "," not in num and 1900 <= value <= 2100:
        checked = False  # a year
    elif not has_unit and decimals == 0 and 0 <= value <= 10 and nl in _VAGUE_NOUNS:
        checked = False  # "one or two causes", "2 possible explanations"
    return Mention(raw, value, unit, percent, money, checked, percent)


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
        nxt = _clean(words[i + 1]) if i + 1 < len(words) else ""
        for part in parts:
            if not part or not any(ch.isdigit() for ch in part):
                continue
            if part.lower().endswith(("st", "nd", "rd", "th")) and part[:-2].isdigit():
                continue  # ordinal
            mention = _parse(part, prev, nxt, prev2)
            if mention is not None:  # anything else with digits is an identifier (v2, p95, 5xx, SmolLM2)
                out.append(mention)
            # for "401/403" both parts share the neighbours; a currency on the left of "USD/h" is kept
    return out


def reference_numbers(reference_text: str) -> list[tuple[float, bool]]:
    """Numbers of the facts and passages: (value, written as a percentage)."""
    found: list[tuple[float, bool]] = []
    for token in re.findall(r"[$€£]?\d[\d,]*(?:\.\d+)?%?", reference_text):
        body = token.lstrip("$€£")
        pct = body.endswith("%")
        try:
            found.append((float(body.rstrip("%").replace(",", "")), pct))
        except ValueError:
            continue
    return found


def _matches(m: Mention, refs: list[tuple[float, bool]]) -> bool:
    for f, _pct in refs:
        candidates = [f]
        if m.percent and abs(f) <= 1.0:
            candidates.append(f * 100.0)
        for c in candidates:
            tol = max(m.unit / 2.0, 0.01 * abs(c), 1e-9)
            if math.isclose(m.value, c, abs_tol=tol) or abs(m.value - c) <= tol:
                return True
    return False


def unsupported_numbers(text: str, reference_text: str) -> list[Mention]:
    """The checked numbers of ``text`` that match no number of ``reference_text`` within rounding."""
    refs = reference_numbers(reference_text)
    return [m for m in mentions(text) if m.checked and not _matches(m, refs)]


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
    return None


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
    texts = [("summary", str(output.get("summary", ""))), ("root_cause", str(output.get("root_cause", "")))]
    texts += [(f"{field}[{i}]", str(t)) for field in ("assumptions", "uncertainties")
              for i, t in enumerate(output.get(field) or [])]
    for name, text in texts:
        problem = _text_problem(name, text, reference_text, documents)
        if problem:
            return False, problem
    for name in ("summary", "root_cause"):
        if title and _norm(str(output.get(name, ""))) == _norm(title):
            return False, f"{name} only restates the incident's title"
        if echoes_instructions(str(output.get(name, "")), instructions):
            return False, f"{name} repeats the prompt's instructions instead of narrating"
        if is_degenerate(str(output.get(name, ""))):
            return False, f"{name} loops (repeats the same words over and over)"
        if not is_prose(str(output.get(name, ""))):
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
