"""Retrieval queries built from an incident's evidence.

:func:`incident_query` improves on :func:`opsloop.pipeline.decide.build_query`: the most specific
evidence comes first (MiniLM reads only the first ~256 word pieces), identifiers, placeholders and
``key=value`` pairs are stripped from log lines (they match nothing in a runbook and dilute the
embedding), HTTP codes get their reason phrase, metric names are spelled out, and repeated lines are
dropped.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from opsloop.domain import Incident
from opsloop.pipeline.correlate import describe

_KV_ID = re.compile(r"\b[\w.]+=(?:<\w+>|(?=\S*[A-Za-z])(?=\S*\d)\S+|\d{5,}\S*|[A-Za-z]+[_-]\S+)")
_PLACEHOLDER = re.compile(r"/?<[A-Z]+>")
_HEX_ID = re.compile(r"\b(?:[a-z]+_)?(?=[0-9a-f]*\d)[0-9a-f]{8,}\b|\b[a-z]{2,4}_(?=[0-9a-z]*\d)[0-9a-z]{6,}\b")
_SPACES = re.compile(r"\s+")


def clean_line(line: str) -> str:
    """``"webhook delivery failed: <NUM> Forbidden (signature verification failed) merchant=<ID>"`` →
    ``"webhook delivery failed: Forbidden (signature verification failed)"``."""
    line = _KV_ID.sub(" ", line)
    line = _PLACEHOLDER.sub(" ", line)
    line = _HEX_ID.sub(" ", line)
    line = re.sub(r"\.\.\.\s*", " ", line)
    line = re.sub(r"\s+([:,;)])", r"\1", line)
    line = re.sub(r"\(\s*\)|,(?=\s*(?:,|$))", "", line)
    return _SPACES.sub(" ", line).strip(" :,;-")


def _status_phrase(status) -> str:
    try:
        return f"HTTP {int(status)} {HTTPStatus(int(status)).phrase}"
    except (TypeError, ValueError):
        return f"HTTP {status}"


def _humanise(text: str) -> str:
    """``p95_latency_ms rise`` → ``p95 latency ms rise``; ``order.created`` stays as it is."""
    return re.sub(r"(?<=[a-z0-9])_(?=[a-z])", " ", text)


def incident_query(incident: Incident, max_lines: int = 12) -> str:
    """Retrieval query for ``incident``, most specific evidence first: HTTP errors (status with reason
    phrase, endpoint, services, one cleaned example line) and event-ratio / funnel headlines, then
    cleaned log templates, ticket-cluster labels and terms, and the other anomaly headlines; cleaned,
    de-duplicated, at most ``max_lines`` lines."""
    specific, other = [], []
    for a in incident.anomalies[:8]:
        ev = a.evidence
        if a.detector == "error_rate":
            services = " ".join(ev.get("services", []))
            specific.append(f"{_status_phrase(ev.get('status'))} on {ev.get('endpoint')} {services}".strip())
            specific.extend(clean_line(x) for x in ev.get("examples", [])[:1])
        elif a.detector in ("ratio", "kpi_funnel"):
            specific.append(_humanise(describe(a)))
        else:
            other.append(_humanise(describe(a)))
    logs = [clean_line(s.template) for s in incident.signatures[:4]]
    tickets = [f"{c.label}: {' '.join(c.top_terms[:6])}" for c in incident.clusters[:3]]
    lines = [x for x in (*specific, *logs, *tickets, *other) if x]
    return "\n".join(list(dict.fromkeys(lines))[:max_lines])
