"""PII and secret redaction for free text that is about to be put in an LLM prompt.

Ticket subjects and bodies, log lines and log templates go through :func:`redact` before any prompt
is built, so that no personal data and no credential reaches the model. Each finding is replaced by
a typed placeholder; no other placeholder is ever produced:

``<TOKEN>``
    secrets: the credential of an ``Authorization:``/``Proxy-Authorization:`` header and of
    ``Bearer xxx``; the value of ``api_key=``, ``password=``, ``token=``, ``secret=`` (also
    ``passwd``, ``pwd``, ``access_key``, ``client_secret``, ``credentials``, ``session_id`` and any
    key ending in one of these, such as ``DB_PASSWORD`` or ``x-auth-token``; ``=`` or ``:``, quoted or
    not, JSON style included); JWTs (``eyJ….….…``); AWS access key ids (``AKIA``/``ASIA`` + 16);
    prefixed API keys (``sk-…``, ``sk_live_…``, ``ghp_…``/``gho_…``/``github_pat_…``, ``xoxb-…``/
    ``xoxp-…``, ``glpat-…``, ``AIza…``); PEM private-key blocks; ``user:password@`` in URLs; hex runs
    of 32+ characters and base64-ish runs of 32+ characters (the long-run rule below).
    The key, header name and auth scheme stay (``password=<TOKEN>``, ``Authorization: Bearer <TOKEN>``).
``<EMAIL>``
    e-mail addresses (the local part included, so a name inside an address goes with it).
``<IBAN>``
    IBANs: country code, two check digits, 11–30 letters/digits, compact or in groups of four,
    accepted when the ISO 13616 mod-97 check holds.
``<CARD>``
    payment card numbers: 13–19 digits, compact or in groups of at least three digits split by one
    kind of separator (a space or a dash), that pass the Luhn check (ISO/IEC 7812-1, annex B).
``<IP>``
    IPv4 addresses (four octets 0–255) and IPv6 addresses (validated with :mod:`ipaddress`).
``<PHONE>``
    ``+`` international numbers (7–15 digits, ``+44 20 7946 0958``, ``+1 (555) 123-4567``,
    ``+4915112345678``); North American ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``,
    ``1-800-555-0199``; national trunk forms ``020 7946 0958``, ``01 23 45 67 89``; and any 7–15
    digit number after a cue (``phone:``, ``tel``, ``mobile``, ``call me at`` …).
``<NAME>``
    person names found by context, never by dictionary: one to three Capitalised words (``O'Brien``,
    ``McDonald``, ``Mary-Jane``, initials ``J.`` and accented Latin letters included) after a greeting
    (``Hi John,``, ``Dear Ms. Smith``), a sign-off (``Regards, Jane Doe``, ``Thanks,\\nBob Miller`` — on a
    line of its own), ``my name is``, ``contact``, ``reported by``, ``on behalf of`` …, a field
    (``Name:``, ``From:``, ``To:``, ``Cc:``, ``Customer:``, ``Reporter:`` …) or an honorific (``Mr``,
    ``Mrs``, ``Ms``, ``Mx``, ``Dr``, ``Prof``; the honorific is replaced together with the name).
    The words are cut at the first word of a small stop list (``team``, ``all``, ``there``,
    ``everyone``, ``support``, ``again``, ``the``, ``in``, ``advance``, ``customer`` …), so ``Hi team,``,
    ``Dear Support Team``, ``Thanks in advance`` and ``Thanks, the service`` stay as written.

Deliberately kept (so that the facts the model reasons about survive): timestamps and dates
(``2024-05-01 14:05:03``, ``2024-05-01T14:05:03Z``), times, HTTP methods, paths and status codes,
durations (``1747ms``), hostnames and pod names (``api-7d9f8c6b5-x2k4q``), UUIDs, order and
other ids (``order-123``), MAC addresses, decimals, ordinary numbers, long digit runs that fail the
Luhn check, CamelCase identifiers, and log-template wildcards (``<*>``).

The long-run rule for ``<TOKEN>``: a run of 32+ characters of ``[A-Za-z0-9+/_-]`` (``=`` padding
allowed) is a secret when it is all hex and has both a letter and a digit (hashes, trace ids), when
a stretch of 16+ characters without ``-``, ``_`` or ``/`` in it mixes letters and digits, or when it
is plain base64 (no ``-``/``_``), has a digit and changes character class (``aB``, ``a1``, ``1a``)
at least six times — so hyphenated names and word-like URL paths (``/api/v1/customers/12345/orders``)
stay.

Placeholders are never matched again, so ``redact(redact(text)) == redact(text)``. Every pattern is
compiled once at import; none has an ambiguous nested repetition, and the ones that could scan far
are anchored by a look-behind to the start of a run, so the cost stays linear in the input (about
0.1 s for 100 kB of ticket text; no input backtracks catastrophically).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

EMAIL, PHONE, CARD, IBAN, IP, TOKEN, NAME = "EMAIL", "PHONE", "CARD", "IBAN", "IP", "TOKEN", "NAME"
#: The placeholder types, in the order :func:`redact_counts` reports them.
TYPES: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, IP, TOKEN, NAME)

_PH = {kind: f"<{kind}>" for kind in TYPES}
_PLACEHOLDER = r"<(?:EMAIL|PHONE|CARD|IBAN|IP|TOKEN|NAME)>"
_NOT_PLACEHOLDER = rf"(?!{_PLACEHOLDER})"

# --- secrets -------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    # the body never holds five dashes, so each BEGIN scans only up to the next "-----"
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----[^-]*(?:-(?!----)[^-]*)*"
    r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----"
)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/?#@:<>]{1,256}:[^\s/?#@<>]{1,256}(?=@)")
_AUTH_HEADER = re.compile(
    r"(?P<keep>\b(?i:(?:proxy-)?authorization)[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?>(?:(?i:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|sso-key|aws4-hmac-sha256)[ \t]+)?))"
    + _NOT_PLACEHOLDER
    + r"(?P<secret>[^\s\"',;<>]+)"
)
_BEARER = re.compile(
    r"(?P<keep>\b(?i:bearer)[ \t]+)" + _NOT_PLACEHOLDER + r"(?P<secret>[A-Za-z0-9\-._~+/]+=*)"
)
_KEY_VALUE = re.compile(
    r"(?P<keep>(?<![\w-])(?i:[a-z0-9_-]{0,30}?"
    r"(?:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|passw(?:or)?d|pwd|token|credentials?"
    r"|session[_-]?id))"
    r"[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?!" + _PLACEHOLDER + r"(?P=q))(?P<quoted>[^\"'\n]{1,512})(?P=q)"
    r"|" + _NOT_PLACEHOLDER + r"(?P<bare>[^\s\"'&,;<>]+))"
)
_PREFIXED_KEY = re.compile(
    r"(?<![\w-])(?:"
    r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"  # JWT header.payload.signature
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"  # AWS access key id
    r"|sk-[A-Za-z0-9_-]{16,}"  # OpenAI-style
    r"|[spr]k_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r")(?![\w-])"
)
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"[0-9a-fA-F]+")
_STRETCH = re.compile(r"[A-Za-z0-9+]{16,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_FLIP = re.compile(r"(?=[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z])")  # overlapping: aB, a1, 1a
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")

# --- contact data --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,10}[A-Za-z]{2,63}(?![\w-])"
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")
_DIGIT_RUN = re.compile(r"(?<![\w+-])(?<!\d\.)\d+(?:[ -]\d+)*(?!\w|\.\d)")
_DIGITS = re.compile(r"\d+")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\w)"
)
_PHONE = re.compile(
    r"(?<![\w+])\+\d{7,15}(?![\w])"  # E.164, compact
    r"|(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){0,5}(?!\w|[.-]\d)"  # +44 20 …
    r"|(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w|[.-]\d)"  # (555) 123-4567
    r"|(?<![\w+.-])0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}(?!\w|[.-]\d)"  # 020 7946 0958
    r"|(?<![\w+.-])0\d(?:[ .]\d{2}){4}(?!\w|[.-]\d)"  # 01 23 45 67 89
)
_PHONE_CUE = re.compile(
    r"(?P<keep>\b(?i:phone|telephone|tel|mobile|mob|cell|cellphone|fax|whatsapp|sms"
    r"|(?:call|reach|text) me(?: at| on)?)\b(?i:[ \t]*(?:number|no\.?|nr\.?|#))?[ \t]*[:.]?[ \t]*)"
    r"(?P<number>\+?\(?\d[\d \t().-]{5,22}\d)(?!\w)"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")

# --- names ---------------------------------------------------------------------------------------

_UP, _LO = "A-ZÀ-ÖØ-ÞĀ-Ž", "a-zß-öø-ÿĀ-ž"
_WORD = rf"(?:(?:[{_UP}]')?[{_UP}][{_LO}]+(?:[{_UP}][{_LO}]+)?(?:-[{_UP}][{_LO}]+)?|[{_UP}]\.)"
_NAME_WORDS = rf"(?P<name>{_WORD}(?: {_WORD}){{0,2}})(?!\w)"
_HONORIFIC = r"(?:Mr|Mrs|Ms|Mx|Dr|Prof)\b\.?[ \t]+"
_GREETING = r"(?i:hi|hello|hey|hiya|dear|greetings|good (?:morning|afternoon|evening|day))"
_SIGNOFF = (
    r"(?i:(?:best |kind |warm |warmest |many )?regards|best wishes|all the best|many thanks|cheers"
    r"|thanks(?: again| a lot| so much| in advance)?|thank you(?: again| so much| in advance)?"
    r"|sincerely|yours (?:sincerely|truly|faithfully)|cordially|respectfully|rgds)"
)
_SIGNOFF_STRICT = r"(?i:best|yours|ta)"  # a name follows only after a comma or a line break
_FIELD = (
    r"(?i:from|to|cc|bcc|attn|attention|name|full name|first name|last name|surname|customer name"
    r"|contact name|contact person|contact|customer|client|reporter|reported by|requester|requested by"
    r"|submitted by|assignee|assigned to|sender|recipient|signed|signed by|user|username|employee|agent)"
)
_FREE_CUE = (
    r"(?i:my name is|my name's|contact|contacted|please contact|reach out to|reported by|submitted by"
    r"|requested by|raised by|on behalf of|spoke to|spoke with|talked to|speak to|speak with)"
)
_NEWLINE_SEP = r"[ \t]*[,.!]?[ \t]*\r?\n(?:[ \t]*\r?\n)?[ \t]*"
_NAME_CUE = re.compile(
    r"\b(?=[A-Za-z])(?P<cue>"
    rf"{_GREETING}\b[ \t]*,?[ \t]*"
    rf"|{_SIGNOFF}\b(?:(?P<nl1>{_NEWLINE_SEP})|[ \t]*,[ \t]*|[ \t]+)"
    rf"|{_SIGNOFF_STRICT}\b(?:(?P<nl2>{_NEWLINE_SEP})|[ \t]*,[ \t]*)"
    rf"|{_FIELD}[ \t]*:[ \t]*"
    rf"|{_FREE_CUE}(?:[ \t]*:[ \t]*|[ \t]+)"
    rf")(?P<hon>{_HONORIFIC})?{_NAME_WORDS}"
)
_NAME_HONORIFIC = re.compile(rf"\b(?P<hon>{_HONORIFIC}){_NAME_WORDS}")
# after a sign-off on its own line, the name must be a signature line: nothing but the name, or the
# name then a comma, a dash, a bracket or a pipe (``Bob Miller, SRE``; ``Jane Doe <<EMAIL>>``)
_SIGNATURE_END = re.compile(r"[ \t]*(?:$|\r?\n|[,|(<\[-])")
_STOP_TEXT = """
    team teams all there everyone everybody anyone someone support folks guys gang both again the a an
    in advance for and or of so much very you your yours we our us me my it its this that these those to
    on at is are was be please kindly sir madam madame customer customers client clients valued colleague
    colleagues friends people world admin admins administrator ops devops sre sres oncall on-call
    engineering engineers engineer dev devs developers developer helpdesk service services desk staff
    management manager managers lead hr sales billing finance security legal good morning afternoon
    evening night day hello hi hey dear thanks thank regards best cheers sincerely yes no ok okay sorry
    unfortunately however also just quick update issue ticket incident urgent question note re fwd fw
    fyi monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday open closed
    resolved pending new active inactive true false none null unknown n/a not na tbd system user users
    owner owners member members partner partners vendor vendors mr mrs ms mx dr prof
    """
_STOP_WORDS = frozenset(_STOP_TEXT.split())

_Stage = tuple[str, re.Pattern[str], Callable[[re.Match[str]], tuple[str, int]]]


def _whole(kind: str) -> Callable[[re.Match[str]], tuple[str, int]]:
    return lambda m: (_PH[kind], 1)


def _auth(m: re.Match[str]) -> tuple[str, int]:
    return m.group("keep") + _PH[TOKEN], 1


def _bearer(m: re.Match[str]) -> tuple[str, int]:
    secret = m.group("secret")
    looks_secret = len(secret) >= 20 or (len(secret) >= 8 and re.search(r"[\d\-._~+/=]", secret))
    return (m.group("keep") + _PH[TOKEN], 1) if looks_secret else (m.group(0), 0)


def _key_value(m: re.Match[str]) -> tuple[str, int]:
    if m.group("q"):
        return f"{m.group('keep')}{m.group('q')}{_PH[TOKEN]}{m.group('q')}", 1
    return m.group("keep") + _PH[TOKEN], 1


def _long_run(m: re.Match[str]) -> tuple[str, int]:
    run = m.group(0)
    if _HEX.fullmatch(run):
        secret = bool(_LETTER.search(run) and _DIGIT.search(run))
    else:
        secret = any(_LETTER.search(s) and _DIGIT.search(s) for s in _STRETCH.findall(run)) or bool(
            _BASE64.fullmatch(run) and _DIGIT.search(run) and len(_FLIP.findall(run)) >= 6
        )
    return (_PH[TOKEN], 1) if secret else (run, 0)


def _iban(m: re.Match[str]) -> tuple[str, int]:
    compact = m.group(0).replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return m.group(0), 0
    rearranged = compact[4:] + compact[:4]
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return (_PH[IBAN], 1) if number % 97 == 1 else (m.group(0), 0)


def luhn_ok(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn check (ISO/IEC 7812-1, annex B).

    ``digits`` holds only ``0``–``9`` (no separators); an empty string is not valid. Raises
    ``ValueError`` for any other character."""
    if not digits:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(m: re.Match[str]) -> tuple[str, int]:
    run = m.group(0)
    groups = [(g.start(), g.end()) for g in _DIGITS.finditer(run)]
    out, last, found, i = [], 0, 0, 0
    while i < len(groups):
        best = None
        n_digits, sep = 0, None
        for j in range(i, len(groups)):
            start, end = groups[j]
            if j > i:
                this_sep = run[groups[j - 1][1]:start]
                if sep is None:
                    sep = this_sep
                if this_sep != sep or end - start < 3 or groups[i][1] - groups[i][0] < 3:
                    break
            n_digits += end - start
            if n_digits > 19:
                break
            if n_digits >= 13 and luhn_ok("".join(run[a:b] for a, b in groups[i:j + 1])):
                best = j
        if best is None:
            i += 1
            continue
        out += [run[last:groups[i][0]], _PH[CARD]]
        last, found, i = groups[best][1], found + 1, best + 1
    return ("".join(out) + run[last:], found) if found else (run, 0)


