"""The checkout-migration scenario simulator.

An e-commerce checkout platform whose merchants migrate from a legacy checkout to a headless one in
stages ``legacy → dual_run → headless`` (:data:`~opsloop.data.contracts.STAGES`). The simulator
produces the three signals opsloop observes -- support tickets, application logs and 1-minute KPIs --
plus the ground truth of six injected incidents, deterministically from a seed.

How one scenario is made (one function per concern, in this order):

1. **world** (:func:`_build_world`): merchants ``m_001…`` with a lognormal traffic share, an initial
   stage, and midnight migrations of small merchants one stage forward; ``stage_at`` is ``(T, M)``.
2. **incidents** (:func:`_schedule_incidents`, :func:`_plan_incidents`): six incidents on days
   ``1..days-1``, starting 09:00–19:00 UTC, at least 3 h apart.
3. **traffic** (:func:`_simulate_traffic`): sessions ``(T, M)`` ~ Poisson(share × diurnal × weekly ×
   noise) and checkout attempts ``(T, M)`` ~ Binomial(sessions, p × incident factor).
4. **funnel** (:func:`_simulate_funnel`): one entry per checkout attempt (vectorised): gateway
   outcome, empty cart, abandonment, payment, order creation, webhook delivery, order lookups.
5. **logs** (:func:`_build_logs`): the funnel as log rows with human messages, ids and latencies.
6. **KPIs** (:func:`_build_kpis`): computed from the log rows (and the session counts) per minute.
7. **tickets** (:func:`_build_tickets`): ordinary support chatter plus 15–40 tickets per incident.

Times inside the simulation are integer offsets from ``start``: minutes for the ``(T, M)`` grids,
milliseconds (``ms``) for events. ``T = days * 1440``, ``M = n_merchants``. Money is USD.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from opsloop.data.contracts import LOGS, TICKETS
from opsloop.packs.checkout import ticket_templates as tt
from opsloop.packs.checkout.names import (
    EVENT_ORDER_CREATED,
    EVENT_PAYMENT_FAILED,
    EVENT_PAYMENT_SUCCEEDED,
    EVENT_SESSION_CREATED,
    EVENT_WEBHOOK_DELIVERED,
    METRIC_AOV,
    METRIC_ATTEMPTS,
    METRIC_CONVERSION,
    METRIC_ORDERS,
    METRIC_P95_LATENCY,
    METRIC_SESSIONS,
    METRIC_SUCCESS_RATE,
    STAGES,
)

if TYPE_CHECKING:
    from opsloop.packs.checkout.background import Background

#: Columns of the scenario's frames: each contract's columns, then the scenario's labels (``merchant_id``,
#: ``stage``) and the order id that links a payment to its order and webhook.
LOG_COLUMNS = [*LOGS.columns, "merchant_id", "stage", "order_id"]
TICKET_COLUMNS = [*TICKETS.columns, "merchant_id", "stage"]

__all__ = [
    "DEFAULT_START",
    "INCIDENT_NAMES",
    "Scenario",
    "simulate",
    "write_scenario",
]

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
MIN_DAYS = 3
MIN_MERCHANTS = 10
MINUTE_MS = 60_000
DAY_MINUTES = 1440
LEGACY, DUAL_RUN, HEADLESS = 0, 1, 2  # indices into STAGES
KPI_STAGES = (*STAGES, "all")

# Services and endpoints of the log rows.
GATEWAY, CHECKOUT_ENDPOINT = "api-gateway", "POST /v1/checkout/sessions"
PAYMENTS, PAYMENT_ENDPOINT = "payments", "POST /v1/payments"
ORDERS, ORDER_ENDPOINT = "orders", "internal order-service"
WEBHOOKS, WEBHOOK_ENDPOINT = "webhook-dispatcher", "POST /webhooks/orders"
LOOKUP_ENDPOINT = "GET /v1/orders/{id}"
STOREFRONT, RELEASE_ENDPOINT = "storefront", "internal release"
SECRET_ROTATION_ENDPOINT = "internal secret-rotation"


@dataclass(frozen=True)
class Baseline:
    """Healthy-platform parameters (rates are probabilities per attempt / per row).

    The defaults are the unvaried simulator's; :func:`opsloop.packs.checkout.background.draw_background`
    draws other platforms. The fields after ``payment_latency_sigma`` are background effects the
    defaults switch off: ``peak_hour_shift`` (hours the daily peak moves), ``lookup_5xx`` (503s of
    order lookups), routine ``deploys_per_day`` (each ``deploy_minutes`` long on one stage, gateway
    latency x ``deploy_latency_factor`` and ``deploy_500`` extra 500s), consumer-lag episodes
    (``lag_episodes_per_day``, ``lag_minutes`` long, order creation late by ``lag_seconds``) and GC
    pauses (a ``gc_pause_share`` of requests slower by a lognormal pause of median ``gc_pause_ms``).
    """

    peak_sessions_per_min: float = 200.0  # whole platform, weekday, 19:00 UTC
    trough_share: float = 0.20  # night trough relative to the daily peak
    weekend_uplift: float = 1.15
    attempt_rate: float = 0.10  # checkout attempts per session
    gateway_500: float = 0.002
    abandon_rate: float = 0.03  # checkout session created, no payment attempted
    payment_success: tuple[float, float, float] = (0.915, 0.92, 0.925)  # by stage
    order_loss: float = 0.001  # payment.succeeded without order.created
    webhook_5xx: float = 0.003
    lookup_rate: float = 0.08  # GET /v1/orders/{id} per order
    lookup_404_rate: float = 0.004  # GET of an unknown order id, per attempt
    aov_median_usd: tuple[float, float, float] = (58.0, 62.0, 67.0)  # by stage
    aov_sigma: float = 0.55
    gateway_latency_ms: tuple[float, float, float] = (175.0, 185.0, 150.0)  # medians by stage
    gateway_latency_sigma: float = 0.45  # lognormal sigma; gateway p95 ~ 2.1 x median ~ 350 ms
    payment_latency_ms: tuple[float, float, float] = (300.0, 310.0, 260.0)
    payment_latency_sigma: float = 0.40
    peak_hour_shift: float = 0.0
    lookup_5xx: float = 0.0
    deploys_per_day: float = 0.0
    deploy_minutes: tuple[int, int] = (5, 15)
    deploy_latency_factor: float = 1.0
    deploy_500: float = 0.0
    lag_episodes_per_day: float = 0.0
    lag_minutes: tuple[int, int] = (10, 40)
    lag_seconds: tuple[float, float] = (30.0, 180.0)
    gc_pause_share: float = 0.0
    gc_pause_ms: float = 0.0


BASE = Baseline()
DECLINE_REASONS = np.array(
    ["insufficient_funds", "do_not_honor", "expired_card", "incorrect_cvc", "generic_decline"])
WEBHOOK_5XX = np.array([500, 502, 503])
STATUS_TEXT = {
    200: "OK", 201: "Created", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
@dataclass
class Scenario:
    """One simulated scenario.

    * ``tickets`` -- one row per ticket, columns :data:`TICKET_COLUMNS` (``id`` ``T-000001``…,
      ``created_at`` ``datetime64[ns, UTC]``, ``merchant_id``, ``stage`` at creation time, ``priority``
      low|normal|high|urgent, ``channel`` email|chat|phone|web), sorted by ``created_at``.
    * ``logs`` -- one row per log event, columns :data:`LOG_COLUMNS`; ``ts``
      ``datetime64[ns, UTC]`` (millisecond jitter), ``status`` int64 HTTP status (200 for internal
      operational events), ``latency_ms`` float milliseconds (NaN for non-request rows), sorted by ``ts``.
      Roughly 60k rows per simulated day with the default 24 merchants.
    * ``kpis`` -- long form ``ts, metric, value, stage`` at 1-minute resolution (``ts`` is the minute
      start, UTC); ``stage`` in ``legacy|dual_run|headless|all``; metrics are the ``METRIC_*``
      constants; counts for every minute, ratios only where the denominator is > 0 (never NaN);
      ``avg_order_value`` in USD, ``p95_latency_ms`` in ms. Sorted by ``ts``, metric, stage.
    * ``ground_truth`` -- one dict per injected incident, sorted by start: ``id`` (``inc-1``…),
      ``name``, ``kind`` (hard|soft|business), ``category``, ``start``/``end`` (aware UTC datetimes,
      half-open), ``merchants``, ``stages``, ``description``, ``ticket_ids`` and ``impact``
      (``affected_events``, expected ``lost_orders``, ``revenue_at_risk_usd``).
    * ``merchants`` -- ``merchant_id, store_name, traffic_share, stage_initial, stage_final``.
    * ``migrations`` -- ``{"at": datetime, "merchant_id", "from", "to"}`` per stage move (midnight UTC).
    """

    tickets: pd.DataFrame
    logs: pd.DataFrame
    kpis: pd.DataFrame
    ground_truth: list[dict[str, Any]]
    seed: int
    days: int
    start: datetime
    merchants: pd.DataFrame = field(default_factory=pd.DataFrame)
    migrations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        """End of the simulated span (exclusive), ``start + days``."""
        return self.start + timedelta(days=self.days)


def simulate(seed: int = 7, days: int = 7, start: datetime | None = None, n_merchants: int = 24,
             background: Background | None = None) -> Scenario:
    """Simulate ``days`` days of the checkout platform from ``start`` (UTC midnight).

    With a ``background`` (:func:`opsloop.packs.checkout.background.draw_background`) the platform
    is that one -- its :class:`Baseline`, merchant count (``n_merchants`` is ignored), background
    effects and benign events -- and its ``mode`` says whether the six incidents are injected
    (``incidents``) or not (``quiet``, ``benign``); benign events are listed in the ground truth
    with ``benign: true`` (the incident ids stay ``inc-1``…). Without one, the unvaried platform.

    Args:
        seed: seed of the numpy ``Generator``; same arguments give identical frames.
        days: number of simulated days (>= 3). Day 0 is incident-free warm-up.
        start: first minute, aware (any timezone) or naive (taken as UTC); must be midnight UTC.
            Defaults to :data:`DEFAULT_START` (Monday 2026-11-02 00:00 UTC).
        n_merchants: number of merchants (>= 10).
        background: the platform to simulate (default: the unvaried one, bit-identical to before).

    Returns:
        A :class:`Scenario` covering ``[start, start + days)``.

    Raises:
        ValueError: ``days < 3``, ``n_merchants < 10``, or ``start`` not midnight UTC.
    """
    if background is not None:
        n_merchants = background.n_merchants
    days, n_merchants, start = _validate(days, n_merchants, start)
    rngs = {name: np.random.default_rng(s) for name, s in zip(  # children keyed by index: adding one
        ("world", "incidents", "traffic", "funnel", "logs", "tickets", "background"),  # keeps the rest
        np.random.SeedSequence(seed).spawn(7),
    )}
    world = _build_world(rngs["world"], start, days, n_merchants)
    incidents = _plan_incidents(rngs["incidents"], world, _schedule_incidents(rngs["incidents"], days))
    benign: list[dict[str, Any]] = []
    if background is not None:
        benign = _apply_background(rngs["background"], world, background)
        if background.mode != "incidents":
            for inc in incidents:  # scheduled (so the other draws stay aligned) but hitting no one
                inc.merchants = inc.merchants[:0]
    sessions, attempts = _simulate_traffic(rngs["traffic"], world, incidents)
    funnel = _simulate_funnel(rngs["funnel"], world, attempts, incidents)
    _measure_impact(world, funnel, incidents)
    rows = _build_logs(rngs["logs"], world, funnel, incidents)
    kpis = _build_kpis(world, sessions, rows)
    tickets = _build_tickets(rngs["tickets"], world, funnel, incidents)
    return Scenario(
        tickets=tickets,
        logs=rows.public,
        kpis=kpis,
        ground_truth=[inc.ground_truth(world) for inc in incidents if inc.merchants.size] + benign,
        seed=seed,
        days=days,
        start=start,
        merchants=world.merchant_frame(),
        migrations=world.migration_records(),
    )


def write_scenario(scenario: Scenario, out_dir: Path | str) -> dict[str, Path]:
    """Write a scenario as files in ``out_dir`` (created if missing; existing files are replaced).

    Files: ``tickets.jsonl`` (one JSON object per line, ``created_at`` as ``YYYY-MM-DDTHH:MM:SSZ``),
    ``logs.parquet`` (pyarrow, ``ts`` as timestamp[ns, UTC]), ``kpis.csv`` (``ts`` as
    ``YYYY-MM-DDTHH:MM:SSZ``) and ``ground_truth.json`` (indented, ISO-8601 UTC timestamps). The same
    scenario always gives byte-identical files.

    Returns:
        ``{"tickets": path, "logs": path, "kpis": path, "ground_truth": path}``.

    Raises:
        OSError: ``out_dir`` cannot be created or written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / fname for name, fname in (
        ("tickets", "tickets.jsonl"), ("logs", "logs.parquet"), ("kpis", "kpis.csv"),
        ("ground_truth", "ground_truth.json"),
    )}
    with paths["tickets"].open("w", encoding="utf-8", newline="\n") as fh:
        for record in scenario.tickets.to_dict(orient="records"):
            fh.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
    scenario.logs.to_parquet(paths["logs"], index=False, engine="pyarrow")
    scenario.kpis.to_csv(paths["kpis"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ", lineterminator="\n")
    paths["ground_truth"].write_text(
        json.dumps(scenario.ground_truth, indent=2, ensure_ascii=False, default=_json_default) + "\n",
        encoding="utf-8",
    )
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, pd.Timestamp)):
        return _iso(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _iso(ts: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate(days: int, n_merchants: int, start: datetime | None) -> tuple[int, int, datetime]:
    if int(days) != days or days < MIN_DAYS:
        raise ValueError(
            f"days must be an integer >= {MIN_DAYS} (day 0 is incident-free warm-up and six incidents "
            f"need at least two more days); got {days!r}"
        )
    if int(n_merchants) != n_merchants or n_merchants < MIN_MERCHANTS:
        raise ValueError(f"n_merchants must be an integer >= {MIN_MERCHANTS}; got {n_merchants!r}")
    start = DEFAULT_START if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
        raise ValueError(f"start must be midnight UTC; got {start.isoformat()}")
    return int(days), int(n_merchants), start


# --------------------------------------------------------------------------------------------------
# 1. World: merchants, stages, migrations
# --------------------------------------------------------------------------------------------------
@dataclass
class _World:
    """Merchants and their stage over time.

    ``weights`` ``(M,)`` traffic shares summing to 1; ``propensity`` ``(M,)`` multiplier of the
    attempt rate; ``stage_at`` ``(T, M)`` int8 stage index at each minute; ``migrations``
    ``(day, merchant, from, to)``.
    """

    start: datetime
    days: int
    ids: np.ndarray
    store_names: list[str]
    weights: np.ndarray
    propensity: np.ndarray
    stage_at: np.ndarray
    migrations: list[tuple[int, int, int, int]]
    base: Baseline = BASE
    effects: _Effects | None = None

    @property
    def n_minutes(self) -> int:
        return self.days * DAY_MINUTES

    @property
    def n_merchants(self) -> int:
        return len(self.ids)

    @property
    def horizon_ms(self) -> int:
        return self.n_minutes * MINUTE_MS

    def stage_of(self, ms: np.ndarray, merchant: np.ndarray) -> np.ndarray:
        """Stage index of ``merchant`` at ``ms`` (both ``(n,)``)."""
        minute = np.clip(np.asarray(ms) // MINUTE_MS, 0, self.n_minutes - 1)
        return self.stage_at[minute, merchant]

    def when(self, minute: int) -> datetime:
        return self.start + timedelta(minutes=int(minute))

    def merchant_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "merchant_id": self.ids,
            "store_name": self.store_names,
            "traffic_share": self.weights.round(6),
            "stage_initial": np.array(STAGES)[self.stage_at[0]],
            "stage_final": np.array(STAGES)[self.stage_at[-1]],
        })

    def migration_records(self) -> list[dict[str, Any]]:
        return [
            {"at": self.when(day * DAY_MINUTES), "merchant_id": str(self.ids[m]),
             "from": STAGES[a], "to": STAGES[b]}
            for day, m, a, b in self.migrations
        ]


def _build_world(rng: np.random.Generator, start: datetime, days: int, n_merchants: int) -> _World:
    weights = rng.lognormal(0.0, 0.9, n_merchants)
    weights /= weights.sum()
    propensity = np.clip(rng.lognormal(0.0, 0.12, n_merchants), 0.7, 1.4)
    stage0 = _initial_stages(rng, n_merchants)
    migrations = _migrations(rng, stage0, weights, days)
    stage_at = np.tile(stage0.astype(np.int8), (days * DAY_MINUTES, 1))
    for day, m, _, to in migrations:
        stage_at[day * DAY_MINUTES:, m] = to
    names = [f"{tt.STORE_PREFIXES[i % len(tt.STORE_PREFIXES)]} {tt.STORE_SUFFIXES[j]}" for i, j in zip(
        rng.permutation(n_merchants), rng.integers(0, len(tt.STORE_SUFFIXES), n_merchants))]
    return _World(
        start=start,
        days=days,
        ids=np.array([f"m_{i + 1:03d}" for i in range(n_merchants)]),
        store_names=names,
        weights=weights,
        propensity=propensity,
        stage_at=stage_at,
        migrations=migrations,
    )


def _initial_stages(rng: np.random.Generator, n: int) -> np.ndarray:
    """~45% legacy, ~33% dual_run, ~22% headless (at least 2 each), randomly assigned."""
    n_legacy = max(2, int(0.45 * n + 0.5))
    n_dual = max(2, int(0.33 * n + 0.5))
    stages = np.array([LEGACY] * n_legacy + [DUAL_RUN] * n_dual + [HEADLESS] * (n - n_legacy - n_dual))
    return stages[rng.permutation(n)]


def _migrations(rng: np.random.Generator, stage0: np.ndarray, weights: np.ndarray,
                days: int) -> list[tuple[int, int, int, int]]:
    """Every 1–2 days at midnight, 1–2 small merchants move one stage forward.

    A stage never drops below 3 merchants through migration, so every stage keeps enough merchants
    for the incidents. Returns ``(day, merchant, from, to)``.
    """
    stage = stage0.copy()
    small = weights < np.median(weights)
    moves: list[tuple[int, int, int, int]] = []
    day = int(rng.integers(1, 3))
    while day < days:
        moved_today = np.zeros(stage.size, dtype=bool)
        for _ in range(int(rng.integers(1, 3))):
            counts = np.bincount(stage, minlength=len(STAGES))
            candidates = np.flatnonzero(small & ~moved_today & (stage < HEADLESS) & (counts[stage] > 3))
            if candidates.size == 0:
                break
            m = int(rng.choice(candidates))
            moves.append((day, m, int(stage[m]), int(stage[m]) + 1))
            stage[m] += 1
            moved_today[m] = True
        day += int(rng.integers(1, 3))
    return moves


# --------------------------------------------------------------------------------------------------
# 2. Incidents: schedule, targets, parameters, ground truth
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str
    category: str
    min_minutes: int
    max_minutes: int


_SPECS = (
    _Spec("webhook_403", "hard", "webhook_auth", 90, 180),
    _Spec("api_auth_failure", "hard", "api_auth", 60, 120),
    _Spec("missing_order_created", "soft", "event_loss", 120, 240),
    _Spec("cart_empty", "soft", "cart_state", 60, 150),
    _Spec("slow_checkout", "hard", "latency", 60, 120),
    _Spec("conversion_drop", "business", "conversion", 120, 240),
)
INCIDENT_NAMES = tuple(s.name for s in _SPECS)
_EARLIEST_START = 9 * 60  # minutes after midnight
_LATEST_START = 19 * 60
_MIN_GAP = 180  # minutes between one incident's end and the next one's start


@dataclass
class _Incident:
    """One injected incident; ``start``/``end`` are minute offsets (half-open)."""

    spec: _Spec
    start: int
    end: int
    merchants: np.ndarray  # merchant indices, sorted
    stages: list[str]
    params: dict[str, Any]
    id: str = ""
    affected_events: int = 0
    lost_orders: float = 0.0
    revenue_at_risk: float = 0.0
    lost_attempts: float = 0.0  # expected attempts suppressed at the traffic level
    ticket_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def active(self, ms: np.ndarray, merchant: np.ndarray) -> np.ndarray:
        """Whether each event at ``ms`` of ``merchant`` (both ``(n,)``) is hit by this incident."""
        ms = np.asarray(ms)
        in_window = (ms >= self.start * MINUTE_MS) & (ms < self.end * MINUTE_MS)
        return in_window & np.isin(merchant, self.merchants)

    def ground_truth(self, world: _World) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.spec.kind,
            "category": self.spec.category,
            "start": world.when(self.start),
            "end": world.when(self.end),
            "merchants": [str(m) for m in world.ids[self.merchants]],
            "stages": list(self.stages),
            "description": _describe(self, world),
            "ticket_ids": list(self.ticket_ids),
            "impact": {
                "affected_events": int(self.affected_events),
                "lost_orders": round(float(self.lost_orders), 1),
                "revenue_at_risk_usd": round(float(self.revenue_at_risk), 2),
            },
        }


