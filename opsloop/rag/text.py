"""Lexical analysis for BM25: identifier-aware tokenizer, English stopwords, Porter stemmer.

``tokenize("KubePodCrashLooping: pods restarting")`` →
``["kube", "pod", "crash", "loop", "kubepodcrashloop", "pod", "restart"]``: identifiers written in
CamelCase, ``snake_case``, ``kebab-case`` or ``dotted.names`` yield their parts *and* the whole
(so both "crash looping" and the alert name match); English stopwords (NLTK's list, less the words
that carry meaning in operations: *down*, *up*, *out*, *off*, *not*, *no*, *over*, *under*, ...)
are dropped; every other word is stemmed with Porter's algorithm (Porter 1980, "An algorithm for
suffix stripping"), implemented here so that no native stemmer package is needed. Numbers
(``403``, ``p95``) are kept as they are.

Bump :data:`TOKENIZER_VERSION` whenever the output changes: persisted BM25 indexes record it and
are rebuilt when it differs.
"""

from __future__ import annotations

import re
from functools import lru_cache

TOKENIZER_VERSION = "porter-ident-1"

_KEEP = {"down", "up", "out", "off", "not", "no", "over", "under", "above", "below", "against", "again",
         "before", "after", "all", "any", "few", "more", "most", "same", "too", "very", "only", "once"}
# NLTK English stopwords (also bm25s' STOPWORDS_EN_PLUS), less the words in _KEEP.
STOPWORDS = frozenset("""
a about above after again against ain all am an and any are aren aren't as at be because been before being
below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don don't down
during each few for from further had hadn hadn't has hasn hasn't have haven haven't having he her here hers
herself him himself his how i if in into is isn isn't it it's its itself just ll m ma me mightn mightn't more
most mustn mustn't my myself needn needn't no nor not now o of off on once only or other our ours ourselves
out over own re s same shan shan't she she's should should've shouldn shouldn't so some such t than that
that'll the their theirs them themselves then there these they this those through to too under until up ve
very was wasn wasn't we were weren weren't what when where which while who whom why will with won won't
wouldn wouldn't y you you'd you'll you're you've your yours yourself yourselves e g eg ie etc
""".split()) - _KEEP  # noqa: SIM905

_WORD = re.compile(r"[A-Za-z0-9]+(?:[._\-'][A-Za-z0-9]+)*")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+[a-z]*")


def _parts(word: str) -> list[str]:
    """``"etcdGRPCRequestsSlow"`` → ``["etcd", "GRPC", "Requests", "Slow"]``; ``"request_latency_ms"`` →
    ``["request", "latency", "ms"]``."""
    out: list[str] = []
    for piece in re.split(r"[._\-']", word):
        if piece.isdigit() or re.fullmatch(r"[a-z]+[0-9]+|[A-Z]+[0-9]+", piece):
            out.append(piece)
        else:
            out.extend(_PART.findall(piece) or [piece])
    return out


def tokenize(text: str) -> list[str]:
    """Lower-case, stemmed, stopword-free tokens of ``text`` (see the module docstring)."""
    tokens: list[str] = []
    for word in _WORD.findall(text):
        if "'" in word and word.lower() in STOPWORDS:
            continue
        parts = [p.lower() for p in _parts(word)]
        for p in parts:
            if p not in STOPWORDS and (len(p) > 1 or p.isdigit()):
                tokens.append(stem(p))
        if len(parts) > 1:  # the identifier as a whole, e.g. the alert name
            tokens.append(stem("".join(p for p in parts if p)))
    return tokens


def tokenize_many(texts: list[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


# -- Porter (1980) stemmer ---------------------------------------------------------------------------

def _is_cons(w: str, i: int) -> bool:
    ch = w[i]
    if ch in "aeiou":
        return False
    if ch == "y":
        return i == 0 or not _is_cons(w, i - 1)
    return True


def _measure(stem_: str) -> int:
    """m in [C](VC)^m[V]."""
    m, prev_vowel = 0, False
    for i in range(len(stem_)):
        cons = _is_cons(stem_, i)
        if cons and prev_vowel:
            m += 1
        prev_vowel = not cons
    return m


def _has_vowel(stem_: str) -> bool:
    return any(not _is_cons(stem_, i) for i in range(len(stem_)))


def _double_cons(w: str) -> bool:
    return len(w) >= 2 and w[-1] == w[-2] and _is_cons(w, len(w) - 1)


def _cvc(w: str) -> bool:
    return (len(w) >= 3 and _is_cons(w, len(w) - 3) and not _is_cons(w, len(w) - 2)
            and _is_cons(w, len(w) - 1) and w[-1] not in "wxy")


_STEP2 = (("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
          ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"),
          ("ization", "ize"), ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"),
          ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"),
          ("logi", "log"))
_STEP3 = (("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
          ("ness", ""))
_STEP4 = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism",
          "ate", "iti", "ous", "ive", "ize")


def _replace(w: str, rules, min_m: int) -> str:
    for suffix, repl in sorted(rules, key=lambda r: -len(r[0])):
        if w.endswith(suffix):
            base = w[: len(w) - len(suffix)]
            return base + repl if _measure(base) > min_m else w
    return w


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Porter stem of a lower-case ``word``; words of up to two letters or with digits are kept."""
    w = word
    if len(w) <= 2 or not w.isalpha():
        return w
    # step 1a
    if w.endswith(("sses", "ies")):
        w = w[:-2]
    elif w.endswith("ss"):
        pass
    elif w.endswith("s"):
        w = w[:-1]
    # step 1b
    flag = False
    if w.endswith("eed"):
        if _measure(w[:-3]) > 0:
            w = w[:-1]
    elif w.endswith("ed") and _has_vowel(w[:-2]):
        w, flag = w[:-2], True
    elif w.endswith("ing") and _has_vowel(w[:-3]):
        w, flag = w[:-3], True
    if flag:
        if w.endswith(("at", "bl", "iz")):
            w += "e"
        elif _double_cons(w) and w[-1] not in "lsz":
            w = w[:-1]
        elif _measure(w) == 1 and _cvc(w):
            w += "e"
    # step 1c
    if w.endswith("y") and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    # steps 2 and 3
    w = _replace(w, _STEP2, 0)
    w = _replace(w, _STEP3, 0)
    # step 4
    for suffix in sorted(_STEP4, key=len, reverse=True):
        if w.endswith(suffix):
            base = w[: len(w) - len(suffix)]
            if _measure(base) > 1 and (suffix != "ion" or base.endswith(("s", "t"))):
                w = base
            break
    # step 5a
    if w.endswith("e"):
        base = w[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            w = base
    # step 5b
    if _measure(w) > 1 and _double_cons(w) and w.endswith("l"):
        w = w[:-1]
    return w
