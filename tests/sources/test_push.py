"""PushSource and the store's ingest functions on SQLite and PostgreSQL: concurrent pushes of one
row store it once; a read changes nothing and gives contract frames and the firing alerts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from opsloop.data.contracts import LOGS, TICKETS
from opsloop.domain import Alert, Window
from opsloop.sources.base import Source
from opsloop.sources.push import PushSource, records_of, validate_rows
from opsloop.store import ingest
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
WINDOW = Window(start=T0, end=T0 + timedelta(hours=1))


def _tickets(n: int):
    rows = [{"id": f"T-{i}", "created_at": (T0 + timedelta(minutes=i)).isoformat(), "subject": f"s{i}",
             "body": "b", "customer": "acme"} for i in range(n)]
    checked = validate_rows(rows, TICKETS, "test")
    assert checked.quarantined == []
    return records_of(checked.frame, TICKETS)


def test_concurrent_pushes_of_the_same_tickets_store_them_once(store_url):
    store = open_store(store_url)
    records = _tickets(50)
    results: list[tuple[int, int]] = []
    barrier = threading.Barrier(4)

    def push() -> None:
        barrier.wait()
        with store.begin() as s:
            results.append(ingest.add_tickets(s, records))

    threads = [threading.Thread(target=push) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(stored for stored, _ in results) == 50 and len(results) == 4
    assert sum(dup for _, dup in results) == 150
    tickets = PushSource(store).read(WINDOW, T0).tickets
    assert sorted(tickets["id"]) == sorted(f"T-{i}" for i in range(50))
    assert set(tickets["customer"]) == {"acme"}


def test_a_failed_transaction_stores_nothing(store_url):
    store = open_store(store_url)
    try:
        with store.begin() as s:
            ingest.add_tickets(s, _tickets(3))
            raise RuntimeError("the request failed after validation")
    except RuntimeError:
        pass
    assert PushSource(store).read(WINDOW, T0).tickets.empty


def test_push_source_reads_logs_and_alerts_without_changing_anything(store_url):
    store = open_store(store_url)
    rows = [{"ts": (T0 + timedelta(minutes=m)).isoformat(), "service": "api", "endpoint": "/pay", "status": s,
             "level": "error", "message": "boom"} for m, s in ((-5, 500), (5, 502), (65, 503))]
    logs = records_of(validate_rows(rows, LOGS, "test").frame, LOGS)
    alert = Alert(fingerprint="f", status="firing", labels={"alertname": "A"},
                  starts_at=T0 - timedelta(hours=2))
    with store.begin() as s:
        assert ingest.add_logs(s, logs) == (3, 0)
        assert ingest.add_alerts(s, [alert, alert]) == (1, 1)
    source = PushSource(store)
    assert isinstance(source, Source)
    first = source.read(WINDOW, T0 - timedelta(minutes=10))
    assert first.logs["status"].tolist() == [500, 502]  # the 12:65 line is after the window
    assert [a.fingerprint for a in first.alerts] == ["f"] and first.sources == ["push"]
    again = source.read(WINDOW, T0 - timedelta(minutes=10))
    assert again.logs.equals(first.logs) and again.alerts == first.alerts
    assert source.watermark() == T0 + timedelta(minutes=65)
    assert first.counts()["log_events"] == 1


def test_prune_drops_only_what_no_later_window_reads(store_url):
    store = open_store(store_url)
    old = Alert(fingerprint="old", status="firing", starts_at=T0 - timedelta(hours=5))
    old_end = old.model_copy(update={"status": "resolved", "ends_at": T0 - timedelta(hours=4)})
    still = Alert(fingerprint="still", status="firing", starts_at=T0 - timedelta(hours=5))
    with store.begin() as s:
        ingest.add_tickets(s, _tickets(3))  # 12:00, 12:01, 12:02
        ingest.add_alerts(s, [old, old_end, still])
    with store.begin() as s:
        assert ingest.prune(s, T0 + timedelta(minutes=1)) == (1, 2)
    signals = PushSource(store).read(WINDOW, T0 - timedelta(days=1))
    assert signals.tickets["id"].tolist() == ["T-1", "T-2"]
    assert [a.fingerprint for a in signals.alerts] == ["still"]