def _schedule_incidents(rng: np.random.Generator, days: int) -> list[tuple[_Spec, int, int]]:
    """Place the six incidents: ``(spec, start_minute, duration_minutes)`` sorted by start.

    Days ``1..days-1`` only; each start in [09:00, 19:00] UTC; >= 3 h between one end and the next
    start. With fewer than six incident days, several share a day; their durations are redrawn until
    they fit (the longest incident of a day goes last).
    """
    incident_days = np.arange(1, days)
    if incident_days.size >= len(_SPECS):
        day_list = np.sort(rng.choice(incident_days, len(_SPECS), replace=False))
        counts = np.ones(len(_SPECS), dtype=int)
    else:
        day_list = incident_days
        counts = np.full(day_list.size, len(_SPECS) // day_list.size)
        counts[rng.choice(day_list.size, len(_SPECS) % day_list.size, replace=False)] += 1
    for _ in range(10_000):
        plan = _try_schedule(rng, day_list, counts)
        if plan is not None:
            return plan
    raise RuntimeError("could not place incidents")  # unreachable for days >= 3


def _try_schedule(rng: np.random.Generator, day_list: np.ndarray,
                  counts: np.ndarray) -> list[tuple[_Spec, int, int]] | None:
    specs = [_SPECS[i] for i in rng.permutation(len(_SPECS))]
    durations = [int(rng.integers(s.min_minutes, s.max_minutes + 1)) for s in specs]
    plan, pos = [], 0
    for day, k in zip(day_list, counts):
        group = list(zip(specs[pos:pos + k], durations[pos:pos + k]))
        pos += k
        group.append(group.pop(int(np.argmax([d for _, d in group]))))
        busy = sum(d for _, d in group[:-1]) + _MIN_GAP * (k - 1)
        slack = _LATEST_START - _EARLIEST_START - busy
        if slack < 0:
            return None
        cuts = np.sort(rng.integers(0, slack + 1, k))
        t = int(day) * DAY_MINUTES + _EARLIEST_START + int(cuts[0])
        for i, (spec, dur) in enumerate(group):
            plan.append((spec, t, dur))
            if i + 1 < k:
                t += dur + _MIN_GAP + int(cuts[i + 1] - cuts[i])
    return plan


def _plan_incidents(rng: np.random.Generator, world: _World,
                    schedule: list[tuple[_Spec, int, int]]) -> list[_Incident]:
    """Choose targets (merchants, stages) and strengths for each scheduled incident."""
    incidents = []
    for i, (spec, start, duration) in enumerate(sorted(schedule, key=lambda x: x[1])):
        stage_now = world.stage_at[start]
        merchants, stages, params = _TARGETS[spec.name](rng, world, stage_now)
        incidents.append(
            _Incident(spec, start, start + duration, merchants, stages, params, id=f"inc-{i + 1}"))
    return incidents


def _pick(rng: np.random.Generator, world: _World, mask: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``lo..hi`` merchants from ``mask``, more likely the busier ones (so the signal is visible)."""
    candidates = np.flatnonzero(mask)
    k = min(int(rng.integers(lo, hi + 1)), candidates.size)
    p = np.sqrt(world.weights[candidates])
    return np.sort(rng.choice(candidates, k, replace=False, p=p / p.sum()))


def _stage_targets(stage_now: np.ndarray, stages: list[int]) -> tuple[np.ndarray, list[str]]:
    return np.flatnonzero(np.isin(stage_now, stages)), [STAGES[s] for s in stages]


def _target_webhook_403(rng, world, stage_now):
    return _pick(rng, world, stage_now == HEADLESS, 2, 4), ["headless"], {}


def _target_api_auth(rng, world, stage_now):
    params = {"fail_share": float(rng.uniform(0.85, 1.0)), "share_403": float(rng.uniform(0.1, 0.25))}
    return _pick(rng, world, stage_now == DUAL_RUN, 2, 4), ["dual_run"], params


def _target_missing_order(rng, world, stage_now):
    merchants, stages = _stage_targets(stage_now, [HEADLESS])
    return merchants, stages, {"loss_share": float(rng.uniform(0.35, 0.50))}


def _target_cart_empty(rng, world, stage_now):
    merchants, stages = _stage_targets(stage_now, [int(rng.choice([DUAL_RUN, HEADLESS]))])
    return merchants, stages, {"empty_share": float(rng.uniform(0.40, 0.60))}


def _target_slow_checkout(rng, world, stage_now):
    merchants, stages = _stage_targets(stage_now, [int(rng.integers(0, len(STAGES)))])
    params = {
        "latency_factor": float(rng.uniform(3.0, 6.0)),
        "p504": float(rng.uniform(0.008, 0.02)),
        "attempt_factor": float(rng.uniform(0.85, 0.93)),
    }
    return merchants, stages, params


def _target_conversion_drop(rng, world, stage_now):
    stage_idx = [LEGACY] if rng.random() < 0.7 else [LEGACY, DUAL_RUN, HEADLESS]
    merchants, stages = _stage_targets(stage_now, stage_idx)
    return merchants, stages, {"attempt_factor": float(1.0 - rng.uniform(0.40, 0.60))}


_TARGETS: dict[str, Callable[..., tuple[np.ndarray, list[str], dict[str, Any]]]] = {
    "webhook_403": _target_webhook_403,
    "api_auth_failure": _target_api_auth,
    "missing_order_created": _target_missing_order,
    "cart_empty": _target_cart_empty,
    "slow_checkout": _target_slow_checkout,
    "conversion_drop": _target_conversion_drop,
}


def _describe(inc: _Incident, world: _World) -> str:
    """One-paragraph ground-truth description (what happened, to whom, how strongly, how long)."""
    who = ", ".join(world.ids[inc.merchants])
    stages = "+".join(inc.stages)
    dur = inc.end - inc.start
    at = world.when(inc.start).strftime("%H:%M UTC")
    p = inc.params
    if inc.name == "webhook_403":
        return (f"Webhook signing secret rotated at {at} for {who} without their endpoints being updated; "
                f"order webhook deliveries fail with 403 (signature verification failed) for {dur} min. "
                f"Orders are still created.")
    if inc.name == "api_auth_failure":
        return (f"Checkout API keys of dual_run merchants {who} expired at {at}; ~{p['fail_share']:.0%} of "
                f"POST /v1/checkout/sessions requests return 401 (some 403) for {dur} min, creating no "
                f"checkout session and no payment.")
    if inc.name == "missing_order_created":
        return (f"Headless order pipeline drops order.created for ~{p['loss_share']:.0%} of successful "
                f"payments for {dur} min from {at}; every response stays 2xx (customers charged without "
                f"an order).")
    if inc.name == "cart_empty":
        return (f"Frontend release {p.get('release', '?')} to stage={stages} at {at} loses cart contents: "
                f"~{p['empty_share']:.0%} of checkout sessions are created with an empty cart and never "
                f"reach payment, for {dur} min.")
    if inc.name == "slow_checkout":
        return (f"Stage {stages} checkout and payment latency x{p['latency_factor']:.1f} for {dur} min from "
                f"{at}, with ~{p['p504']:.1%} gateway 504s and ~{1 - p['attempt_factor']:.0%} fewer "
                f"checkout attempts.")
    return (f"Wrong shipping prices shown on {stages} storefronts from {at}: checkout attempts per session "
            f"fall by {1 - p['attempt_factor']:.0%} for {dur} min with no errors.")


# --------------------------------------------------------------------------------------------------
# 2b. Background: what a drawn platform adds (see opsloop.packs.checkout.background)
# --------------------------------------------------------------------------------------------------
@dataclass
class _Effects:
    """Per-minute background effects: ``traffic`` ``(T,)`` session multiplier (surges, holiday
    dips), ``live_from`` ``(M,)`` first minute a merchant has traffic, ``deploy`` ``(T, 3)`` whether
    a stage is being deployed, ``lag_ms`` ``(T,)`` order-consumer lag, ``lookup_503`` ``(T,)`` extra
    503 share of order lookups (maintenance); ``deploys`` ``(start, end, stage)`` minutes; ``rng``
    draws the per-request effects (GC pauses) so the unvaried draws stay as they are."""

    rng: np.random.Generator
    traffic: np.ndarray
    live_from: np.ndarray
    deploy: np.ndarray
    lag_ms: np.ndarray
    lookup_503: np.ndarray
    deploys: list[tuple[int, int, int]]

    def slow_down(self, latency: np.ndarray, minute: np.ndarray | None, stage: np.ndarray | None,
                  b: Baseline) -> np.ndarray:
        """``latency`` ``(n,)`` ms with deploy wobble (when ``minute``/``stage`` are given) and GC pauses."""
        out = latency.astype(np.float64, copy=True)
        if minute is not None and stage is not None:
            out = np.where(self.deploy[minute, stage], out * b.deploy_latency_factor, out)
        if b.gc_pause_share > 0:
            hit = self.rng.random(out.size) < b.gc_pause_share
            out[hit] += _lognormal_ms(self.rng, b.gc_pause_ms, 0.6, int(hit.sum()))
        return np.round(out, 1)


def _episodes(rng: np.random.Generator, world: _World, per_day: float, minutes: tuple[int, int]):
    """``(start, end)`` minute spans, ~``per_day`` a day at uniform times, ``minutes`` long."""
    n = int(rng.poisson(per_day * world.days))
    starts = np.sort(rng.integers(0, world.n_minutes, n))
    return [(int(a), int(min(a + rng.integers(minutes[0], minutes[1] + 1), world.n_minutes))) for a in starts]


def _apply_background(rng: np.random.Generator, world: _World, bg: Background) -> list[dict[str, Any]]:
    """Set ``world.base`` and ``world.effects`` from ``bg``; returns the benign events' ground truth."""
    b = world.base = bg.base
    T = world.n_minutes
    traffic, live_from = np.ones(T), np.zeros(world.n_merchants, dtype=np.int64)
    deploy, lag_ms, lookup_503 = np.zeros((T, len(STAGES)), dtype=bool), np.zeros(T, dtype=np.int64), np.zeros(T)
    deploys = []
    for a, z in _episodes(rng, world, b.deploys_per_day, b.deploy_minutes):
        stage = int(rng.integers(0, len(STAGES)))
        deploy[a:z, stage] = True
        deploys.append((a, z, stage))
    for a, z in _episodes(rng, world, b.lag_episodes_per_day, b.lag_minutes):
        lag_ms[a:z] = int(rng.uniform(*b.lag_seconds) * 1000)
    truth = []
    for i, ev in enumerate(bg.events):
        record: dict[str, Any] = {"id": f"benign-{i + 1}", "name": ev.kind, "kind": "benign", "benign": True,
                                  "category": None, "start": world.when(ev.start), "end": world.when(ev.end),
                                  "labels": {}, "merchants": [], "stages": [], "ticket_ids": [], "impact": {}}
        ramp = np.clip(np.minimum(np.arange(T) - ev.start, ev.end - np.arange(T)) / 20.0, 0.0, 1.0)
        if ev.kind in ("traffic_surge", "holiday_dip"):
            traffic *= 1.0 + (ev.factor - 1.0) * ramp
            record["description"] = f"{ev.kind}: sessions x{ev.factor:.2f}, conversion unchanged"
        elif ev.kind == "maintenance":
            lookup_503[ev.start:ev.end] = ev.factor
            record.update(labels={"endpoint": LOOKUP_ENDPOINT}, maintenance=True,
                          description=f"declared maintenance: ~{ev.factor:.0%} of {LOOKUP_ENDPOINT} return 503")
        else:  # merchant_go_live: the last merchant, with a typical share, starts from zero
            m = world.n_merchants - 1
            live_from[m] = ev.start
            world.weights[m] = float(np.median(world.weights)) * ev.factor
            world.weights /= world.weights.sum()
            record.update(merchants=[str(world.ids[m])], labels={"merchant_id": str(world.ids[m])},
                          description=f"new merchant {world.ids[m]} goes live from zero traffic")
        truth.append(record)
    world.effects = _Effects(rng, traffic, live_from, deploy, lag_ms, lookup_503, deploys)
    return truth


# --------------------------------------------------------------------------------------------------
# 3. Traffic: calendar, sessions and checkout attempts per minute x merchant
# --------------------------------------------------------------------------------------------------
_DIURNAL_KNOTS = np.array([  # hour of day (UTC), relative traffic
    (0, 0.45), (2, 0.27), (4, 0.20), (6, 0.27), (8, 0.42), (10, 0.57), (12, 0.67), (14, 0.74),
    (16, 0.83), (18, 0.97), (19, 1.00), (20, 0.96), (22, 0.72), (24, 0.45),
])


def _diurnal(minute_of_day: np.ndarray, trough: float) -> np.ndarray:
    """Smooth periodic daily curve in [trough, 1], peak near 19:00 UTC, trough near 04:00."""
    spline = CubicSpline(_DIURNAL_KNOTS[:, 0] * 60, _DIURNAL_KNOTS[:, 1], bc_type="periodic")
    grid = spline(np.arange(DAY_MINUTES))
    grid = trough + (1 - trough) * (grid - grid.min()) / (grid.max() - grid.min())
    return grid[minute_of_day]


def _traffic_curve(rng: np.random.Generator, world: _World) -> np.ndarray:
    """Expected sessions per minute per merchant, ``(T, M)`` float."""
    minutes = np.arange(world.n_minutes)
    day = minutes // DAY_MINUTES
    weekday = (world.start.weekday() + day) % 7
    b = world.base
    shift = int(round(b.peak_hour_shift * 60))
    platform = (
        b.peak_sessions_per_min
        * _diurnal((minutes - shift) % DAY_MINUTES, b.trough_share)
        * np.where(weekday >= 5, b.weekend_uplift, 1.0)
        * rng.lognormal(0.0, 0.04, world.days)[day]
    )
    merchant_day = rng.lognormal(0.0, 0.06, (world.days, world.n_merchants))[day]
    curve = platform[:, None] * world.weights[None, :] * merchant_day
    if world.effects is not None:
        curve *= world.effects.traffic[:, None]
        curve[minutes[:, None] < world.effects.live_from[None, :]] = 0.0
    return curve


def _simulate_traffic(rng: np.random.Generator, world: _World,
                      incidents: list[_Incident]) -> tuple[np.ndarray, np.ndarray]:
    """Sessions and checkout attempts, both ``(T, M)`` int64.

    Incidents with an ``attempt_factor`` (conversion drop, slow checkout) scale the attempt rate of
    their merchants inside their window; the expected suppressed attempts go to ``lost_attempts``.
    """
    sessions = rng.poisson(_traffic_curve(rng, world))
    p = np.broadcast_to(world.base.attempt_rate * world.propensity, sessions.shape).copy()
    for inc in incidents:
        factor = inc.params.get("attempt_factor")
        if factor is None:
            continue
        window = (slice(inc.start, inc.end), inc.merchants)
        inc.lost_attempts += float((sessions[window] * p[window] * (1 - factor)).sum())
        p[window] *= factor
    return sessions, rng.binomial(sessions, np.clip(p, 0, 1))


# --------------------------------------------------------------------------------------------------
# 4. Funnel: one entry per checkout attempt
# --------------------------------------------------------------------------------------------------
@dataclass
class _Funnel:
    """Outcomes of every checkout attempt, all arrays ``(n_attempts,)``; times in ms from start.

    ``gateway_status`` 201 (session created), 401/403 (auth), 500, 504. ``empty`` session with no
    items; ``paid`` a payment was attempted at ``t_payment`` and ``payment_ok`` it succeeded;
    ``order`` an order was created at ``t_order``; ``webhook_status`` of its delivery at
    ``t_webhook``; ``lookup`` a later GET of the order at ``t_lookup``; ``lookup_404`` an unrelated
    GET of an unknown id at ``t_lookup_404``.
    """

    merchant: np.ndarray
    stage: np.ndarray
    t_session: np.ndarray
    gateway_status: np.ndarray
    empty: np.ndarray
    paid: np.ndarray
    t_payment: np.ndarray
    payment_ok: np.ndarray
    decline: np.ndarray
    amount_cents: np.ndarray
    items: np.ndarray
    order: np.ndarray
    session_id: np.ndarray
    order_id: np.ndarray
    t_order: np.ndarray
    webhook_status: np.ndarray
    t_webhook: np.ndarray
    lookup: np.ndarray
    t_lookup: np.ndarray
    lookup_404: np.ndarray
    t_lookup_404: np.ndarray

    @property
    def created(self) -> np.ndarray:
        return self.gateway_status == 201


def _simulate_funnel(rng: np.random.Generator, world: _World, attempts: np.ndarray,
                     incidents: list[_Incident]) -> _Funnel:
    """Expand ``attempts`` ``(T, M)`` into per-attempt outcomes, applying the incidents by event time."""
    inc = {i.name: i for i in incidents}
    b = world.base  # the platform simulated
    cell = np.repeat(np.arange(attempts.size), attempts.ravel())
    n = cell.size
    merchant = (cell % world.n_merchants).astype(np.int64)
    t_session = (cell // world.n_merchants) * MINUTE_MS + rng.integers(0, MINUTE_MS, n)
    stage = world.stage_at[cell // world.n_merchants, merchant]
    u = rng.random((n, 8))

    status = np.full(n, 201, dtype=np.int64)
    auth = inc["api_auth_failure"]
    denied = auth.active(t_session, merchant) & (u[:, 0] < auth.params["fail_share"])
    status[denied] = np.where(u[denied, 1] < auth.params["share_403"], 403, 401)
    p500 = b.gateway_500
    fx = world.effects
    if fx is not None:
        p500 = np.where(fx.deploy[cell // world.n_merchants, stage], b.gateway_500 + b.deploy_500,
                        b.gateway_500)
    status[~denied & (u[:, 2] < p500)] = 500
    slow = inc["slow_checkout"]
    status[(status == 201) & slow.active(t_session, merchant) & (u[:, 3] < slow.params["p504"])] = 504
    cart = inc["cart_empty"]
    empty = (status == 201) & cart.active(t_session, merchant) & (u[:, 4] < cart.params["empty_share"])
    paid = (status == 201) & ~empty & (u[:, 5] >= b.abandon_rate)

    think_ms = np.minimum(rng.lognormal(np.log(40_000), 0.5, n), 400_000).astype(np.int64)
    t_payment = t_session + 15_000 + think_ms  # the customer enters card details
    payment_ok = paid & (u[:, 6] < np.asarray(b.payment_success)[stage])
    loss = inc["missing_order_created"]
    p_loss = np.where(loss.active(t_payment, merchant), loss.params["loss_share"], b.order_loss)
    order = payment_ok & (u[:, 7] >= p_loss)
    t_order = t_payment + rng.integers(1_000, 8_000, n)
    if fx is not None:  # consumer lag: the order-service consumer falls behind
        t_order += fx.lag_ms[np.clip(t_payment // MINUTE_MS, 0, world.n_minutes - 1)]
    t_webhook = t_order + rng.integers(300, 4_000, n)

    webhook_status = np.where(rng.random(n) < b.webhook_5xx, rng.choice(WEBHOOK_5XX, n), 200)
    webhook_status[inc["webhook_403"].active(t_webhook, merchant)] = 403
    amount = rng.lognormal(np.log(np.asarray(b.aov_median_usd)[stage]), b.aov_sigma)
    return _Funnel(
        merchant=merchant,
        stage=stage,
        t_session=t_session,
        gateway_status=status,
        empty=empty,
        paid=paid,
        t_payment=t_payment,
        payment_ok=payment_ok,
        decline=rng.integers(0, len(DECLINE_REASONS), n),
        amount_cents=np.maximum(np.round(amount * 100), 500).astype(np.int64),
        items=1 + rng.poisson(1.2, n),
        order=order,
        session_id=_hex_ids(rng, n, "cs_"),
        order_id=_hex_ids(rng, n, "ord_"),
        t_order=t_order,
        webhook_status=webhook_status,
        t_webhook=t_webhook,
        lookup=order & (rng.random(n) < b.lookup_rate),
        t_lookup=t_order + rng.integers(30_000, 1_200_000, n),
        lookup_404=rng.random(n) < b.lookup_404_rate,
        t_lookup_404=t_session + rng.integers(0, 600_000, n),
    )


def _measure_impact(world: _World, f: _Funnel, incidents: list[_Incident]) -> None:
    """Fill each incident's ``affected_events``, expected ``lost_orders`` and ``revenue_at_risk``.

    Suppressed or failed attempts are valued at the baseline chance that an attempt becomes an order
    and the mean order value of the incident's stages; missing orders at their actual amounts.
    Webhook failures lose no orders (fulfilment is delayed, not lost).
    """
    b = world.base
    order_per_attempt = ((1 - b.gateway_500) * (1 - b.abandon_rate) * np.mean(b.payment_success)
                         * (1 - b.order_loss))
    horizon = world.horizon_ms
    for inc in incidents:
        hit = inc.active(f.t_session, f.merchant) & (f.t_session < horizon)
        if inc.name == "missing_order_created":
            lost = f.payment_ok & ~f.order & inc.active(f.t_payment, f.merchant) & (f.t_payment < horizon)
            inc.affected_events = int(lost.sum())
            inc.lost_orders = float(lost.sum())
            inc.revenue_at_risk = float(f.amount_cents[lost].sum()) / 100
            continue
        if inc.name == "webhook_403":
            inc.affected_events = int(((f.webhook_status == 403) & f.order & (f.t_webhook < horizon)).sum())
            failed_attempts = 0.0
        elif inc.name == "api_auth_failure":
            inc.affected_events = int((hit & np.isin(f.gateway_status, (401, 403))).sum())
            failed_attempts = float(inc.affected_events)
        elif inc.name == "cart_empty":
            inc.affected_events = int((hit & f.empty).sum())
            failed_attempts = float(inc.affected_events)
        elif inc.name == "slow_checkout":
            inc.affected_events = int((hit & (f.gateway_status == 504)).sum())
            failed_attempts = inc.affected_events + inc.lost_attempts
        else:  # conversion_drop: nothing fails, attempts are simply not made
            inc.affected_events = int(round(inc.lost_attempts))
            failed_attempts = inc.lost_attempts
        inc.lost_orders = failed_attempts * order_per_attempt
        inc.revenue_at_risk = inc.lost_orders * _mean_order_value(b, inc.stages)


def _mean_order_value(base: Baseline, stages: list[str]) -> float:
    """Expected order value (USD) averaged over ``stages`` (lognormal mean)."""
    medians = np.asarray(base.aov_median_usd)[[STAGES.index(s) for s in stages]]
    return float(medians.mean() * np.exp(base.aov_sigma ** 2 / 2))


# --------------------------------------------------------------------------------------------------
# 5. Logs
# --------------------------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_ids(rng: np.random.Generator, n: int, prefix: str, nbytes: int = 6) -> np.ndarray:
    """``n`` random ids ``prefix + 2*nbytes hex chars``, as a numpy unicode array ``(n,)``."""
    raw = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    return np.strings.add(prefix, chars.view(f"S{2 * nbytes}").ravel().astype(f"U{2 * nbytes}"))


def _txt(values: Any) -> pd.Series:
    """Values as a pandas string Series indexed ``0..n-1`` (for vectorised message building)."""
    return pd.Series(np.asarray(values)).astype("str")


def _money(cents: np.ndarray) -> pd.Series:
    """Integer cents as ``"72.10"`` strings."""
    cents = np.asarray(cents, dtype=np.int64)
    return _txt(cents // 100) + "." + _txt(cents % 100).str.zfill(2)


def _lognormal_ms(rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    """``(n,)`` lognormal latencies in ms with the given median, rounded to 0.1 ms."""
    return np.round(rng.lognormal(np.log(median), sigma, n), 1)


@dataclass
class _LogRows:
    """Log rows in public form plus the internal arrays the KPIs are computed from (all ``(N,)``)."""

    public: pd.DataFrame
    minute: np.ndarray
    stage: np.ndarray  # -1 when the row has no stage
    amount_cents: np.ndarray  # order rows: the order total; else 0
    cohort_minute: np.ndarray  # funnel rows: minute of their checkout attempt; else -1
    cohort_stage: np.ndarray  # funnel rows: merchant's stage at that minute; else -1


def _rows(ms: np.ndarray, merchant: np.ndarray, *, service: str, endpoint: str, status: Any, level: Any,
          message: pd.Series, event: Any = None, order_id: Any = None, latency: Any = np.nan,
          amount_cents: Any = 0, stage: Any = -1, cohort: Any = -1) -> pd.DataFrame:
    """One block of log rows; scalars broadcast to ``len(ms)``.

    ``stage`` -1 means the merchant's stage at ``ms``; ``cohort`` is the minute of the checkout
    attempt a funnel row belongs to (-1 for rows outside the funnel); ``amount_cents`` the order total.
    """
    n = len(ms)

    def col(value: Any, dtype: Any) -> np.ndarray:
        if value is None:
            return np.full(n, None, dtype=object)
        return np.broadcast_to(np.asarray(value, dtype=dtype), (n,))

    return pd.DataFrame({
        "_ms": np.asarray(ms, dtype=np.int64),
        "_merchant": np.asarray(merchant, dtype=np.int64),
        "_stage": col(stage, np.int64),
        "_amount": col(amount_cents, np.int64),
        "_cohort": col(cohort, np.int64),
        "service": pd.Series(col(service, object), dtype="str"),
        "endpoint": pd.Series(col(endpoint, object), dtype="str"),
        "status": col(status, np.int64),
        "level": pd.Series(col(level, object), dtype="str"),
        "message": message.to_numpy(dtype=object),
        "event": pd.Series(col(event, object), dtype="str"),
        "order_id": pd.Series(col(order_id, object), dtype="str"),
        "latency_ms": col(latency, np.float64),
    })


def _checkout_rows(rng: np.random.Generator, world: _World, f: _Funnel,
                   slow: _Incident) -> list[pd.DataFrame]:
    """Gateway rows, one per attempt: 201 session (with or without items), 401/403, 500, 504."""
    n = f.merchant.size
    merchant = _txt(world.ids[f.merchant])
    session = _txt(f.session_id)
    cart, request = (_txt(_hex_ids(rng, n, p)) for p in ("cart_", "req_"))
    slow_factor = np.where(slow.active(f.t_session, f.merchant), slow.params["latency_factor"], 1.0)
    b = world.base
    median = np.asarray(b.gateway_latency_ms)[f.stage]
    latency = np.round(_lognormal_ms(rng, median, b.gateway_latency_sigma, n) * slow_factor, 1)
    if world.effects is not None:
        minute = np.clip(f.t_session // MINUTE_MS, 0, world.n_minutes - 1)
        latency = world.effects.slow_down(latency, minute, f.stage, b)
    key = _txt(_hex_ids(rng, n, "", 2))
    s = f.gateway_status
    blocks = []

    ok = f.created & ~f.empty
    msg = ("checkout session created: 201 Created session_id=" + session + " cart_id=" + cart + " merchant="
           + merchant + " items=" + _txt(f.items) + " amount=" + _money(f.amount_cents) + " USD")
    blocks.append((ok, 201, "INFO", msg, EVENT_SESSION_CREATED, latency))
    msg = ("checkout session created with empty cart cart_id=" + cart + " session_id=" + session
           + " merchant=" + merchant + " items=0 (cart service returned no line items)")
    blocks.append((f.empty, 201, "WARN", msg, EVENT_SESSION_CREATED, latency))
    msg = ("request rejected: 401 Unauthorized (invalid API key: token expired) merchant=" + merchant
           + " key_id=pk_live_..." + key + " request_id=" + request)
    blocks.append((s == 401, 401, "WARN", msg, None, _lognormal_ms(rng, 22.0, 0.3, n)))
    msg = ("request rejected: 403 Forbidden (invalid API key for this merchant account) merchant=" + merchant
           + " key_id=pk_live_..." + key + " request_id=" + request)
    blocks.append((s == 403, 403, "WARN", msg, None, _lognormal_ms(rng, 22.0, 0.3, n)))
    msg = ("upstream error: 500 Internal Server Error (checkout-service connection reset) merchant="
           + merchant + " request_id=" + request)
    blocks.append((s == 500, 500, "ERROR", msg, None, _lognormal_ms(rng, 90.0, 0.4, n)))
    msg = ("upstream timeout: 504 Gateway Timeout (checkout-service did not respond within 30s) merchant="
           + merchant + " request_id=" + request)
    blocks.append((s == 504, 504, "ERROR", msg, None, 30_000.0 + np.round(rng.uniform(0, 400, n), 1)))
    return [
        _rows(f.t_session[m], f.merchant[m], service=GATEWAY, endpoint=CHECKOUT_ENDPOINT, status=code,
              level=level, message=message[m].reset_index(drop=True), event=event, latency=np.asarray(lat)[m],
              cohort=f.t_session[m] // MINUTE_MS)
        for m, code, level, message, event, lat in blocks
    ]


def _payment_rows(rng: np.random.Generator, world: _World, f: _Funnel,
                  slow: _Incident) -> list[pd.DataFrame]:
    """Payment rows: 200 payment.succeeded (with order_id) or 402 payment.failed."""
    p = f.paid
    n = int(p.sum())
    merchant = _txt(world.ids[f.merchant[p]])
    payment, session = _txt(_hex_ids(rng, n, "pay_")), _txt(f.session_id[p])
    amount = _money(f.amount_cents[p])
    factor = np.where(slow.active(f.t_payment[p], f.merchant[p]), slow.params["latency_factor"], 1.0)
    b = world.base
    median = np.asarray(b.payment_latency_ms)[f.stage[p]]
    latency = np.round(_lognormal_ms(rng, median, b.payment_latency_sigma, n) * factor, 1)
    if world.effects is not None:
        latency = world.effects.slow_down(latency, None, None, b)
    ok = f.payment_ok[p]
    order_id = f.order_id[p]
    succeeded = ("payment captured: 200 OK payment_id=" + payment + " order_id=" + _txt(order_id)
                 + " session_id=" + session + " merchant=" + merchant + " amount=" + amount + " USD")
    failed = ("card declined (" + _txt(DECLINE_REASONS[f.decline[p]]) + "): 402 Payment Required payment_id="
              + payment + " session_id=" + session + " merchant=" + merchant + " amount=" + amount + " USD")
    ms, m, cohort = f.t_payment[p], f.merchant[p], f.t_session[p] // MINUTE_MS
    return [
        _rows(ms[ok], m[ok], service=PAYMENTS, endpoint=PAYMENT_ENDPOINT, status=200, level="INFO",
              message=succeeded[ok].reset_index(drop=True), event=EVENT_PAYMENT_SUCCEEDED,
              order_id=order_id[ok], latency=latency[ok], cohort=cohort[ok]),
        _rows(ms[~ok], m[~ok], service=PAYMENTS, endpoint=PAYMENT_ENDPOINT, status=402, level="WARN",
              message=failed[~ok].reset_index(drop=True), event=EVENT_PAYMENT_FAILED, latency=latency[~ok],
              cohort=cohort[~ok]),
    ]


def _order_rows(rng: np.random.Generator, world: _World, f: _Funnel) -> list[pd.DataFrame]:
    """order.created rows (201) with the order total, and the order's webhook delivery."""
    o = f.order
    n = int(o.sum())
    merchant = _txt(world.ids[f.merchant[o]])
    order_id = f.order_id[o]
    oid = _txt(order_id)
    orders = _rows(
        f.t_order[o], f.merchant[o], service=ORDERS, endpoint=ORDER_ENDPOINT, status=201, level="INFO",
        message="order created: 201 Created order_id=" + oid + " merchant=" + merchant + " total="
        + _money(f.amount_cents[o]) + " USD items=" + _txt(f.items[o]) + " source=checkout",
        event=EVENT_ORDER_CREATED, order_id=order_id, latency=_lognormal_ms(rng, 35.0, 0.5, n),
        amount_cents=f.amount_cents[o], cohort=f.t_session[o] // MINUTE_MS,
    )
    status = f.webhook_status[o]
    delivery = _txt(_hex_ids(rng, n, "dlv_"))
    tail = " merchant=" + merchant + " order_id=" + oid + " delivery_id=" + delivery
    status_text = pd.Series(status).map(STATUS_TEXT).astype("str")
    messages = {
        200: "webhook delivered: 200 OK event=order.created" + tail + " attempt=1",
        403: "webhook delivery failed: 403 Forbidden (signature verification failed)" + tail,
        500: "webhook delivery failed: " + _txt(status) + " " + status_text
             + " (merchant endpoint error)" + tail + " attempt=1, will retry",
    }
    latency = {200: _lognormal_ms(rng, 160.0, 0.6, n), 403: _lognormal_ms(rng, 45.0, 0.4, n),
               500: _lognormal_ms(rng, 900.0, 0.7, n)}
    blocks = [orders]
    for code, mask in ((200, status == 200), (403, status == 403), (500, status >= 500)):
        blocks.append(_rows(
            f.t_webhook[o][mask], f.merchant[o][mask], service=WEBHOOKS, endpoint=WEBHOOK_ENDPOINT,
            status=status[mask], level="INFO" if code == 200 else "ERROR",
            message=messages[code][mask].reset_index(drop=True),
            event=EVENT_WEBHOOK_DELIVERED if code == 200 else None,
            order_id=order_id[mask], latency=latency[code][mask],
        ))
    return blocks


def _lookup_rows(rng: np.random.Generator, world: _World, f: _Funnel) -> list[pd.DataFrame]:
    """``GET /v1/orders/{id}``: 200 for existing orders, 404 for unknown ids."""
    blocks = []
    for mask, times, ids, code in (
        (f.lookup, f.t_lookup, f.order_id, 200),
        (f.lookup_404, f.t_lookup_404, _unknown_ids(rng, f.lookup_404), 404),
    ):
        n = int(mask.sum())
        merchant = _txt(world.ids[f.merchant[mask]])
        blocks.append(_rows(
            times[mask], f.merchant[mask], service=GATEWAY, endpoint=LOOKUP_ENDPOINT, status=code,
            level="INFO" if code == 200 else "WARN",
            message="GET /v1/orders/" + _txt(ids[mask]) + ": " + str(code) + " " + STATUS_TEXT[code]
            + " merchant=" + merchant,
            order_id=ids[mask] if code == 200 else None, latency=_lognormal_ms(rng, 40.0, 0.5, n),
        ))
    fx = world.effects
    if fx is not None:  # background 503s and declared maintenance of the lookup endpoint
        minute = np.clip(f.t_lookup // MINUTE_MS, 0, world.n_minutes - 1)
        hit = f.lookup & (fx.rng.random(f.lookup.size) < world.base.lookup_5xx + fx.lookup_503[minute])
        blocks.append(_rows(
            f.t_lookup[hit], f.merchant[hit], service=GATEWAY, endpoint=LOOKUP_ENDPOINT, status=503,
            level="ERROR", message="GET /v1/orders/" + _txt(f.order_id[hit]) + ": 503 Service Unavailable"
            + " merchant=" + _txt(world.ids[f.merchant[hit]]), latency=_lognormal_ms(fx.rng, 5.0, 0.3, int(hit.sum()))))
    return blocks


def _deploy_rows(world: _World) -> pd.DataFrame | None:
    """INFO lines of the background's routine deploys (start and end of each), or None."""
    fx = world.effects
    if fx is None or not fx.deploys:
        return None
    start, end, stage = (np.array(x, dtype=np.int64) for x in zip(*fx.deploys))
    ms = np.concatenate([start, end]) * MINUTE_MS + 1_000
    st = np.concatenate([stage, stage])
    what = np.repeat(np.array(["started", "finished"]), start.size)
    version = np.tile(np.array([f"v5.{i}.0" for i in range(start.size)]), 2)
    return _rows(ms, np.full(ms.size, -1), service="checkout-service", endpoint=RELEASE_ENDPOINT, status=200,
                 level="INFO", message="rolling deploy " + _txt(version) + " " + _txt(what) + " on stage="
                 + _txt(np.array(STAGES)[st]), stage=st)


def _unknown_ids(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Random order ids at ``mask`` (``(n,)`` bool), empty strings elsewhere."""
    ids = np.zeros(mask.size, dtype="U16")
    ids[mask] = _hex_ids(rng, int(mask.sum()), "ord_")
    return ids


def _benign_times(rng: np.random.Generator, world: _World, incidents: list[_Incident],
                  per_day: float) -> np.ndarray:
    """Random working-hour times (ms), ~``per_day`` a day, at least 3 h away from any incident start."""
    n = rng.poisson(per_day, world.days)
    day_ms = np.repeat(np.arange(world.days), n) * DAY_MINUTES * MINUTE_MS
    ms = day_ms + rng.integers(8 * 3_600_000, 18 * 3_600_000, int(n.sum()))
    starts = np.array([i.start * MINUTE_MS for i in incidents])
    return ms[np.abs(ms[:, None] - starts[None, :]).min(axis=1) > 3 * 3_600_000]


def _release_rows(rng: np.random.Generator, world: _World, incidents: list[_Incident]) -> pd.DataFrame:
    """Storefront release INFO lines: benign ones plus the cart_empty release just before its start.

    Versions increase with time; the incident's version is stored in its ``params["release"]``.
    """
    cart = _incident(incidents, "cart_empty")
    ms = np.append(_benign_times(rng, world, incidents, 0.8),
                   cart.start * MINUTE_MS - rng.integers(30_000, 120_000))
    stage = np.append(rng.integers(0, len(STAGES), ms.size - 1), STAGES.index(cart.stages[0]))
    order = np.argsort(ms, kind="stable")
    minor = int(rng.integers(14, 20))
    versions = np.array([f"v2.{minor + i // 4}.{i % 4}" for i in range(ms.size)])
    cart.params["release"] = str(versions[np.flatnonzero(order == ms.size - 1)[0]])
    ms, stage = ms[order], stage[order]
    return _rows(
        ms, np.full(ms.size, -1), service=STOREFRONT, endpoint=RELEASE_ENDPOINT, status=200, level="INFO",
        message="frontend release " + _txt(versions) + " deployed to stage=" + _txt(np.array(STAGES)[stage]),
        stage=stage,
    )


def _rotation_rows(rng: np.random.Generator, world: _World, incidents: list[_Incident]) -> pd.DataFrame:
    """Webhook secret rotation INFO lines: benign ones plus one per webhook_403 merchant before its start."""
    webhook = _incident(incidents, "webhook_403")
    benign = _benign_times(rng, world, incidents, 0.5)
    before_start = webhook.start * MINUTE_MS - rng.integers(5_000, 60_000, webhook.merchants.size)
    ms = np.concatenate([benign, before_start])
    merchant = np.concatenate([rng.integers(0, world.n_merchants, benign.size), webhook.merchants])
    return _rows(
        ms, merchant, service=WEBHOOKS, endpoint=SECRET_ROTATION_ENDPOINT, status=200, level="INFO",
        message="webhook signing secret rotated for merchant=" + _txt(world.ids[merchant]) + " key_version=v"
        + _txt(rng.integers(2, 9, ms.size)),
    )


def _incident(incidents: list[_Incident], name: str) -> _Incident:
    return next(i for i in incidents if i.name == name)


def _build_logs(rng: np.random.Generator, world: _World, f: _Funnel, incidents: list[_Incident]) -> _LogRows:
    """All log rows, sorted by time, in ``contracts.LOGS`` form; rows at or after the end are dropped."""
    slow = _incident(incidents, "slow_checkout")
    blocks = [
        *_checkout_rows(rng, world, f, slow),
        *_payment_rows(rng, world, f, slow),
        *_order_rows(rng, world, f),
        *_lookup_rows(rng, world, f),
        _release_rows(rng, world, incidents),
        _deploy_rows(world),
        _rotation_rows(rng, world, incidents),
    ]
    df = pd.concat([b for b in blocks if b is not None], ignore_index=True)
    df = df[df["_ms"].to_numpy() < world.horizon_ms]
    df = df.iloc[np.argsort(df["_ms"].to_numpy(), kind="stable")].reset_index(drop=True)

    ms = df["_ms"].to_numpy()
    merchant = df["_merchant"].to_numpy()
    has_merchant = merchant >= 0
    stage = df["_stage"].to_numpy().copy()
    derive = (stage < 0) & has_merchant
    stage[derive] = world.stage_of(ms[derive], merchant[derive])
    names = np.array(STAGES, dtype=object)
    public = pd.DataFrame({
        "ts": pd.to_datetime(ms * 1_000_000 + _epoch_ns(world.start), unit="ns", utc=True),
        "service": df["service"],
        "endpoint": df["endpoint"],
        "status": df["status"].astype(np.int64),
        "level": df["level"],
        "message": df["message"].astype("str"),
        "merchant_id": pd.Series(
            np.where(has_merchant, world.ids.astype(object)[np.maximum(merchant, 0)], None), dtype="str"),
        "stage": pd.Series(np.where(stage >= 0, names[np.maximum(stage, 0)], None), dtype="str"),
        "event": df["event"],
        "order_id": df["order_id"],
        "latency_ms": df["latency_ms"].astype(np.float64),
    })[LOG_COLUMNS]
    cohort = df["_cohort"].to_numpy()
    in_funnel = cohort >= 0
    cohort_stage = np.full(cohort.size, -1, dtype=np.int64)
    cohort_stage[in_funnel] = world.stage_at[cohort[in_funnel], merchant[in_funnel]]
    return _LogRows(public=public, minute=ms // MINUTE_MS, stage=stage,
                    amount_cents=df["_amount"].to_numpy(), cohort_minute=cohort, cohort_stage=cohort_stage)


def _epoch_ns(ts: datetime) -> int:
    return int(pd.Timestamp(ts).value)


# --------------------------------------------------------------------------------------------------
# 6. KPIs
# --------------------------------------------------------------------------------------------------
_KPI_METRICS = (
    METRIC_SESSIONS, METRIC_ATTEMPTS, METRIC_SUCCESS_RATE, METRIC_ORDERS, METRIC_CONVERSION, METRIC_AOV,
    METRIC_P95_LATENCY,
)


def _per_stage(world: _World, minute: np.ndarray, stage: np.ndarray,
               weights: np.ndarray | None = None) -> np.ndarray:
    """Sum ``weights`` (default 1) per minute and stage: ``(T, 4)``, last column = all stages."""
    keep = stage >= 0
    key = minute[keep] * len(STAGES) + stage[keep]
    w = None if weights is None else weights[keep]
    out = np.bincount(key, weights=w, minlength=world.n_minutes * len(STAGES))
    out = out.reshape(world.n_minutes, len(STAGES))
    return np.column_stack([out, out.sum(axis=1)]).astype(np.float64)


def _p95_per_stage(world: _World, minute: np.ndarray, stage: np.ndarray,
                   latency: np.ndarray) -> np.ndarray:
    """95th percentile (linear interpolation) per minute and stage, ``(T, 4)``, NaN where no rows."""
    n_st = len(KPI_STAGES)
    key = np.concatenate([minute * n_st + stage, minute * n_st + n_st - 1])
    q = pd.Series(np.concatenate([latency, latency])).groupby(key).quantile(0.95)
    out = np.full(world.n_minutes * n_st, np.nan)
    out[q.index.to_numpy()] = q.to_numpy()
    return out.reshape(world.n_minutes, n_st)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def _build_kpis(world: _World, sessions: np.ndarray, rows: _LogRows) -> pd.DataFrame:
    """1-minute KPIs per stage and ``all`` in long form, computed from the log rows.

    ``sessions`` ``(T, M)`` counts (sessions are not logged). Counts (``checkout_attempts``,
    ``orders``) and ``avg_order_value``/``p95_latency_ms`` use log rows by the minute of their ``ts``
    and their ``stage``. The two rates are cohort rates, so they stay in [0, 1]: payments succeeded
    and orders are attributed to the minute (and stage) of the checkout attempt they came from (join
    a payment to its attempt by ``session_id`` in the message, an order to its payment by
    ``order_id``). Ratios are omitted where the denominator is 0.
    """
    logs = rows.public
    event = logs["event"].to_numpy(dtype=object)
    endpoint = logs["endpoint"].to_numpy(dtype=object)
    minute, stage = rows.minute, rows.stage
    grid = np.repeat(np.arange(world.n_minutes), world.n_merchants)

    def count(mask: np.ndarray) -> np.ndarray:
        return _per_stage(world, minute[mask], stage[mask])

    def cohort_count(mask: np.ndarray) -> np.ndarray:
        return _per_stage(world, rows.cohort_minute[mask], rows.cohort_stage[mask])

    n_sessions = _per_stage(world, grid, world.stage_at.ravel().astype(np.int64),
                            sessions.ravel().astype(np.float64))
    attempts = count(endpoint == CHECKOUT_ENDPOINT)
    is_order = event == EVENT_ORDER_CREATED
    orders = count(is_order)
    succeeded_cohort = cohort_count(event == EVENT_PAYMENT_SUCCEEDED)
    orders_cohort = cohort_count(is_order)
    revenue = _per_stage(world, minute[is_order], stage[is_order], rows.amount_cents[is_order] / 100.0)
    timed = np.isin(endpoint, (CHECKOUT_ENDPOINT, PAYMENT_ENDPOINT))
    p95 = _p95_per_stage(world, minute[timed], stage[timed], logs["latency_ms"].to_numpy()[timed])

    values = np.stack([
        n_sessions,
        attempts,
        np.round(_ratio(succeeded_cohort, attempts), 6),
        orders,
        np.round(_ratio(orders_cohort, n_sessions), 6),
        np.round(_ratio(revenue, orders), 2),
        np.round(p95, 1),
    ], axis=1)  # (T, metrics, stages)
    valid = ~np.isnan(values)
    t_idx, m_idx, s_idx = np.nonzero(valid)
    minute_ns = np.arange(world.n_minutes, dtype=np.int64) * MINUTE_MS * 1_000_000 + _epoch_ns(world.start)
    return pd.DataFrame({
        "ts": pd.to_datetime(minute_ns[t_idx], unit="ns", utc=True),
        "metric": pd.Series(np.array(_KPI_METRICS, dtype=object)[m_idx], dtype="str"),
        "value": values[valid],
        "stage": pd.Series(np.array(KPI_STAGES, dtype=object)[s_idx], dtype="str"),
    })


# --------------------------------------------------------------------------------------------------
# 7. Tickets
# --------------------------------------------------------------------------------------------------
PRIORITIES = np.array(["low", "normal", "high", "urgent"])
CHANNELS = np.array(["email", "chat", "phone", "web"])
_BACKGROUND_PRIORITY = (0.35, 0.50, 0.12, 0.03)
_INCIDENT_PRIORITY = (0.03, 0.17, 0.45, 0.35)
_BACKGROUND_CHANNEL = (0.45, 0.25, 0.10, 0.20)
_INCIDENT_CHANNEL = (0.30, 0.30, 0.20, 0.20)


@dataclass
class _Draft:
    ms: int
    merchant: int
    subject: str
    body: str
    priority: str
    channel: str
    incident: int = -1  # index into incidents, -1 for background chatter


def _ticket_context(rng: np.random.Generator, world: _World, merchant: int, ms: int,
                    order: str | None) -> dict[str, Any]:
    """Values for the ticket template placeholders (see :mod:`opsloop.packs.checkout.ticket_templates`)."""
    when = world.start + timedelta(milliseconds=int(ms))
    names = rng.choice(tt.FIRST_NAMES, 2, replace=False)
    return {
        "store": world.store_names[merchant],
        "merchant": world.ids[merchant],
        "order": order or str(_hex_ids(rng, 1, "ord_")[0]),
        "amount": f"{rng.lognormal(np.log(62), 0.5):.2f}",
        "when": when.strftime("%H:%M UTC"),
        "n": int(rng.integers(3, 25)),
        "plugin": str(rng.choice(tt.PLUGINS)),
        "invoice": f"INV-{when.year}-{int(rng.integers(1000, 99999)):05d}",
        "date": (when - timedelta(days=int(rng.integers(1, 20)))).strftime("%b %d").replace(" 0", " "),
        "name": str(names[0]),
        "colleague": str(names[1]),
        "country": str(rng.choice(tt.COUNTRIES)),
    }


def _background_tickets(rng: np.random.Generator, world: _World) -> list[_Draft]:
    """~40 tickets per weekday (~15 on weekends), mostly 08:00–18:00 UTC, random topics and merchants."""
    topics = sorted(tt.BACKGROUND)
    p_merchant = np.sqrt(world.weights) / np.sqrt(world.weights).sum()
    drafts = []
    for day in range(world.days):
        weekend = (world.start.weekday() + day) % 7 >= 5
        n = int(rng.poisson(15 if weekend else 40))
        hours = np.where(rng.random(n) < 0.88, 8 + 10 * rng.beta(2.2, 2.2, n), rng.uniform(0, 24, n))
        for h in np.sort(hours):
            ms = int(day * DAY_MINUTES * MINUTE_MS + h * 3_600_000) // 1000 * 1000
            merchant = int(rng.choice(world.n_merchants, p=p_merchant))
            templates = tt.BACKGROUND[topics[int(rng.integers(len(topics)))]]
            subject, body = templates[int(rng.integers(len(templates)))]
            ctx = _ticket_context(rng, world, merchant, ms, None)
            drafts.append(_Draft(
                ms, merchant, subject.format(**ctx),
                (str(rng.choice(tt.GREETINGS)) + body + str(rng.choice(tt.SIGNOFFS))).format(**ctx),
                str(rng.choice(PRIORITIES, p=_BACKGROUND_PRIORITY)),
                str(rng.choice(CHANNELS, p=_BACKGROUND_CHANNEL)),
            ))
    return drafts


def _incident_evidence(f: _Funnel, inc: _Incident) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order ids a customer could quote for ``inc``: ``(merchant, time ms, order_id)`` arrays."""
    if inc.name == "webhook_403":
        mask = f.order & (f.webhook_status == 403)
        return f.merchant[mask], f.t_webhook[mask], f.order_id[mask]
    if inc.name == "missing_order_created":
        mask = f.payment_ok & ~f.order & inc.active(f.t_payment, f.merchant)
        return f.merchant[mask], f.t_payment[mask], f.order_id[mask]
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, np.zeros(0, dtype=str)


def _incident_tickets(rng: np.random.Generator, world: _World, f: _Funnel, inc: _Incident,
                      index: int) -> list[_Draft]:
    """15–40 tickets from the incident's merchants, from 5–30 min after start until ~2 h after end."""
    n = int(rng.integers(15, 41))
    first = inc.start * MINUTE_MS + int(rng.integers(5, 31)) * MINUTE_MS
    last = min(inc.end * MINUTE_MS + int(rng.integers(100, 141)) * MINUTE_MS, world.horizon_ms - MINUTE_MS)
    times = np.sort(first + (last - first) * rng.beta(1.3, 2.2, n)).astype(np.int64) // 1000 * 1000
    times[0] = first
    p = np.sqrt(world.weights[inc.merchants])
    merchants = rng.choice(inc.merchants, n, p=p / p.sum())
    ev_merchant, ev_time, ev_order = _incident_evidence(f, inc)
    texts = tt.INCIDENTS[inc.name]
    drafts = []
    for ms, merchant in zip(times, merchants):
        seen = np.flatnonzero((ev_merchant == merchant) & (ev_time < ms))
        order = str(ev_order[rng.choice(seen)]) if seen.size else None
        noticed = int(rng.integers(inc.start, max(inc.start + 1, min(ms // MINUTE_MS, inc.end)))) * MINUTE_MS
        ctx = _ticket_context(rng, world, int(merchant), noticed, order)
        body = (str(rng.choice(tt.GREETINGS)) + str(rng.choice(texts["bodies"])) + str(rng.choice(tt.URGENCY))
                + str(rng.choice(tt.SIGNOFFS)))
        drafts.append(_Draft(
            int(ms), int(merchant), str(rng.choice(texts["subjects"])).format(**ctx), body.format(**ctx),
            str(rng.choice(PRIORITIES, p=_INCIDENT_PRIORITY)), str(rng.choice(CHANNELS, p=_INCIDENT_CHANNEL)),
            index,
        ))
    return drafts


def _build_tickets(rng: np.random.Generator, world: _World, f: _Funnel,
                   incidents: list[_Incident]) -> pd.DataFrame:
    """All tickets sorted by ``created_at`` with ids ``T-000001``…; fills each incident's ``ticket_ids``."""
    drafts = _background_tickets(rng, world)
    for i, inc in enumerate(incidents):
        if inc.merchants.size:  # a dormant incident (quiet and benign backgrounds) writes no tickets
            drafts.extend(_incident_tickets(rng, world, f, inc, i))
    drafts.sort(key=lambda d: d.ms)  # stable: ties keep generation order
    ids = [f"T-{i + 1:06d}" for i in range(len(drafts))]
    for tid, d in zip(ids, drafts):
        if d.incident >= 0:
            incidents[d.incident].ticket_ids.append(tid)
    ms = np.array([d.ms for d in drafts], dtype=np.int64)
    merchant = np.array([d.merchant for d in drafts], dtype=np.int64)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype="str"),
        "created_at": pd.to_datetime(ms * 1_000_000 + _epoch_ns(world.start), unit="ns", utc=True),
        "subject": pd.Series([d.subject for d in drafts], dtype="str"),
        "body": pd.Series([d.body for d in drafts], dtype="str"),
        "merchant_id": pd.Series(world.ids[merchant], dtype="str"),
        "stage": pd.Series(np.array(STAGES)[world.stage_of(ms, merchant)], dtype="str"),
        "priority": pd.Series([d.priority for d in drafts], dtype="str"),
        "channel": pd.Series([d.channel for d in drafts], dtype="str"),
    })[TICKET_COLUMNS]
