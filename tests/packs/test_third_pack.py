"""A third domain pack, written only in YAML (``tests/packs/payments``), runs on data this test
generates and finds its injected incidents with the pack's categories: no stage hard-codes a domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.config import Settings
from opsloop.packs import load_pack
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import observe
from opsloop.store.session import open_store

PACK_DIR = Path(__file__).resolve().parent / "payments"
START = pd.Timestamp("2026-01-05", tz="UTC")
DAYS = 2
REGIONS, PROVIDERS = ("eu", "us"), ("acme", "zeta")
#: (name, category, start, end, where) of the injected incidents, all on the second day.
INJECTED = [
    ("acme gateway errors in eu", "provider_outage", "2026-01-06 10:00", "2026-01-06 11:00", {"region": "eu", "provider": "acme"}),
    ("zeta captures stalled", "capture_loss", "2026-01-06 14:00", "2026-01-06 15:30", {"provider": "zeta"}),
    ("us API slow", "slow_api", "2026-01-06 18:00", "2026-01-06 19:00", {"region": "us"}),
]


def _within(ts: pd.Series, name: str) -> np.ndarray:
    _, _, a, b, _ = next(i for i in INJECTED if i[0] == name)
    return ((ts >= pd.Timestamp(a, tz="UTC")) & (ts < pd.Timestamp(b, tz="UTC"))).to_numpy()


def _generate(out: Path, seed: int = 3) -> tuple[Path, Path]:
    """Charge logs (one line per API call and per capture) and per-minute KPIs with the incidents of
    :data:`INJECTED`; columns ``region`` and ``provider`` are labels the pack declares."""
    rng = np.random.default_rng(seed)
    minutes = pd.date_range(START, periods=DAYS * 1440, freq="1min")
    base = minutes.tz_localize(None).to_numpy()
    rows = []
    for region in REGIONS:
        for provider in PROVIDERS:
            n = rng.poisson(8, len(minutes))
            ts = np.repeat(base, n) + rng.integers(0, 60_000, n.sum()).astype("timedelta64[ms]")
            rows.append(pd.DataFrame({"ts": ts, "region": region, "provider": provider}))
    calls = pd.concat(rows, ignore_index=True)
    calls["ts"] = pd.to_datetime(calls["ts"], utc=True)
    outage = _within(calls["ts"], INJECTED[0][0]) & (calls["region"] == "eu").to_numpy() & (calls["provider"] == "acme").to_numpy()
    failed = (rng.random(len(calls)) < 0.002) | (outage & (rng.random(len(calls)) < 0.4))
    status = np.where(failed, np.where(outage, 502, 500), 201)
    message = np.where(status == 502, "upstream " + calls["provider"] + " returned 502 Bad Gateway",
                       np.where(status == 500, "internal error while charging", "charge authorized"))
    ids = np.array([f"ch_{i:07d}" for i in range(len(calls))])
    api = calls.assign(service="payments-api", endpoint="POST /v1/charges", status=status,
                       level=np.where(status >= 500, "ERROR", "INFO"), message=message,
                       event=np.where(status == 201, "charge.authorized", None), charge_id=ids)
    ok = api[api["status"] == 201]
    stall = _within(ok["ts"], INJECTED[1][0]) & (ok["provider"] == "zeta").to_numpy()
    captured = ok[rng.random(len(ok)) < np.where(stall, 0.4, 0.995)]
    capture = captured.assign(service="capture-worker", endpoint="capture", status=200, level="INFO",
                              message="charge captured", event="charge.captured",
                              ts=captured["ts"] + pd.Timedelta(seconds=2))
    logs = pd.concat([api, capture], ignore_index=True).sort_values("ts")
    logs_path = out / "logs.parquet"
    logs.to_parquet(logs_path, index=False)

    kpis = []
    for region in REGIONS:
        p99 = rng.normal(250.0, 15.0, len(minutes))
        if region == "us":
            p99[_within(pd.Series(minutes), INJECTED[2][0])] += 450.0
        kpis.append(pd.DataFrame({"ts": minutes, "metric": "api_p99_ms", "value": p99, "region": region}))
        kpis.append(pd.DataFrame({"ts": minutes, "metric": "auth_rate", "value": rng.normal(0.97, 0.005, len(minutes)),
                                  "region": region}))
    kpi_path = out / "kpis.csv"
    pd.concat(kpis).to_csv(kpi_path, index=False)
    return logs_path, kpi_path


@pytest.fixture(scope="module")
def payments_cycle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payments")
    logs, kpis = _generate(tmp)
    settings = Settings(home=tmp, embedder="tfidf", pack=str(PACK_DIR))
    result = run_cycle(observe(logs=logs, kpis=[kpis]), open_store(f"sqlite:///{tmp / 'opsloop.db'}"), settings,
                       pack=load_pack(PACK_DIR))
    return result


def test_payments_pack_loads_from_yaml_only():
    pack = load_pack(PACK_DIR)
    assert pack.name == "payments" and pack.labels == ["region", "provider"]
    assert pack.category_names == ("provider_outage", "capture_loss", "slow_api", "other")
    assert pack.revenue is None


@pytest.mark.parametrize("name, category, start, end, where", INJECTED, ids=[i[0] for i in INJECTED])
def test_each_injected_incident_is_found_with_the_pack_category(payments_cycle, name, category, start, end, where):
    a, b = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    hits = [i for i in payments_cycle.incidents if i.first_seen <= b and i.last_seen >= a]
    assert hits, f"{name}: no incident overlaps {start}..{end}"
    best = next((i for i in hits if i.assessment.category == category), None)
    assert best is not None, f"{name}: categories {[i.assessment.category for i in hits]}"
    for label, value in where.items():
        assert value in best.affected.get(label, []), (label, best.affected)
    assert best.assessment.risk.revenue_at_risk_per_hour is None  # the pack has no revenue model
    assert "revenue model" in best.assessment.risk.method
    assert best.assessment.summary.startswith(load_pack(PACK_DIR).category(category).title)


def test_payments_cycle_raises_few_false_incidents(payments_cycle):
    spans = [(pd.Timestamp(s, tz="UTC") - pd.Timedelta(minutes=30), pd.Timestamp(e, tz="UTC") + pd.Timedelta(hours=1))
             for _, _, s, e, _ in INJECTED]
    false = [i for i in payments_cycle.incidents if not any(i.first_seen <= b and i.last_seen >= a for a, b in spans)]
    assert len(false) <= 1, [(i.title, i.first_seen) for i in false]


def test_payments_actions_come_from_the_pack_catalog_and_fill_labels(payments_cycle):
    outage = next(i for i in payments_cycle.incidents if i.assessment.category == "provider_outage")
    fail_over = next(a for a in outage.actions if a.type == "fail_over_provider")
    assert fail_over.params == {"provider": "acme", "region": "eu"}
    assert fail_over.requires_approval  # high risk, and the pack lets nothing run alone
    assert not any(a.status.value == "succeeded" for i in payments_cycle.incidents for a in i.actions)


def test_no_checkout_words_reach_the_payments_incidents(payments_cycle):
    checkout = load_pack("checkout")
    words = {*checkout.category_names} - {*load_pack(PACK_DIR).category_names} - {*load_pack("generic").category_names}
    words |= {"merchant", "checkout", "stage", "conversion", "orders"}
    for inc in payments_cycle.incidents:
        a = inc.assessment
        text = " ".join([inc.title, a.summary, a.root_cause, *a.evidence, a.risk.method]).lower()
        assert not [w for w in words if w in text], text
