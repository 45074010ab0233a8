"""Range novelty: scores only values beyond everything seen before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.novelty import NoveltyDetector


def test_new_extremes_score_as_fraction_of_range():
    v = np.array([0.0, 10, 5, 5, 5, 12, 11, -10, 5, np.nan, 5.0])
    s = pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq="1min", tz="UTC"))
    frame = NoveltyDetector(min_periods=1).fit(s).score_frame(s)
    sc = frame["score"].to_numpy()
    assert np.isnan(sc[0])
    assert sc[5] == pytest.approx(0.2)  # 2 above the range [0, 10]
    assert sc[6] == 0
    assert sc[7] == pytest.approx(10 / 12)  # 10 below the range [0, 12]
    assert frame["direction"].iloc[7] == -1 and frame["direction"].iloc[5] == 1
    assert np.isnan(sc[9]) and sc[10] == 0


def test_windowed_range_forgets():
    v = np.r_[np.zeros(50), 100, np.zeros(100), 50]
    s = pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq="1min", tz="UTC"))
    assert NoveltyDetector(min_periods=5).fit(s).score_samples(s).iloc[-1] == 0
    assert NoveltyDetector(min_periods=5, window=60).fit(s).score_samples(s).iloc[-1] > 1
