"""Ticket-theme surges: per-cluster ticket volume over time as an anomaly signal.

Each ticket cluster (theme) gives a count series per ``freq`` bucket (an hour by default;
:func:`hourly_counts`), scored by the registered ``ticket_surge`` detector
(:class:`~opsloop.detectors.ticket_surge.TicketSurgeDetector`): ``-log10 P(X >= k)`` with ``X ~
Poisson(λ)``, ``λ`` the theme's trailing rate (causal) shrunk toward a prior rate so a theme with no
history still has one, and ``k >= min_count``, ``k >= min_ratio · λ``. Flagged buckets at most
``max_gap`` buckets apart merge into one surge (:func:`opsloop.detectors.intervals.flag_runs`),
reported as an :class:`~opsloop.domain.Anomaly` with :class:`~opsloop.evidence.TicketSurgeEvidence`
(metric ``ticket_volume``, label ``theme``) and a severity from the domain pack's ladder
(:func:`opsloop.detectors.severity.severity_of`).

**Kind rule.** ``hard`` when the theme's label or top terms name a technical failure -- an HTTP error
code (4xx/5xx), or a word of the domain pack's ``tickets.hard_terms`` (e.g. error, failing,
unauthorized, timeout, slow) -- else ``business`` (customers see a wrong outcome, not an error). The words are matched on whole tokens,
case-insensitively; the pack lists the plural and -ing forms it wants.

Ticket volumes are tiny (a theme gets a few tickets a day), so the thresholds are in counts as much
as in probability; the defaults flag bursts of 15-40 tickets within a few hours and not steady
chatter of about 40 tickets a day over ~25 themes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pandas as pd

from opsloop.data.contracts import affected
from opsloop.detectors.intervals import flag_runs
from opsloop.detectors.severity import severity_of
from opsloop.detectors.ticket_surge import TicketSurgeConfig, TicketSurgeDetector
from opsloop.domain import Anomaly, Kind, TicketCluster, Window
from opsloop.evidence import TicketSurgeEvidence
from opsloop.packs.model import SeverityRules

DETECTOR = TicketSurgeDetector.name
_HTTP_ERROR = re.compile(r"^[45]\d\d$")


def surge_kind(cluster: TicketCluster, hard_terms: Iterable[str]) -> Kind:
    """``hard`` if the cluster's label or top terms hold an HTTP error code or one of
    ``hard_terms`` (lower-case words), else ``business``."""
    tokens = {t for text in [cluster.label, *cluster.top_terms] for t in re.findall(r"[a-z0-9]+", text.lower())}
    if tokens & {w.lower() for w in hard_terms} or any(_HTTP_ERROR.match(t) for t in tokens):
        return Kind.hard
    return Kind.business


def hourly_counts(tickets: pd.DataFrame, clusters: list[TicketCluster], freq: str = "1h",
                  start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Tickets per ``freq`` bucket (rows, UTC ``DatetimeIndex``, every bucket present) per cluster id
    (columns), from ``tickets`` (``id``, ``created_at``) and each cluster's ``ticket_ids``."""
    ids = tickets["id"].astype(str)
    created = pd.to_datetime(tickets["created_at"], utc=True)
    lo = start if start is not None else created.min()
    hi = end if end is not None else created.max()
    if pd.isna(lo) or pd.isna(hi) or hi < lo:
        return pd.DataFrame(columns=[c.id for c in clusters], dtype=int)
    index = pd.date_range(pd.Timestamp(lo).floor(freq), pd.Timestamp(hi).floor(freq), freq=freq, tz="UTC")
    when = pd.Series(created.to_numpy(), index=ids.to_numpy())
    cols = {}
    for c in clusters:
        t = when.reindex(c.ticket_ids).dropna()
        cols[c.id] = t.dt.floor(freq).value_counts().reindex(index, fill_value=0).astype(int) if len(t) else pd.Series(0, index=index)
    return pd.DataFrame(cols, index=index).fillna(0).astype(int)


