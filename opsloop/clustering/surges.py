"""Ticket-theme surges: per-cluster ticket volume over time as an anomaly signal.

Each ticket cluster (theme) gives a count series per hour. A surge is an hour whose count is
improbable under the theme's trailing rate: ``-log10 P(X >= k)`` with ``X ~ Poisson(λ)``
(``scipy.stats.poisson.logsf``), where ``λ`` is the theme's mean count over the ``baseline_hours``
*before* that hour (causal), shrunk toward ``prior_rate`` with a weight of ``prior_hours`` hours so a
theme with no history still has a rate. An hour also needs ``k >= min_count`` tickets and
``k >= min_ratio · λ``. Flagged hours closer than ``max_gap_hours`` merge into one surge, reported as
an :class:`~opsloop.domain.Anomaly` with detector ``ticket_surge``.

**Kind rule.** ``hard`` when the theme's label or top terms name a technical failure -- an HTTP error
code (4xx/5xx), or a word from :data:`HARD_TERMS` (error, failing, failed, unauthorized, forbidden,
timeout, broken, outage, down, crash, slow, latency...; slowness counts as hard because latency KPIs
are hard in :mod:`opsloop.pipeline.detect`) -- else ``business`` (missing orders, wrong prices,
empty carts: customers see an outcome, not an error). The words are matched on whole tokens,
case-insensitively; word stems cover plural and -ing forms.

Ticket volumes are tiny (a theme gets a few tickets a day), so the thresholds are in counts as much
as in probability; the defaults flag the simulator's incident bursts (15-40 tickets within a few
hours) and not its chatter (about 40 tickets a day over ~25 themes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from opsloop.data.contracts import affected
from opsloop.domain import Anomaly, Kind, SeriesKey, Severity, TicketCluster, Window

DETECTOR = "ticket_surge"
#: Word stems naming a technical failure (see the module docstring).
HARD_TERMS = (
    "error", "errors", "fail", "fails", "failing", "failed", "failure", "failures", "unauthorized",
    "unauthorised", "forbidden", "denied", "rejected", "timeout", "timeouts", "timed", "broken", "outage",
    "down", "crash", "crashes", "crashing", "exception", "unavailable", "slow", "slowly", "latency",
    "hangs", "hanging", "spinning", "invalid",
)
_HTTP_ERROR = re.compile(r"^[45]\d\d$")


def surge_kind(cluster: TicketCluster) -> Kind:
    """``hard`` if the cluster's label or top terms name a technical failure, else ``business``."""
    tokens = {t for text in [cluster.label, *cluster.top_terms] for t in re.findall(r"[a-z0-9]+", text.lower())}
    if tokens & set(HARD_TERMS) or any(_HTTP_ERROR.match(t) for t in tokens):
        return Kind.hard
    return Kind.business


@dataclass(frozen=True)
class SurgeConfig:
    """``threshold`` in -log10 p; rates are tickets per ``freq`` bucket (an hour by default)."""

    freq: str = "1h"
    threshold: float = 6.0
    baseline_hours: int = 72
    prior_rate: float = 0.05
    prior_hours: float = 24.0
    min_count: int = 4
    min_ratio: float = 3.0
    max_gap_hours: int = 1


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


def surge_scores(counts: pd.Series, cfg: SurgeConfig) -> pd.DataFrame:
    """Per bucket: ``count``, trailing rate ``lam`` (causal), ``score`` (-log10 p, 0 where the count
    is below ``min_count`` or ``min_ratio · lam``) and ``flag``."""
    k = counts.to_numpy(dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(k)])
    i = np.arange(len(k))
    lo = np.maximum(i - cfg.baseline_hours, 0)
    n_prev = (i - lo).astype(float)
    s_prev = csum[i] - csum[lo]
    lam = (s_prev + cfg.prior_rate * cfg.prior_hours) / (n_prev + cfg.prior_hours)
    with np.errstate(all="ignore"):
        score = np.clip(-stats.poisson.logsf(k - 1, lam) / np.log(10.0), 0.0, 300.0)
    score = np.where((k >= cfg.min_count) & (k >= cfg.min_ratio * lam), score, 0.0)
    return pd.DataFrame({"count": k.astype(int), "lam": lam, "score": score, "flag": score >= cfg.threshold},
                        index=counts.index)


