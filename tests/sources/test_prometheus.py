"""PrometheusSource against a real Prometheus scraping a real exporter (prometheus-client)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from opsloop.domain import Window
from opsloop.packs import load_pack
from opsloop.packs.model import Pack, PromQuery
from opsloop.sources.base import Source, SourceError
from opsloop.sources.prometheus import PrometheusSource, parse_queries, prometheus_source
from tests.sources.conftest import free_port, wait_until


@pytest.fixture
def exporter():
    """A prometheus-client exporter on a free port: gauge ``queue_depth{stage}`` (headless 3,
    legacy 7) and ``temperature`` (21.5). Yields ``host:port``."""
    registry = CollectorRegistry()
    depth = Gauge("queue_depth", "Jobs waiting", ["stage"], registry=registry)
    depth.labels(stage="headless").set(3)
    depth.labels(stage="legacy").set(7)
    Gauge("temperature", "Degrees", registry=registry).set(21.5)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _scraped(url: str, query: str, series: int) -> bool:
    params = {"query": f"count_over_time({query}[1m])"}
    body = httpx.get(f"{url}/api/v1/query", params=params, timeout=2).json()
    result = body["data"]["result"]
    return len(result) >= series and all(float(r["value"][1]) >= 3 for r in result)


def test_reads_each_label_set_as_a_kpi_series(prometheus, exporter):
    prom = prometheus([exporter])
    wait_until(lambda: _scraped(prom.url, "queue_depth", 2), 15.0, "3 scrapes of the exporter")
    queries = parse_queries(["depth=queue_depth", "temp=temperature * 2"])
    source = PrometheusSource(prom.url, queries, step=1.0)
    assert isinstance(source, Source)
    end = datetime.now(UTC) + timedelta(seconds=1)
    window = Window(start=end - timedelta(seconds=30), end=end)
    signals = source.read(window, since=end - timedelta(minutes=1))

    kpis = signals.kpis
    assert list(kpis.columns[:3]) == ["ts", "metric", "value"]
    assert str(kpis["ts"].dtype) == "datetime64[ns, UTC]"
    assert kpis["ts"].is_monotonic_increasing and (kpis["ts"] < pd.Timestamp(end)).all()
    depth = kpis[kpis["metric"] == "depth"]
    by_stage = depth.groupby("stage")["value"].agg(["min", "max", "count"])
    assert by_stage.loc["headless", "min"] == by_stage.loc["headless", "max"] == 3.0
    assert by_stage.loc["legacy", "min"] == by_stage.loc["legacy", "max"] == 7.0
    assert (by_stage["count"] >= 3).all()
    assert set(depth["job"]) == {"exporter"} and set(depth["instance"]) == {exporter}
    assert "__name__" not in kpis.columns
    temp = kpis[kpis["metric"] == "temp"]
    assert len(temp) >= 3 and set(temp["value"]) == {43.0} and temp["stage"].isna().all()
    # samples on multiples of the step, one per step and series
    secs = depth["ts"].astype("int64") // 10**9
    assert (depth["ts"].astype("int64") % 10**9 == 0).all()
    assert not depth.assign(s=secs).duplicated(["s", "stage"]).any()
    assert source.watermark() == kpis["ts"].max().to_pydatetime()
    assert signals.sources == [f"prometheus:{prom.url}"]


def test_bad_promql_names_the_query_and_prometheus_error(prometheus, exporter):
    prom = prometheus([exporter])
    queries = parse_queries(["ok=up", "broken=sum(rate(queue_depth[1m]) by"])
    source = PrometheusSource(prom.url, queries, step=5)
    end = datetime.now(UTC)
    with pytest.raises(SourceError) as err:
        source.read(Window(start=end - timedelta(minutes=1), end=end), end - timedelta(minutes=5))
    msg = str(err.value)
    assert "'broken'" in msg and "HTTP 400 bad_data:" in msg and "parse error" in msg
    assert "\n" not in msg


def test_unreachable_server_names_the_query_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    source = PrometheusSource(url, parse_queries(["depth=queue_depth"]), step=60, timeout=1, retries=2,
                              backoff=0.01)
    end = datetime.now(UTC)
    with pytest.raises(SourceError) as err:
        source.read(Window(start=end - timedelta(hours=1), end=end), end - timedelta(hours=2))
    msg = str(err.value)
    assert msg.startswith(f"prometheus {url} query 'depth' (queue_depth): cannot connect")
    assert "(after 3 attempts)" in msg and source.watermark() is None


def test_retries_a_503_then_reads():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, json={"status": "error", "errorType": "timeout", "error": "busy"})
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "x", "zone": "a"},
             "values": [[600, "1.5"], [660, "NaN"], [720, "+Inf"]]}]}})

    source = PrometheusSource("http://prom.invalid", [PromQuery(name="x", query="x")], step=60, retries=1,
                              backoff=0.0, transport=httpx.MockTransport(handler))
    window = Window(start=datetime.fromtimestamp(600, UTC), end=datetime.fromtimestamp(780, UTC))
    kpis = source.read(window, datetime.fromtimestamp(590, UTC)).kpis
    assert len(calls) == 2 and calls[1].url.params["start"] == "600.000"
    assert kpis[["metric", "value", "zone"]].to_dict("records") == \
        [{"metric": "x", "value": 1.5, "zone": "a"}]


def test_parse_queries_errors_name_the_entry():
    assert parse_queries(['errs=rate(x{code="500"}[5m])'])[0].query == 'rate(x{code="500"}[5m])'
    with pytest.raises(ValueError, match=r"query 1 'up': expected NAME=PROMQL"):
        parse_queries(["up"])
    with pytest.raises(ValueError, match=r"query 2 'up\{job=\"a\"\}': 'up\{job' is not a metric name"):
        parse_queries(["a=b", 'up{job="a"}'])
    with pytest.raises(ValueError, match="query 1 'a=  ': empty PromQL query"):
        parse_queries(["a=  "])
    with pytest.raises(ValueError, match="query 2 'a=c': duplicate name 'a'"):
        parse_queries(["a=b", "a=c"])
    with pytest.raises(ValueError, match="expected http"):
        prometheus_source("localhost:9090", ["a=b"])
    with pytest.raises(ValueError, match="no queries"):
        prometheus_source("http://localhost:9090", [])


def test_pack_declares_queries_and_how_they_are_watched():
    base = load_pack("generic").model_dump(exclude={"root"})
    pack = Pack.model_validate({**base, "prometheus": [
        {"name": "payment_errors", "query": "sum(rate(errors_total[5m]))", "bad": "up", "kind": "hard",
         "labels": {"stage": "payment"}}]})
    spec = pack.metric_spec("payment_errors")
    assert spec.bad == "up" and spec.kind.value == "hard"
    source = prometheus_source("http://localhost:9090", ["extra=up"], pack_queries=pack.prometheus)
    assert [q.name for q in source.queries] == ["payment_errors", "extra"]
    with pytest.raises(ValueError, match="not a metric name"):
        Pack.model_validate({**base, "prometheus": [{"name": "9bad", "query": "up"}]})


def _answer(body: dict, status: int = 200) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


def test_clashing_labels_and_malformed_answers():
    window = Window(start=datetime.fromtimestamp(600, UTC), end=datetime.fromtimestamp(700, UTC))
    since = window.start
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"metric": "m", "value": "v", "job": "j"}, "values": [[600, "2"]]}]}}
    q = [PromQuery(name="x", query="x", labels={"stage": "pay"})]
    kpis = PrometheusSource("http://p.invalid", q, transport=_answer(matrix)).read(window, since).kpis
    expected = {"metric": "x", "value": 2.0, "exported_metric": "m", "exported_value": "v", "job": "j",
                "stage": "pay"}
    assert kpis.drop(columns="ts").to_dict("records") == [expected]

    bad_value = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[600, "two"]]}]}}
    with pytest.raises(SourceError, match=r"query 'x' \(x\): malformed series in the result"):
        PrometheusSource("http://p.invalid", q, transport=_answer(bad_value)).read(window, since)
    vector = {"status": "success", "data": {"resultType": "vector", "result": []}}
    with pytest.raises(SourceError, match="expected a matrix result, got 'vector'"):
        PrometheusSource("http://p.invalid", q, transport=_answer(vector)).read(window, since)
    gateway = httpx.MockTransport(lambda r: httpx.Response(502, text="bad gateway"))
    unavailable = PrometheusSource("http://p.invalid", q, retries=1, backoff=0.0, transport=gateway)
    with pytest.raises(SourceError, match=r"HTTP 502 bad gateway \(after 2 attempts\)$"):
        unavailable.read(window, since)
