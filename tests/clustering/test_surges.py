"""Ticket-theme surges: a burst is flagged, steady chatter is not; the kind rule."""

from __future__ import annotations

import pandas as pd

from opsloop.clustering.surges import hourly_counts, surge_kind, ticket_surges
from opsloop.domain import Kind, TicketCluster, Window

T0 = pd.Timestamp("2026-11-02 00:00", tz="UTC")


def _cluster(cid: str, ids: list[str], label: str, terms: list[str]) -> TicketCluster:
    return TicketCluster(id=cid, size=len(ids), top_terms=terms, examples=[], label=label, first_seen=T0,
                         last_seen=T0, ticket_ids=ids)


def _frame():
    rows = []
    for i in range(20):  # steady chatter: one invoice ticket every 6 hours for five days
        rows.append({"id": f"C-{i}", "created_at": T0 + pd.Timedelta(hours=6 * i + 1), "merchant_id": "m_001", "stage": "legacy"})
    burst_at = T0 + pd.Timedelta(days=3, hours=14)
    for i in range(12):  # 12 tickets in 50 minutes, two days of ordinary webhook questions before
        rows.append({"id": f"B-{i}", "created_at": burst_at + pd.Timedelta(minutes=4 * i), "merchant_id": f"m_00{2 + i % 2}",
                     "stage": "headless"})
    for i in range(3):
        rows.append({"id": f"W-{i}", "created_at": T0 + pd.Timedelta(days=i, hours=10), "merchant_id": "m_009", "stage": "legacy"})
    tickets = pd.DataFrame(rows)
    chatter = _cluster("th-invoice", [f"C-{i}" for i in range(20)], "Copy of invoice", ["invoice", "copy", "pdf"])
    webhook = _cluster("th-webhook", [f"B-{i}" for i in range(12)] + [f"W-{i}" for i in range(3)],
                       "Not receiving order webhooks", ["webhooks", "orders", "receiving"])
    return tickets, chatter, webhook, burst_at


def test_burst_is_flagged_and_steady_chatter_is_not():
    tickets, chatter, webhook, burst_at = _frame()
    out = ticket_surges(tickets, [chatter, webhook])
    assert len(out) == 1
    a = out[0]
    assert a.detector == "ticket_surge" and a.series.label_dict == {"theme": "th-webhook"}
    assert a.start <= burst_at.to_pydatetime() < a.end and a.evidence["tickets"] == 12
    assert a.kind == Kind.business and a.evidence["label"] == "Not receiving order webhooks"
    assert a.evidence["affected"] == {"stage": ["headless"], "merchant_id": ["m_002", "m_003"]}
    assert a.evidence["baseline_rate"] < 0.1 and a.expected < 0.1 and a.observed >= 4
    assert sum(a.evidence["counts"].values()) == 12


def test_window_keeps_only_surges_peaking_inside_and_is_causal():
    tickets, chatter, webhook, burst_at = _frame()
    before = Window(start=burst_at - pd.Timedelta(hours=3), end=burst_at)
    assert ticket_surges(tickets, [chatter, webhook], before) == []
    inside = Window(start=burst_at - pd.Timedelta(minutes=30), end=burst_at + pd.Timedelta(hours=1))
    assert len(ticket_surges(tickets, [chatter, webhook], inside)) == 1
    # history only up to the window: the same answer (the rate uses past hours only)
    cut = tickets[tickets["created_at"] < inside.end]
    assert len(ticket_surges(cut, [chatter, webhook], inside)) == 1


def test_kind_rule():
    assert surge_kind(_cluster("a", [], "Checkout broken: 401 errors", ["checkout", "401"])) == Kind.hard
    assert surge_kind(_cluster("b", [], "Timeouts at checkout", ["slow", "payment"])) == Kind.hard
    assert surge_kind(_cluster("c", [], "Cart is empty at checkout", ["cart", "basket", "empty"])) == Kind.business
    assert surge_kind(_cluster("d", [], "Shipping cost looks wrong", ["shipping", "prices"])) == Kind.business


def test_hourly_counts_cover_every_hour():
    tickets, chatter, webhook, _ = _frame()
    counts = hourly_counts(tickets, [chatter, webhook])
    assert counts.index.freq == pd.Timedelta("1h") or (counts.index[1] - counts.index[0]) == pd.Timedelta("1h")
    assert counts["th-invoice"].sum() == 20 and counts["th-webhook"].sum() == 15
