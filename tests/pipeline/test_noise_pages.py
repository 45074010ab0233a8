"""Pure noise pages nobody: a generic-pack cycle over a week of stationary noise opens no incident.

Daily-seasonal noise (a sine of one day plus Gaussian noise) still pages at most once a week per
series, near the daily peak (measured with seeds 0-3: 1, 0, 1, 1 pages)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.config import Settings
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import observe
from opsloop.store.session import open_store

POINTS = 2016  # one week at 5-minute spacing


def _noise(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(100.0, 5.0, POINTS)
    if kind == "student_t3":
        return 100.0 + 5.0 * rng.standard_t(3, POINTS)
    t = np.arange(POINTS)
    return 100.0 + 10.0 * np.sin(2 * np.pi * t / 288) + rng.normal(0.0, 2.0, POINTS)


@pytest.mark.parametrize("kind", ["gaussian", "student_t3", "seasonal"])
def test_a_week_of_noise_opens_no_incident(kind, tmp_path):
    """Two one-week series of ``kind`` noise in one cycle: no incident (seasonal: at most one per
    series)."""
    idx = pd.date_range("2026-01-01", periods=POINTS, freq="5min", tz="UTC")
    files = []
    for seed in (0, 1):
        path = tmp_path / f"{kind}_{seed}.csv"
        pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d %H:%M:%S"), "value": _noise(kind, seed)}).to_csv(
            path, index=False)
        files.append(path)
    settings = Settings(home=tmp_path, embedder="tfidf")
    result = run_cycle(observe(kpis=files), open_store(f"sqlite:///{tmp_path / 'db.sqlite'}"), settings)
    pages = [(i.title, str(i.first_seen)) for i in result.incidents]
    if kind != "seasonal":
        assert pages == []
        return
    assert len(pages) <= len(files), pages
