"""Strip e-mail boilerplate from ticket texts: quoted replies, signatures, greetings and sign-offs.

Tickets that arrive by e-mail carry text that says nothing about the problem -- "Hello team,",
"Kind regards, Anna", "Sent from my iPhone", the quoted previous message under "-----Original
Message-----" or "On Tue, Bob wrote:". Left in, it pulls unrelated tickets together in embedding
space (two tickets that both quote the same auto-reply look alike) and puts "regards" or "thanks"
among a cluster's top terms. The rules follow the usual reply/signature heuristics of mail clients
and of talon (Mailgun's quotation and signature extractor), kept to regular expressions:

1. everything from a reply header on is dropped: a ``-----Original Message-----`` line, an
   ``On <date>, <name> wrote:`` line, an Outlook ``From: ... Sent:/Date:`` header pair, or a line of
   underscores;
2. quoted lines (starting with ``>``) are dropped;
3. everything from a signature delimiter on is dropped: a line ``--`` (optionally followed by a name),
   or a line that is only a sign-off ("Thanks,", "Best regards, Anna", "Cheers, Bob");
4. "Sent from my <device>" is dropped;
5. greeting and courtesy phrases anywhere ("hi", "hello team", "dear", "good morning", "thank you",
   "thanks", "kind regards") are removed as whole words, which also covers corpora that were
   lower-cased and flattened to one line by their publisher ("best" and "br" only count as a
   sign-off on a line of their own);
6. whitespace is collapsed.

Everything is a vectorised pandas string operation over the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: courtesy phrases, removed anywhere as whole words
_COURTESY = (r"(?:(?:best|kind|warm|many|with)\s+(?:regards|wishes|thanks)|regards|thanks(?:\s+again)?|thank\s+you"
             r"|cheers|sincerely)")
#: sign-offs that only count on a line of their own ("best" and "br" are content words inside a sentence)
_SIGNOFF = r"(?:" + _COURTESY + r"|best|br|yours(?:\s+(?:truly|sincerely))?)"
# 1: a reply header and everything after it
_REPLY_TAIL = (r"(?ims)^[ \t]*(?:-{2,}\s*(?:original|forwarded)\s+message\s*-{2,}|on\b[^\n]{0,200}\bwrote:"
               r"|from:[^\n]*\n[ \t]*(?:sent|date|to):|_{8,}).*\Z")
# 2: quoted lines
_QUOTED = r"(?m)^[ \t]*>[^\n]*(?:\n|\Z)"
# 3: a signature delimiter line or a sign-off-only line (with at most a short name after it), and the rest
_SIGNATURE = (r"(?ims)^[ \t]*(?:--[ \t]*(?:[^\n]{0,80})?|" + _SIGNOFF
              + r"[ \t]*[,!.]?(?:[ \t]+[^\s,]+(?:[ \t]+[^\s,]+){0,2}[ \t]*[,.]?)?)[ \t]*(?:\n.*)?\Z")
# 4: mobile footers
_SENT_FROM = r"(?i)\bsent\s+from\s+my\b[^\n]*"
# 5: greetings and courtesy phrases as whole words
_PHRASES = (r"(?i)\b(?:hello|hi|hey|dear|greetings|good\s+(?:morning|afternoon|evening|day)|" + _COURTESY
            + r")\b(?:\s+(?:team|all|support|there|everyone))?[ \t]*[,!:]?")


def strip_boilerplate(texts: Sequence[str] | pd.Series) -> list[str]:
    """``texts`` with quoted replies, signatures, greetings and sign-offs removed (see the module).

    Args:
        texts: ``n`` ticket texts (``None``/NaN read as empty).

    Returns:
        ``n`` strings, whitespace collapsed; a text that is nothing but boilerplate becomes ``""``
        (callers that need a non-empty text fall back to the original).
    """
    s = pd.Series(list(texts), dtype=object).fillna("").astype(str).str.replace("\r\n", "\n", regex=False)
    if s.empty:
        return []
    s = s.str.replace(_REPLY_TAIL, "", regex=True)
    s = s.str.replace(_QUOTED, "", regex=True)
    s = s.str.replace(_SENT_FROM, "", regex=True)
    # a signature can only start after some content: look for it from the second line on
    head = s.str.extract(r"(?s)\A([^\n]*\n?)(.*)\Z")
    s = head[0].fillna("") + head[1].fillna("").str.replace(_SIGNATURE, "", regex=True)
    s = s.str.replace(_PHRASES, " ", regex=True)
    return s.str.replace(r"\s+", " ", regex=True).str.strip(" \t\n,.;:!-").tolist()