def _severity(score: float, threshold: float, kind: Kind) -> Severity:
    ratio = score / threshold if threshold > 0 else 1.0
    rank = 1 if ratio < 1.5 else 2 if ratio < 3 else 3 if ratio < 6 else 4
    if kind == Kind.hard:
        rank = min(rank + 1, 4)
    return [Severity.low, Severity.medium, Severity.high, Severity.critical][rank - 1]


def _runs(flags: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    pos = np.flatnonzero(flags)
    if not len(pos):
        return []
    cuts = np.flatnonzero(np.diff(pos) > max_gap + 1)
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [len(pos) - 1]])
    return [(int(pos[a]), int(pos[b])) for a, b in zip(starts, ends)]



def ticket_surges(tickets: pd.DataFrame, clusters: list[TicketCluster], window: Window | None = None,
                  config: SurgeConfig | None = None) -> list[Anomaly]:
    """Surges of each cluster's ticket volume whose peak falls in ``window`` (all, if ``None``).

    ``tickets`` should reach back ``baseline_hours`` before the window (history gives the rate);
    clusters list their ``ticket_ids``. Returns anomalies sorted by start. Evidence: ``cluster_id``,
    ``label``, ``top_terms``, ``counts`` (bucket ISO time → tickets, over the surge),
    ``tickets`` (total in the surge), ``baseline_rate`` (tickets per bucket at the first flagged
    bucket), ``ticket_ids`` (up to 50), ``affected`` (``stage``/``merchant_id`` of the surge's tickets).
    """
    cfg = config or SurgeConfig()
    if tickets.empty or not clusters:
        return []
    end = pd.Timestamp(window.end) - pd.Timedelta("1ns") if window is not None else None
    counts = hourly_counts(tickets, clusters, cfg.freq, end=end)
    step = pd.Timedelta(cfg.freq)
    by_id = tickets.assign(_id=tickets["id"].astype(str)).set_index("_id")
    created = pd.to_datetime(by_id["created_at"], utc=True)
    out: list[Anomaly] = []
    for c in clusters:
        if c.id not in counts:
            continue
        frame = surge_scores(counts[c.id], cfg)
        kind = surge_kind(c)
        for first, last in _runs(frame["flag"].to_numpy(), cfg.max_gap_hours):
            span = frame.iloc[first : last + 1]
            peak = span["score"].idxmax()
            if window is not None and not window.contains(peak.to_pydatetime()):
                continue
            start, stop = frame.index[first], frame.index[last] + step
            members = [i for i in c.ticket_ids if i in created.index]
            t = created.reindex(members)
            inside = t[(t >= start) & (t < stop)].index.tolist()
            rows = by_id.loc[inside]
            score = float(span["score"].max())
            out.append(Anomaly(
                detector=DETECTOR, kind=kind, series=SeriesKey.of("ticket_volume", theme=c.id),
                start=start.to_pydatetime(), end=stop.to_pydatetime(), peak=peak.to_pydatetime(), score=score,
                severity=_severity(score, cfg.threshold, kind), observed=float(frame.at[peak, "count"]),
                expected=float(frame.at[peak, "lam"]), direction="up",
                evidence={
                    "cluster_id": c.id, "label": c.label, "top_terms": list(c.top_terms),
                    "counts": {ts.isoformat(): int(n) for ts, n in span["count"].items()},
                    "tickets": int(span["count"].sum()), "baseline_rate": float(span["lam"].iloc[0]),
                    "bucket": cfg.freq, "ticket_ids": sorted(inside)[:50], "affected": affected(rows),
                },
            ))
    return sorted(out, key=lambda a: (a.start, str(a.series)))