def _ipv6(m: re.Match[str]) -> tuple[str, int]:
    text = m.group(0)
    if text.strip(":") == "":
        return text, 0
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text, 0
    return _PH[IP], 1


def _phone(m: re.Match[str]) -> tuple[str, int]:
    n = sum(len(d) for d in _DIGITS.findall(m.group(0)))
    return (_PH[PHONE], 1) if 7 <= n <= 15 else (m.group(0), 0)


def _phone_cue(m: re.Match[str]) -> tuple[str, int]:
    number = m.group("number")
    n = sum(len(d) for d in _DIGITS.findall(number))
    if not 7 <= n <= 15 or _DATE.search(number):
        return m.group(0), 0
    return m.group("keep") + _PH[PHONE], 1


def _name_words(m: re.Match[str]) -> tuple[int, int] | None:
    """The span of the name's words before the first stop word, or None when nothing is left."""
    start = m.start("name")
    cut = start
    for w in re.finditer(r"\S+", m.group("name")):
        if w.group(0).lower().rstrip(".") in _STOP_WORDS:
            break
        cut = start + w.end()
    return (start, cut) if cut > start else None


def _name_after_cue(m: re.Match[str]) -> tuple[str, int]:
    span = _name_words(m)
    if span is None:
        return m.group(0), 0
    if (m.group("nl1") or m.group("nl2")) is not None and (
        span[1] != m.end("name") or not _SIGNATURE_END.match(m.string, span[1])
    ):
        return m.group(0), 0
    begin = m.start("hon") if m.group("hon") else span[0]
    s = m.string
    return s[m.start():begin] + _PH[NAME] + s[span[1]:m.end()], 1


