"""KPIs from Prometheus: PromQL queries evaluated over its HTTP API (``/api/v1/query_range``).

Each declared :class:`~opsloop.packs.model.PromQuery` is evaluated over ``[since, window.end)`` at
``step``; every series of its matrix result becomes one KPI series of the long KPI frame
(:data:`opsloop.data.contracts.KPIS`): ``ts, metric, value`` with ``metric`` = the query's name,
plus one label column per result label (``__name__`` dropped; a label named like a column of the
frame kept as ``exported_<name>``, as Prometheus does) and the query's constant labels.
Evaluation times are multiples of ``step`` seconds since the epoch (the first at or after
``since``), so consecutive windows read the same points. Non-finite samples (``NaN``, ``±Inf``:
e.g. a ratio over zero traffic) are left out, as a missing point. A range longer than Prometheus'
11,000 points per series is fetched in consecutive chunks.

API reference: https://prometheus.io/docs/prometheus/latest/querying/api/#range-queries (a response
is ``{"status": "success"|"error", "data": {"resultType": "matrix", "result": [...]},
"errorType", "error"}``; 400 for bad parameters or PromQL, 422 when the expression cannot be
executed, 503 on a timeout or abort).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd
from pydantic import ValidationError

from opsloop.data.contracts import KPIS
from opsloop.domain import Window, utc
from opsloop.packs.model import PromQuery
from opsloop.pipeline.observe import Signals, empty_frame
from opsloop.sources.base import SourceError

__all__ = ["PromQuery", "PrometheusSource", "parse_queries", "prometheus_source"]

#: Prometheus refuses a range query of more points per series than this.
MAX_POINTS = 11_000
#: HTTP statuses worth retrying: Prometheus overloaded, timed out, or a proxy in front of it failed.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Result labels that would clash with the KPI frame's own columns; kept as ``exported_<name>``.
RESERVED = frozenset(KPIS.columns)


class PrometheusSource:
    """A :class:`~opsloop.sources.base.Source` of KPI series from one Prometheus server.

    ``url``: the server's base URL (``http://127.0.0.1:9090``); ``queries``: what to read;
    ``step``: the resolution (seconds, or a ``timedelta``); ``timeout``: seconds per HTTP request
    (also sent as the query's evaluation ``timeout``); ``retries``: further attempts after a
    connection error, a timeout or a 429/5xx answer, with exponential backoff starting at
    ``backoff`` seconds (1, 2, 4 ... times it). Bad PromQL (400/422) is never retried.
    :meth:`read` raises :class:`~opsloop.sources.base.SourceError` whose one-line message names the
    query and the failure. ``transport``: an ``httpx`` transport (tests, proxies); default a plain
    connection.
    """

    def __init__(self, url: str, queries: Sequence[PromQuery], step: float | timedelta = 60.0,
                 timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not queries:
            raise ValueError("prometheus: no queries given")
        names = [q.name for q in queries]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"prometheus: duplicate query names {dups}")
        self.url = url.rstrip("/")
        self.queries = list(queries)
        self.step = step.total_seconds() if isinstance(step, timedelta) else float(step)
        if not self.step > 0:
            raise ValueError(f"prometheus: step must be positive seconds, got {step!r}")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.name = f"prometheus:{self.url}"
        self._client = httpx.Client(base_url=self.url, timeout=self.timeout, transport=transport)
        self._newest: datetime | None = None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def watermark(self) -> datetime | None:
        """The newest sample time (aware UTC) any read returned, ``None`` before one did."""
        return self._newest

    def read(self, window: Window, since: datetime) -> Signals:
        """The KPI frame of every query over ``[since, window.end)`` (see the module docstring).

        Raises :class:`SourceError` naming the query for an unreachable server, a timeout after the
        retries, an HTTP error (status and Prometheus' ``error`` field) or a non-matrix result.
        """
        start, end = _aligned(utc(since), self.step), window.end
        if start >= end:
            raise ValueError(f"prometheus: since {since.isoformat()} is not before window end "
                             f"{end.isoformat()}")
        frames = [self._series_frame(q, start, end) for q in self.queries]
        frames = [f for f in frames if not f.empty]
        if frames:
            kpis = pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable", ignore_index=True)
            newest = kpis["ts"].max().to_pydatetime()
            self._newest = newest if self._newest is None else max(self._newest, newest)
        else:
            kpis = empty_frame(KPIS)
        return Signals(window=window, kpis=kpis, sources=[self.name])

    # -- one query ------------------------------------------------------------------------------
    def _series_frame(self, q: PromQuery, start: datetime, end: datetime) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        span = timedelta(seconds=self.step * (MAX_POINTS - 1))
        lo = start
        while lo < end:
            hi = min(lo + span, end)
            for series in self._query_range(q, lo, hi):
                try:
                    rows += self._rows(q, series, lo.timestamp(), end.timestamp())
                except (TypeError, ValueError, AttributeError) as exc:
                    raise SourceError(f"prometheus {self.url} query {q.name!r} ({q.query}): malformed series "
                                      f"in the result: {_first_line(exc)}") from None
            lo = hi + timedelta(seconds=self.step) if hi < end else end
        if not rows:
            return pd.DataFrame()
        frame = pd.DataFrame.from_records(rows)
        ms = (frame["ts"] * 1000.0).round().astype("int64")
        frame["ts"] = pd.to_datetime(ms, unit="ms", utc=True).astype("datetime64[ns, UTC]")
        frame = frame.drop_duplicates(subset=[c for c in frame.columns if c != "value"], keep="first")
        for col in frame.columns:
            if col not in ("ts", "metric", "value"):
                frame[col] = frame[col].astype("str").mask(frame[col].isna())
        frame["metric"] = frame["metric"].astype("str")
        return frame

    @staticmethod
    def _rows(q: PromQuery, series: dict[str, Any], lo: float, end: float) -> list[dict[str, Any]]:
        """The finite samples of one result series with time in ``[lo, end)`` (epoch seconds)."""
        labels = {(f"exported_{k}" if k in RESERVED else k): str(v)
                  for k, v in (series.get("metric") or {}).items() if k != "__name__"}
        labels.update(q.labels)
        out = []
        for ts, raw in series.get("values") or []:
            value, t = float(raw), float(ts)
            if math.isfinite(value) and lo <= t < end:
                out.append({"ts": t, "metric": q.name, "value": value, **labels})
        return out

    def _query_range(self, q: PromQuery, start: datetime, end: datetime) -> list[dict[str, Any]]:
        params = {"query": q.query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
                  "step": f"{self.step:g}", "timeout": f"{self.timeout:g}s"}
        where = f"prometheus {self.url} query {q.name!r} ({q.query})"
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._client.get("/api/v1/query_range", params=params)
            except httpx.ConnectError as exc:
                failure = f"cannot connect: {_first_line(exc) or 'connection refused'}"
                continue
            except httpx.TimeoutException:
                failure = f"timed out after {self.timeout:g} s"
                continue
            except httpx.HTTPError as exc:
                failure = f"HTTP error: {_first_line(exc) or type(exc).__name__}"
                continue
            body = _json(resp)
            if resp.status_code in RETRY_STATUSES:
                failure = _http_failure(resp, body)
                continue
            if resp.status_code != 200 or body.get("status") != "success":
                raise SourceError(f"{where}: {_http_failure(resp, body)}")
            data = body.get("data") or {}
            if data.get("resultType") != "matrix":
                raise SourceError(f"{where}: expected a matrix result, got {data.get('resultType')!r}")
            return list(data.get("result") or [])
        tries = f" (after {self.retries + 1} attempts)" if self.retries else ""
        raise SourceError(f"{where}: {failure}{tries}")


def _aligned(ts: datetime, step: float) -> datetime:
    """``ts`` rounded up to a multiple of ``step`` seconds since the epoch: Prometheus evaluates at
    ``start + k * step``, so aligned starts give every window the same sample times."""
    epoch = ts.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / step - 1e-9) * step, tz=ts.tzinfo)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _http_failure(resp: httpx.Response, body: dict[str, Any]) -> str:
    """``HTTP 400 bad_data: parse error ...`` (Prometheus' ``errorType`` and ``error`` when given)."""
    error = str(body.get("error") or "").strip()
    kind = str(body.get("errorType") or "").strip()
    if not error:
        error = (resp.text or resp.reason_phrase or "").strip()
    detail = " ".join(p for p in (kind + ":" if kind else "", error.splitlines()[0] if error else "") if p)
    return f"HTTP {resp.status_code}" + (f" {detail}" if detail else "")


def parse_queries(specs: Sequence[str]) -> list[PromQuery]:
    """Queries from ``NAME=PROMQL`` strings (as given on a command line): the text before the first
    ``=`` is the KPI metric name, the rest the PromQL, e.g.
    ``error_ratio=sum(rate(http_requests_total{code=~"5.."}[5m])) by (stage)``.

    Raises ``ValueError`` naming the entry (1-based) for a missing ``=``, an invalid metric name, an
    empty query or a duplicate name.
    """
    out: list[PromQuery] = []
    for i, spec in enumerate(specs, 1):
        name, sep, query = spec.partition("=")
        if not sep:
            raise ValueError(f"prometheus query {i} {spec!r}: expected NAME=PROMQL")
        try:
            q = PromQuery(name=name.strip(), query=query)
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"prometheus query {i} {spec!r}: {msg}") from None
        if any(o.name == q.name for o in out):
            raise ValueError(f"prometheus query {i} {spec!r}: duplicate name {q.name!r}")
        out.append(q)
    return out


def prometheus_source(url: str, specs: Sequence[str] = (), pack_queries: Sequence[PromQuery] = (),
                      step: float | timedelta = 60.0, timeout: float = 10.0,
                      retries: int = 2) -> PrometheusSource:
    """A :class:`PrometheusSource` for ``url`` reading the pack's queries (``pack_queries``, e.g.
    ``pack.prometheus``) and the ``NAME=PROMQL`` ``specs`` (see :func:`parse_queries`; a spec
    replaces a pack query of the same name). Raises ``ValueError`` with a one-line message for a bad
    URL, a bad spec, or no query at all."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"prometheus URL {url!r}: expected http(s)://host[:port]")
    given = parse_queries(specs)
    names = {q.name for q in given}
    queries = [q for q in pack_queries if q.name not in names] + given
    if not queries:
        raise ValueError("prometheus: no queries (declare `prometheus:` in the pack or give NAME=PROMQL)")
    return PrometheusSource(url, queries, step=step, timeout=timeout, retries=retries)

