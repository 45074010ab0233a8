"""Varied backgrounds for the checkout simulator: a seed draws the platform, not only the incidents.

Our detectors and the unvaried simulator were written side by side, so the simulator alone proves
little about false pages. :func:`draw_background` draws, from a seed, a platform the detectors have
never been tuned on:

* traffic level (log-uniform 8 to 400 sessions/min at the daily peak), 10 to 60 merchants, the
  diurnal trough and peak hour, the weekend level;
* background 5xx rates per endpoint (gateway, webhooks, order lookups) and 404s;
* routine deploys (a few a day, minutes long, a latency and 500 wobble on one stage);
* consumer lag (order creation late by up to minutes for tens of minutes);
* GC pauses: a small share of requests slower by a heavy lognormal pause, so a per-minute p95 of a
  handful of requests jumps;
* latency medians and spreads, payment success per stage.

Modes: ``quiet`` (no incident), ``benign`` (only benign events: a marketing traffic surge with
steady conversion, a public-holiday dip, a declared maintenance window with a burst of 503s on the
low-traffic lookup endpoint, a new merchant going live from zero) and ``incidents`` (the six
injected incidents on the drawn background). Pass the result to
:func:`opsloop.packs.checkout.simulator.simulate` as ``background``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from opsloop.packs.checkout.simulator import DAY_MINUTES, Baseline

Mode = Literal["quiet", "benign", "incidents"]
MODES: tuple[Mode, ...] = ("quiet", "benign", "incidents")
EventKind = Literal["traffic_surge", "holiday_dip", "maintenance", "merchant_go_live"]


@dataclass(frozen=True)
class BenignEvent:
    """An expected event: ``start``/``end`` minute offsets from the scenario start (half-open);
    ``factor``: the session multiplier (surge, dip), the 503 share (maintenance) or the new
    merchant's traffic share relative to the median merchant (go-live)."""

    kind: EventKind
    start: int
    end: int
    factor: float


@dataclass(frozen=True)
class Background:
    """A drawn platform: ``mode``, its :class:`~opsloop.packs.checkout.simulator.Baseline`, the
    number of merchants and the benign events (``benign`` mode only)."""

    mode: Mode
    base: Baseline
    n_merchants: int
    events: tuple[BenignEvent, ...] = ()


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _benign_events(rng: np.random.Generator, days: int) -> tuple[BenignEvent, ...]:
    """One of each benign event on distinct days ``1..days-1`` (day 0 is warm-up)."""
    day = rng.choice(np.arange(1, days), size=min(4, days - 1), replace=False)
    day = np.resize(day, 4)
    surge_start = int(day[0]) * DAY_MINUTES + int(rng.integers(9 * 60, 17 * 60))
    maint_start = int(day[2]) * DAY_MINUTES + int(rng.integers(1 * 60, 6 * 60))
    live = int(day[3]) * DAY_MINUTES + int(rng.integers(8 * 60, 14 * 60))
    return (
        BenignEvent("traffic_surge", surge_start, surge_start + int(rng.integers(120, 300)),
                    float(rng.uniform(2.0, 4.0))),
        BenignEvent("holiday_dip", int(day[1]) * DAY_MINUTES, (int(day[1]) + 1) * DAY_MINUTES,
                    float(rng.uniform(0.3, 0.6))),
        BenignEvent("maintenance", maint_start, maint_start + int(rng.integers(20, 50)), float(rng.uniform(0.4, 0.9))),
        BenignEvent("merchant_go_live", live, days * DAY_MINUTES, float(rng.uniform(1.0, 3.0))),
    )


def draw_background(seed: int, mode: Mode = "quiet", days: int = 7) -> Background:
    """The background platform of ``seed`` (independent of the simulator's own seed use).

    Raises:
        ValueError: an unknown ``mode`` or ``days < 3``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if days < 3:
        raise ValueError(f"days must be >= 3; got {days}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBACC]))
    lat = rng.uniform(0.6, 1.6)
    base = Baseline(
        peak_sessions_per_min=_log_uniform(rng, 8.0, 400.0),
        trough_share=float(rng.uniform(0.05, 0.45)),
        weekend_uplift=float(rng.uniform(0.6, 1.4)),
        peak_hour_shift=float(rng.uniform(-8.0, 4.0)),
        attempt_rate=float(rng.uniform(0.06, 0.15)),
        gateway_500=_log_uniform(rng, 0.0005, 0.01),
        abandon_rate=float(rng.uniform(0.01, 0.06)),
        payment_success=tuple(float(x) for x in rng.uniform(0.88, 0.95, 3)),
        order_loss=_log_uniform(rng, 0.0002, 0.003),
        webhook_5xx=_log_uniform(rng, 0.001, 0.02),
        lookup_404_rate=_log_uniform(rng, 0.001, 0.01),
        gateway_latency_ms=tuple(float(x) * lat for x in rng.uniform(120.0, 220.0, 3)),
        gateway_latency_sigma=float(rng.uniform(0.3, 0.6)),
        payment_latency_ms=tuple(float(x) * lat for x in rng.uniform(220.0, 360.0, 3)),
        payment_latency_sigma=float(rng.uniform(0.3, 0.55)),
        lookup_5xx=_log_uniform(rng, 0.0005, 0.01),
        deploys_per_day=float(rng.uniform(0.5, 4.0)),
        deploy_minutes=(3, 12),
        deploy_latency_factor=float(rng.uniform(1.05, 1.5)),
        deploy_500=float(rng.uniform(0.0, 0.01)),
        lag_episodes_per_day=float(rng.uniform(0.0, 2.0)),
        lag_minutes=(10, 40),
        lag_seconds=(20.0, 150.0),
        gc_pause_share=float(rng.uniform(0.002, 0.02)),
        gc_pause_ms=float(rng.uniform(300.0, 2000.0)),
    )
    n_merchants = int(rng.integers(10, 61))
    events = _benign_events(rng, days) if mode == "benign" else ()  # drawn last: one platform per seed
    return Background(mode=mode, base=base, n_merchants=n_merchants, events=events)