def ticket_surges(tickets: pd.DataFrame, clusters: list[TicketCluster], window: Window | None,
                  labels: Sequence[str], hard_terms: Iterable[str], config: TicketSurgeConfig | None = None,
                  severity: SeverityRules | None = None) -> list[Anomaly]:
    """Surges of each cluster's ticket volume whose peak bucket falls in ``window`` (all, if ``None``).

    Args:
        tickets: tickets-contract frame (``id``, ``created_at`` UTC, label columns); it should reach
            back ``config.baseline`` buckets before the window (history gives the rate). Tickets
            after the window are ignored.
        clusters: the themes, each listing its ``ticket_ids``.
        labels: the blast-radius label columns (the domain pack's ``labels``) for ``affected``.
        hard_terms: the pack's ``tickets.hard_terms`` (see :func:`surge_kind`).
        config: the ``ticket_surge`` detector's config (default :class:`TicketSurgeConfig`).
        severity: the pack's severity ladder (default :class:`~opsloop.packs.model.SeverityRules`).

    Returns:
        Anomalies sorted by start, each with :class:`~opsloop.evidence.TicketSurgeEvidence`: score
        (−log10 p) and ``observed`` tickets at the peak bucket, ``expected`` the trailing rate there
        (tickets per bucket), ``counts`` (bucket ISO time → tickets over the surge), ``tickets`` (total
        in the surge), ``ticket_ids`` (up to 50) and ``affected`` (``labels`` of the surge's tickets).
    """
    cfg = config or TicketSurgeConfig()
    rules = severity or SeverityRules()
    hard_terms = tuple(hard_terms)
    if tickets.empty or not clusters:
        return []
    end = pd.Timestamp(window.end) - pd.Timedelta("1ns") if window is not None else None
    counts = hourly_counts(tickets, clusters, cfg.freq, end=end)
    step = pd.Timedelta(cfg.freq)
    by_id = tickets.assign(_id=tickets["id"].astype(str)).set_index("_id")
    created = pd.to_datetime(by_id["created_at"], utc=True)
    detector = TicketSurgeDetector(cfg)
    out: list[Anomaly] = []
    for c in clusters:
        if c.id not in counts:
            continue
        series = counts[c.id].astype(float)
        frame = detector.fit(series).score_frame(series)
        flags = (frame["score"] > detector.threshold_).to_numpy()
        kind = surge_kind(c, hard_terms)
        for first, last in flag_runs(flags, cfg.max_gap):
            span = frame.iloc[first : last + 1]
            peak = span["score"].idxmax()
            if window is not None and not window.contains(peak.to_pydatetime()):
                continue
            start, stop = frame.index[first], frame.index[last] + step
            t = created.reindex([i for i in c.ticket_ids if i in created.index])
            inside = t[(t >= start) & (t < stop)].index.tolist()
            in_span = series.iloc[first : last + 1]
            score = float(span["score"].max())
            evidence = TicketSurgeEvidence(
                metric="ticket_volume", labels={"theme": c.id}, score=score, observed=float(series[peak]),
                expected=float(frame.at[peak, "expected"]), direction="up",
                affected=affected(by_id.loc[inside], labels), cluster_id=c.id, label=c.label,
                top_terms=list(c.top_terms), tickets=int(in_span.sum()), bucket=cfg.freq,
                counts={ts.isoformat(): int(n) for ts, n in in_span.items()}, ticket_ids=sorted(inside)[:50],
            )
            out.append(Anomaly(
                kind=kind, start=start.to_pydatetime(), end=stop.to_pydatetime(), peak=peak.to_pydatetime(),
                severity=severity_of(score, cfg.threshold, kind, rules.steps, rules.kind_bump, rules.evidence_max),
                evidence=evidence,
            ))
    return sorted(out, key=lambda a: (a.start, str(a.series)))
