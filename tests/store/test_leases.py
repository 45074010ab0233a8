import threading
from datetime import UTC, datetime, timedelta

import pytest

from opsloop.store.leases import (
    LeaseLost,
    acquire_lease,
    advance_watermark,
    fence_lease,
    get_lease,
    get_watermark,
    release_lease,
)
from opsloop.store.session import open_store

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_one_holder_until_expiry_then_takeover(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        assert acquire_lease(s, "runner", "a", 60, T0)[0]
    with store.begin() as s:
        ok, lease = acquire_lease(s, "runner", "b", 60, T0 + timedelta(seconds=30))
        assert not ok and lease.holder == "a"  # the refusal names the holder
    with store.begin() as s:
        assert acquire_lease(s, "runner", "a", 60, T0 + timedelta(seconds=50))[0]  # renewal
    with store.begin() as s:
        assert not acquire_lease(s, "runner", "b", 60, T0 + timedelta(seconds=100))[0]  # renewed until 110 s
        ok, lease = acquire_lease(s, "runner", "b", 60, T0 + timedelta(seconds=111))  # a dead holder's lease
        assert ok and lease.holder == "b" and lease.acquired_at == T0 + timedelta(seconds=111)
    with store.begin() as s, pytest.raises(LeaseLost, match="held by b"):
        fence_lease(s, "runner", "a", 60, T0 + timedelta(seconds=112))  # the old holder cannot commit
    with store.begin() as s:
        assert not release_lease(s, "runner", "a") and release_lease(s, "runner", "b")
    with store() as s:
        assert get_lease(s, "runner") is None


def test_racing_acquirers_get_the_lease_once(store_url):
    store = open_store(store_url)
    winners, barrier = [], threading.Barrier(8)

    def race(name: str) -> None:
        barrier.wait()
        with store.begin() as s:
            if acquire_lease(s, "runner", name, 60, T0)[0]:
                winners.append(name)

    threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with store() as s:
        assert len(winners) == 1 and get_lease(s, "runner").holder == winners[0]


def test_watermarks_only_move_forward(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        assert get_watermark(s, "runner:x") is None
        advance_watermark(s, "runner:x", T0, T0)
        assert advance_watermark(s, "runner:x", T0 - timedelta(hours=1), T0) == T0
        assert advance_watermark(
            s, "runner:x", T0 + timedelta(hours=1), T0, {"cycle": "c"}
        ) == T0 + timedelta(hours=1)
    with store() as s:
        assert get_watermark(s, "runner:x") == T0 + timedelta(hours=1)
