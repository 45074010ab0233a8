"""Ticket-theme surges: a burst is flagged, steady chatter is not; typed evidence, the pack's labels,
hard terms and severity ladder; the kind rule."""

from __future__ import annotations

import pandas as pd

from opsloop.clustering.surges import hourly_counts, surge_kind, ticket_surges
from opsloop.detectors.ticket_surge import TicketSurgeConfig
from opsloop.domain import Kind, Severity, TicketCluster, Window
from opsloop.evidence import TicketSurgeEvidence
from opsloop.packs import load_pack
from opsloop.packs.model import SeverityRules

T0 = pd.Timestamp("2026-11-02 00:00", tz="UTC")
PACK = load_pack("checkout")
LABELS, HARD = PACK.labels, PACK.tickets.hard_terms


def surges(tickets, clusters, window=None, **kw):
    return ticket_surges(tickets, clusters, window, LABELS, HARD, **kw)


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
    out = surges(tickets, [chatter, webhook])
    assert len(out) == 1
    a = out[0]
    assert isinstance(a.evidence, TicketSurgeEvidence)
    assert a.detector == "ticket_surge" and a.series.metric == "ticket_volume"
    assert a.series.label_dict == {"theme": "th-webhook"} and a.unit == "-log10 p"
    assert a.start <= burst_at.to_pydatetime() < a.end and a.evidence.tickets == 12
    assert a.kind == Kind.business and a.evidence.label == "Not receiving order webhooks"
    assert a.evidence.affected == {"stage": ["headless"], "merchant_id": ["m_002", "m_003"]}
    assert a.expected < 0.1 and a.observed >= 4 and a.score > 6.0
    assert sum(a.evidence.counts.values()) == 12 and sorted(a.evidence.ticket_ids) == sorted(f"B-{i}" for i in range(12))
    assert a.line().startswith("12 support tickets about 'Not receiving order webhooks'")


def test_labels_come_from_the_caller():
    tickets, chatter, webhook, _ = _frame()
    (a,) = ticket_surges(tickets, [chatter, webhook], None, ["stage"], HARD)
    assert a.evidence.affected == {"stage": ["headless"]}
    (b,) = ticket_surges(tickets, [chatter, webhook], None, [], HARD)
    assert b.evidence.affected == {}


def test_severity_follows_the_pack_ladder_and_config_is_the_detectors():
    tickets, chatter, webhook, _ = _frame()
    (a,) = surges(tickets, [chatter, webhook])
    strength = a.score / TicketSurgeConfig().threshold
    low_only = SeverityRules(steps=(strength + 1, strength + 2, strength + 3))
    assert surges(tickets, [chatter, webhook], severity=low_only)[0].severity == Severity.low
    capped = SeverityRules(steps=(0.0, 0.0, 0.0), evidence_max=Severity.medium)
    assert surges(tickets, [chatter, webhook], severity=capped)[0].severity == Severity.medium
    assert surges(tickets, [chatter, webhook], config=TicketSurgeConfig(min_count=13)) == []


def test_window_keeps_only_surges_peaking_inside_and_is_causal():
    tickets, chatter, webhook, burst_at = _frame()
    before = Window(start=burst_at - pd.Timedelta(hours=3), end=burst_at)
    assert surges(tickets, [chatter, webhook], before) == []
    inside = Window(start=burst_at - pd.Timedelta(minutes=30), end=burst_at + pd.Timedelta(hours=1))
    assert len(surges(tickets, [chatter, webhook], inside)) == 1
    # history only up to the window: the same answer (the rate uses past hours only)
    cut = tickets[tickets["created_at"] < inside.end]
    assert len(surges(cut, [chatter, webhook], inside)) == 1


def test_kind_rule():
    assert surge_kind(_cluster("a", [], "Checkout broken: 401 errors", ["checkout", "401"]), HARD) == Kind.hard
    assert surge_kind(_cluster("b", [], "Timeouts at checkout", ["slow", "payment"]), HARD) == Kind.hard
    assert surge_kind(_cluster("c", [], "Cart is empty at checkout", ["cart", "basket", "empty"]), HARD) == Kind.business
    assert surge_kind(_cluster("d", [], "Shipping cost looks wrong", ["shipping", "prices"]), HARD) == Kind.business
    # the words are the pack's: without them only an HTTP error code makes a theme hard
    assert surge_kind(_cluster("b", [], "Timeouts at checkout", ["slow", "payment"]), ()) == Kind.business
    assert surge_kind(_cluster("a", [], "Checkout broken: 503", ["checkout"]), ()) == Kind.hard


def test_hourly_counts_cover_every_hour():
    tickets, chatter, webhook, _ = _frame()
    counts = hourly_counts(tickets, [chatter, webhook])
    assert counts.index.freq == pd.Timedelta("1h") or (counts.index[1] - counts.index[0]) == pd.Timedelta("1h")
    assert counts["th-invoice"].sum() == 20 and counts["th-webhook"].sum() == 15