def _name_after_honorific(m: re.Match[str]) -> tuple[str, int]:
    span = _name_words(m)
    if span is None:
        return m.group(0), 0
    return _PH[NAME] + m.string[span[1]:m.end()], 1


_STAGES: tuple[_Stage, ...] = (
    (TOKEN, _PRIVATE_KEY, _whole(TOKEN)),
    (TOKEN, _URL_CREDENTIALS, _whole(TOKEN)),
    (TOKEN, _AUTH_HEADER, _auth),
    (TOKEN, _BEARER, _bearer),
    (TOKEN, _KEY_VALUE, _key_value),
    (TOKEN, _PREFIXED_KEY, _whole(TOKEN)),
    (EMAIL, _EMAIL, _whole(EMAIL)),
    (IBAN, _IBAN, _iban),
    (CARD, _DIGIT_RUN, _cards),
    (IP, _IPV4, _whole(IP)),
    (IP, _IPV6, _ipv6),
    (PHONE, _PHONE_CUE, _phone_cue),
    (PHONE, _PHONE, _phone),
    (TOKEN, _LONG_RUN, _long_run),
    (NAME, _NAME_CUE, _name_after_cue),
    (NAME, _NAME_HONORIFIC, _name_after_honorific),
)


def redact_counts(text: str) -> tuple[str, dict[str, int]]:
    """Redact ``text`` like :func:`redact` and count what was replaced.

    Returns ``(redacted, counts)``: ``counts`` maps every type of :data:`TYPES` (``"EMAIL"``,
    ``"PHONE"``, ``"CARD"``, ``"IBAN"``, ``"IP"``, ``"TOKEN"``, ``"NAME"``), in that order, to the
    number of placeholders of that type inserted (0 when none). Raises ``TypeError`` when ``text``
    is not a ``str``."""
    if not isinstance(text, str):
        raise TypeError(f"redact expects str, got {type(text).__name__}")
    counts = dict.fromkeys(TYPES, 0)
    for kind, pattern, replace in _STAGES:
        if not text:
            break

        def sub(m: re.Match[str], kind: str = kind, replace=replace) -> str:
            out, n = replace(m)
            counts[kind] += n
            return out

        text = pattern.sub(sub, text)
    return text, counts


def redact(text: str) -> str:
    """Return ``text`` with PII and secrets replaced by ``<EMAIL>``, ``<PHONE>``, ``<CARD>``,
    ``<IBAN>``, ``<IP>``, ``<TOKEN>`` and ``<NAME>`` (see the module docstring for what each covers
    and what is deliberately kept).

    ``str -> str``; the empty string and text without findings come back unchanged, and redacting
    twice gives the same result as once. Raises ``TypeError`` when ``text`` is not a ``str``."""
    return redact_counts(text)[0]
