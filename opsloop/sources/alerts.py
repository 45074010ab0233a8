"""Alertmanager alerts as anomalies: typed evidence (:class:`~opsloop.evidence.AlertEvidence`)
that joins correlation like any detector's anomaly, so an alert and a KPI anomaly on the same
correlation labels make one incident."""

from __future__ import annotations

from collections.abc import Sequence

from opsloop.domain import Alert, Anomaly, Severity, Window
from opsloop.evidence import AlertEvidence
from opsloop.packs.model import Pack

#: Alert ``severity`` label values (lower case) -> the domain severity; anything else is medium.
SEVERITIES: dict[str, Severity] = {
    "critical": Severity.critical, "page": Severity.critical, "emergency": Severity.critical,
    "high": Severity.high, "error": Severity.high, "major": Severity.high,
    "medium": Severity.medium, "warning": Severity.medium, "warn": Severity.medium,
    "low": Severity.low, "info": Severity.low, "minor": Severity.low, "none": Severity.low,
}
#: Annotations kept as the evidence's example lines, in this order.
TEXT_ANNOTATIONS = ("summary", "description", "message")


def alert_severity(value: str | None) -> Severity:
    """The domain :class:`~opsloop.domain.Severity` of an alert's ``severity`` label value
    (:data:`SEVERITIES`, case-insensitive); missing or unknown: ``medium``."""
    return SEVERITIES.get((value or "").strip().lower(), Severity.medium)


def alert_anomalies(alerts: Sequence[Alert], window: Window, pack: Pack) -> list[Anomaly]:
    """One anomaly per alert firing during ``window``.

    Kind: the pack's for the ``alertname`` (:meth:`opsloop.packs.model.Pack.alert_kind`, ``hard``
    unless the pack says otherwise); severity: the ``severity`` label (:func:`alert_severity`);
    span: ``starts_at`` to ``min(ends_at, window.end)`` (an open-ended alert runs to the window's
    end), peak at the start; labels: the alert's labels but ``alertname`` (the evidence's metric)
    and ``severity``. Alerts that stopped before the window or start after it are skipped.
    """
    out: list[Anomaly] = []
    for a in alerts:
        end = min(a.ends_at, window.end) if a.ends_at is not None else window.end
        if a.starts_at >= window.end or end <= window.start:
            continue
        name = a.labels.get("alertname") or "alert"
        labels = {k: v for k, v in a.labels.items() if k not in ("alertname", "severity")}
        minutes = (end - max(a.starts_at, window.start)).total_seconds() / 60.0
        evidence = AlertEvidence(
            metric=name, labels=labels, score=round(minutes, 3), fingerprint=a.fingerprint, status=a.status,
            alert_severity=a.labels.get("severity", ""),
            examples=[a.annotations[k] for k in TEXT_ANNOTATIONS if a.annotations.get(k)])
        out.append(Anomaly(kind=pack.alert_kind(name), start=a.starts_at, end=end, peak=a.starts_at,
                           severity=alert_severity(a.labels.get("severity")), evidence=evidence))
    return out
