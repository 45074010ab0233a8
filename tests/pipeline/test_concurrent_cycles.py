"""Two cycles on one store at the same time: both finish, nothing is stored twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from opsloop.config import Settings
from opsloop.pipeline.cycle import run_cycle
from opsloop.sources.files import FileSource
from opsloop.domain import Window
from opsloop.store import repository as repo
from opsloop.store.session import open_store
from tests.runner.test_kill import _kpis


def test_two_concurrent_cycles_on_one_store_both_finish_without_duplicates(store_url, tmp_path):
    source = FileSource(kpis=[_kpis(tmp_path / "kpis.csv")])
    w = Window(start=datetime(2026, 11, 2, tzinfo=UTC), end=datetime(2026, 11, 3, tzinfo=UTC))
    store, settings = open_store(store_url), Settings(home=tmp_path, embedder="tfidf")
    errors, barrier = [], threading.Barrier(2)

    def cycle() -> None:
        signals = source.read(w, datetime(2026, 11, 1, tzinfo=UTC))
        barrier.wait()
        try:
            run_cycle(signals, store, settings)
        except Exception as exc:  # noqa: BLE001 - the assertion reports it
            errors.append(repr(exc))

    threads = [threading.Thread(target=cycle) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store() as s:
        incidents = repo.list_incidents(s)
        assert incidents and len({i.id for i in incidents}) == len(incidents)
        assert len({i.fingerprint for i in incidents}) == len(incidents)
        assert repo.count_rows(s)["cycles"] == 1 and repo.verify_audit(s) == []
