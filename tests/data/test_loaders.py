"""Tests for opsloop.data.loaders: formats, validation, quarantine, line numbers, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.data.contracts import KPIS, LOGS, TICKETS
from opsloop.data.loaders import InputError, LoadResult, load_kpis, load_logs, load_signal, load_tickets

REPO_ROOT = Path(__file__).resolve().parents[2]
NAB_FILE = REPO_ROOT / "../shared/datasets/nab/data/realKnownCause/machine_temperature_system_failure.csv"

LOG_HEADER = "ts,service,endpoint,status,level,message,merchant_id,latency_ms"
UTC = "datetime64[ns, UTC]"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[object]) -> Path:
    """Each item: a dict (dumped as JSON) or a str (written verbatim, e.g. a broken line)."""
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
                    encoding="utf-8")
    return path


def qsummary(result: LoadResult) -> list[tuple[int, str | None]]:
    return [(q.line, q.field) for q in result.quarantined]


def log_row(ts="2024-03-01T10:00:00Z", **kw) -> dict:
    row = {"ts": ts, "service": "checkout", "endpoint": "/pay", "status": 200, "level": "INFO",
           "message": "ok", "merchant_id": "m1", "latency_ms": 12.5}
    row.update(kw)
    return row


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------


def test_logs_csv_good_rows_flow_and_bad_rows_are_quarantined(tmp_path):
    path = write(tmp_path / "logs.csv", "\n".join([
        LOG_HEADER,
        "2024-03-01T10:00:02Z,checkout,/pay,200,INFO,ok,m1,12.5",        # 2 good
        "yesterday,checkout,/pay,200,INFO,ok,m1,12.5",                   # 3 bad timestamp
        "2024-03-01T10:00:03Z,,/pay,200,INFO,ok,m1,12.5",                # 4 missing service
        "2024-03-01T10:00:04Z,checkout,/pay,abc,INFO,ok,m1,12.5",        # 5 status not int
        "2024-03-01T10:00:05Z,checkout,/pay,700,INFO,ok,m1,12.5",        # 6 status out of range
        "2024-03-01T10:00:06Z,checkout,/pay,500,ERROR,boom,m2,fast",     # 7 latency not numeric
        "2024-03-01T12:00:01+02:00,checkout,/pay,502,ERROR,boom,,",      # 8 good, offset, optionals empty
        "not-a-date,checkout,/pay,abc,INFO,ok,m1,x",                     # 9 first failing field wins
    ]) + "\n")
    res = load_logs(path)

    assert res.source == str(path)
    assert res.rows_read == 8
    assert len(res.frame) == 2
    assert qsummary(res) == [(3, "ts"), (4, "service"), (5, "status"), (6, "status"), (7, "latency_ms"),
                             (9, "ts")]
    reasons = [q.reason for q in res.quarantined]
    assert reasons[0] == "unparseable timestamp 'yesterday'"
    assert reasons[1] == "missing required field 'service'"
    assert reasons[2] == "status 'abc' is not an integer"
    assert reasons[3] == "status 700 is outside 100..599"
    assert reasons[4] == "latency_ms 'fast' is not numeric"
    assert all(q.file == str(path) for q in res.quarantined)

    f = res.frame
    assert list(f.columns) == [*LOGS.columns, "merchant_id"]  # an extra column is kept as a label
    # sorted by ts: the +02:00 row is 10:00:01Z, before 10:00:02Z
    assert list(f["ts"]) == [pd.Timestamp("2024-03-01T10:00:01Z"), pd.Timestamp("2024-03-01T10:00:02Z")]
    assert list(f.index) == [0, 1]
    assert f["status"].tolist() == [502, 200]
    assert pd.isna(f.loc[0, "merchant_id"]) and pd.isna(f.loc[0, "latency_ms"])
    assert pd.isna(f.loc[0, "event"])  # absent optional column added


def test_logs_csv_dtypes(tmp_path):
    path = write(tmp_path / "logs.csv",
                 LOG_HEADER + "\n2024-03-01T10:00:00Z,checkout,/pay,200,INFO,ok,m1,1\n")
    f = load_logs(path).frame
    assert str(f["ts"].dtype) == UTC
    assert f["status"].dtype == np.int64
    assert f["latency_ms"].dtype == np.float64
    for col in ("service", "endpoint", "level", "message", "merchant_id", "event"):
        assert pd.api.types.is_string_dtype(f[col].dtype), col


def test_csv_header_only_gives_empty_frame_with_contract_columns(tmp_path):
    res = load_logs(write(tmp_path / "logs.csv", LOG_HEADER + "\n"))
    assert res.rows_read == 0 and res.quarantined == []
    assert len(res.frame) == 0
    assert list(res.frame.columns) == [*LOGS.columns, "merchant_id"]
    assert str(res.frame["ts"].dtype) == UTC
    assert res.frame["status"].dtype == np.int64


def test_csv_line_numbers_count_blank_lines_and_multiline_fields(tmp_path):
    text = (
        "id,created_at,subject,body\n"                                # 1
        't1,2024-03-01T09:00:00Z,Checkout down,"line one\n'           # 2
        'line two"\n'                                                  # 3
        "\n"                                                           # 4 blank
        "t2,soon,Refund,please\n"                                      # 5 bad ts
        't3,2024-03-01T09:05:00Z,"quoted, comma",""\n'                 # 6 empty body
        "t4,2024-03-01T09:06:00Z,ok,fine\n"                            # 7
    )
    res = load_tickets(write(tmp_path / "tickets.csv", text))
    assert qsummary(res) == [(5, "created_at"), (6, "body")]
    assert res.frame["id"].tolist() == ["t1", "t4"]
    assert res.frame.loc[0, "body"] == "line one\nline two"
    assert res.rows_read == 4


def test_csv_ragged_line_is_quarantined_with_its_line(tmp_path):
    text = (
        LOG_HEADER + "\n"
        "2024-03-01T10:00:00Z,checkout,/pay,200,INFO,ok,m1,1\n"             # 2
        "\n"                                                                # 3
        "2024-03-01T10:00:01Z,checkout,/pay,200,INFO,ok,m1,1,EXTRA,MORE\n"  # 4 too many fields
        "2024-03-01T10:00:02Z,checkout,/pay,20x,INFO,ok,m1,1\n"             # 5 bad status
        "2024-03-01T10:00:03Z,checkout,/pay,200,INFO,ok\n"                  # 6 short: optionals empty
    )
    res = load_logs(write(tmp_path / "logs.csv", text))
    assert qsummary(res) == [(4, None), (5, "status")]
    assert "expected 8 fields, saw 10" in res.quarantined[0].reason
    assert len(res.frame) == 2 and res.rows_read == 4


def test_csv_crlf_bom_and_whitespace(tmp_path):
    text = ("\ufeff" + LOG_HEADER + "\r\n"
            "2024-03-01T10:00:00Z, checkout ,/pay, 201 ,INFO,ok , m1 , 3.5 \r\n"
            "2024-03-01T10:00:01Z,   ,/pay,200,INFO,ok,m1,1\r\n")
    res = load_logs(write(tmp_path / "logs.csv", text))
    assert qsummary(res) == [(3, "service")]  # whitespace-only required string is missing
    row = res.frame.iloc[0]
    assert (row["service"], row["status"], row["message"], row["merchant_id"], row["latency_ms"]) == \
        ("checkout", 201, "ok", "m1", 3.5)


def test_null_tokens_in_numeric_fields_mean_missing(tmp_path):
    text = (LOG_HEADER + "\n"
            "2024-03-01T10:00:00Z,checkout,/pay,200,INFO,ok,m1,NaN\n"
            "2024-03-01T10:00:01Z,checkout,/pay,200.0,INFO,ok,m1,null\n"
            "2024-03-01T10:00:02Z,checkout,/pay,200,INFO,ok,m1,inf\n")
    res = load_logs(write(tmp_path / "logs.csv", text))
    assert len(res.frame) == 2 and res.frame["latency_ms"].isna().all()
    assert res.frame["status"].tolist() == [200, 200]
    assert qsummary(res) == [(4, "latency_ms")]
    assert res.quarantined[0].reason == "latency_ms 'inf' is not a finite number"


def test_tickets_extra_columns_kept_as_labels_optional_added(tmp_path):
    text = "id,created_at,subject,body,assignee\nt1,2024-03-01T09:00:00Z,s,b,alice\n"
    f = load_tickets(write(tmp_path / "tickets.csv", text)).frame
    assert list(f.columns) == [*TICKETS.columns, "assignee"]
    assert f["assignee"].tolist() == ["alice"]
    assert f[["priority", "channel"]].isna().all().all()


def test_timestamps_offsets_naive_and_nab_style_become_utc(tmp_path):
    text = ("id,created_at,subject,body\n"
            "a,2024-03-01T12:00:00+02:00,s,b\n"
            "b,2024-03-01 10:30:00,s,b\n"
            "c,2024-03-01T05:45:00.250-05:00,s,b\n"
            "d,2024-03-01T09:00:00Z,s,b\n"
            "e,2024-03-02,s,b\n")
    f = load_tickets(write(tmp_path / "t.csv", text)).frame
    assert str(f["created_at"].dtype) == UTC
    assert dict(zip(f["id"], f["created_at"])) == {
        "d": pd.Timestamp("2024-03-01T09:00:00Z"),
        "a": pd.Timestamp("2024-03-01T10:00:00Z"),
        "b": pd.Timestamp("2024-03-01T10:30:00Z"),
        "c": pd.Timestamp("2024-03-01T10:45:00.250Z"),
        "e": pd.Timestamp("2024-03-02T00:00:00Z"),
    }
    assert f["id"].tolist() == ["d", "a", "b", "c", "e"]


def test_stable_sort_keeps_file_order_for_equal_times(tmp_path):
    text = "id,created_at,subject,body\n" + "".join(
        f"t{i},2024-03-01T09:00:0{1 if i % 2 else 0}Z,s,b\n" for i in range(6))
    f = load_tickets(write(tmp_path / "t.csv", text)).frame
    assert f["id"].tolist() == ["t0", "t2", "t4", "t1", "t3", "t5"]


def test_csv_gz(tmp_path):
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(gzip.compress((LOG_HEADER + "\n2024-03-01T10:00:00Z,c,/p,200,INFO,ok,m1,1\n"
                                    "bad,c,/p,200,INFO,ok,m1,1\n").encode()))
    res = load_logs(path)
    assert len(res.frame) == 1 and qsummary(res) == [(3, "ts")]


def test_csv_unterminated_quote_is_an_input_error_with_line(tmp_path):
    text = ('id,created_at,subject,body\n'
            't1,2024-03-01T09:00:00Z,s,"fine\nstill fine"\n'
            '\n'
            't2,2024-03-01T09:01:00Z,s,"never closed\n'
            't3,2024-03-01T09:02:00Z,s,b\n')
    path = write(tmp_path / "t.csv", text)
    with pytest.raises(InputError, match=r"line 5: quoted field is never closed") as err:
        load_tickets(path)
    assert str(err.value).startswith(f"{path}: cannot read CSV file")


def test_csv_stray_literal_quote_is_data(tmp_path):
    text = 'id,created_at,subject,body\nt1,2024-03-01T09:00:00Z,5" screen,b\nt2,x,s,b\n'
    res = load_tickets(write(tmp_path / "t.csv", text))
    assert res.frame["subject"].tolist() == ['5" screen'] and qsummary(res) == [(3, "created_at")]


# --------------------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------------------


def test_logs_jsonl_bad_lines_and_rows_quarantined(tmp_path):
    path = write_jsonl(tmp_path / "logs.jsonl", [
        log_row("2024-03-01T10:00:01Z"),                       # 1
        '{"ts": "2024-03-01T10:00:02Z", "service": ',          # 2 invalid JSON
        "",                                                    # 3 blank (skipped, counted)
        "[1, 2, 3]",                                           # 4 not an object
        {k: v for k, v in log_row().items() if k != "level"},  # 5 missing required key
        log_row(status="teapot"),                              # 6 bad status
        log_row(status=True),                                  # 7 bool is not an int
        log_row(subject=None, message={"nested": 1}),          # 8 non-scalar message
        log_row(ts="2024-03-01T08:00:00-03:00", status="503", latency_ms="7"),  # 9 good, strings ok
    ])
    res = load_logs(path)
    assert res.rows_read == 8
    assert qsummary(res) == [(2, None), (4, None), (5, "level"), (6, "status"), (7, "status"),
                             (8, "message")]
    assert res.quarantined[0].reason.startswith("invalid JSON")
    assert res.quarantined[1].reason == "not a JSON object (got array)"
    assert res.quarantined[2].reason == "missing required field 'level'"
    assert len(res.frame) == 2
    f = res.frame
    assert list(f["ts"]) == [pd.Timestamp("2024-03-01T10:00:01Z"), pd.Timestamp("2024-03-01T11:00:00Z")]
    assert f["status"].tolist() == [200, 503] and f["status"].dtype == np.int64
    assert f["latency_ms"].tolist() == [12.5, 7.0]


def test_jsonl_clean_file_with_blank_lines_keeps_physical_line_numbers(tmp_path):
    # every line is valid JSON (fast path); one row fails validation after a blank line
    path = write_jsonl(tmp_path / "logs.ndjson", [
        log_row("2024-03-01T10:00:00Z"), "", "   ", log_row("2024-03-01T10:00:01Z", status=999),
        log_row("2024-03-01T10:00:02Z")])
    res = load_logs(path)
    assert qsummary(res) == [(4, "status")]
    assert len(res.frame) == 2 and res.rows_read == 3


def test_jsonl_optional_keys_may_be_absent_and_json_null_is_missing(tmp_path):
    row = log_row()
    del row["merchant_id"], row["latency_ms"]
    res = load_logs(write_jsonl(tmp_path / "logs.jsonl", [row, log_row(merchant_id=None)]))
    assert res.quarantined == []
    assert res.frame["merchant_id"].isna().tolist() == [True, True]


def test_jsonl_gz_and_labels_that_look_like_dates_stay_text(tmp_path):
    path = tmp_path / "kpis.jsonl.gz"
    rows = [{"ts": "2024-03-01T10:00:00Z", "metric": "orders", "value": 1,
             "deployed": "2024-02-01T00:00:00Z"}]
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    f = load_kpis(path).frame
    assert f["deployed"].tolist() == ["2024-02-01T00:00:00Z"]


def test_jsonl_every_line_broken_gives_empty_frame_not_error(tmp_path):
    res = load_logs(write_jsonl(tmp_path / "logs.jsonl", ["{nope", "42"]))
    assert len(res.frame) == 0 and list(res.frame.columns) == LOGS.columns
    assert qsummary(res) == [(1, None), (2, None)]


def test_jsonl_required_key_absent_everywhere_is_an_input_error(tmp_path):
    rows = [{k: v for k, v in log_row().items() if k != "status"}] * 2
    path = write_jsonl(tmp_path / "logs.jsonl", rows)
    with pytest.raises(InputError, match=r"logs\.jsonl.*missing required column.*status"):
        load_logs(path)


# --------------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------------


def test_parquet_string_columns_quarantine_by_row_number(tmp_path):
    rows = [log_row("2024-03-01T10:00:00Z"), log_row("garbage"), log_row(status="x"), log_row(level="")]
    df = pd.DataFrame(rows).astype({"status": str})
    path = tmp_path / "logs.parquet"
    df.to_parquet(path, index=False)
    res = load_logs(path)
    assert qsummary(res) == [(2, "ts"), (3, "status"), (4, "level")]
    assert len(res.frame) == 1 and res.rows_read == 4


def test_parquet_typed_columns_converted(tmp_path):
    df = pd.DataFrame({
        "ts": pd.to_datetime(["2024-03-01 12:00", "2024-03-01 11:00"]).tz_localize("Europe/Berlin"),
        "service": ["a", "b"], "endpoint": ["/x", "/y"], "status": [200, 404], "level": ["INFO", "WARN"],
        "message": ["m", "n"], "merchant_id": [7, 8], "latency_ms": [1, 2],
    })
    path = tmp_path / "logs.parquet"
    df.to_parquet(path)
    f = load_logs(path).frame
    assert str(f["ts"].dtype) == UTC
    assert list(f["ts"]) == [pd.Timestamp("2024-03-01T10:00:00Z"), pd.Timestamp("2024-03-01T11:00:00Z")]
    assert f["merchant_id"].tolist() == ["8", "7"]
    assert f["latency_ms"].dtype == np.float64 and f["status"].dtype == np.int64


def test_parquet_naive_datetimes_taken_as_utc(tmp_path):
    df = pd.DataFrame({"ts": pd.to_datetime(["2024-03-01 10:00"]), "metric": ["orders"], "value": [3]})
    path = tmp_path / "k.parquet"
    df.to_parquet(path)
    f = load_kpis(path).frame
    assert f["ts"].iloc[0] == pd.Timestamp("2024-03-01T10:00:00Z") and f["value"].dtype == np.float64


def test_parquet_timestamp_outside_ns_range_is_quarantined(tmp_path):
    ts = pd.to_datetime(["2024-03-01", "2500-01-01"]).astype("datetime64[us]")
    path = tmp_path / "k.parquet"
    pd.DataFrame({"ts": ts, "metric": "m", "value": [1.0, 2.0]}).to_parquet(path)
    res = load_kpis(path)
    assert len(res.frame) == 1 and qsummary(res) == [(2, "ts")]
    assert "out of range" in res.quarantined[0].reason


# --------------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------------


def test_kpis_long_form_keeps_labels_as_str_with_missing_nan(tmp_path):
    text = ("ts,metric,value,stage,shard\n"
            "2024-03-01T10:01:00Z,orders,5,legacy,1\n"
            "2024-03-01T10:00:00Z,orders,4,,2\n"
            "2024-03-01T10:02:00Z,orders,n/a?,headless,3\n")
    res = load_kpis(write(tmp_path / "kpis.csv", text))
    f = res.frame
    assert list(f.columns) == ["ts", "metric", "value", "stage", "shard"]
    assert f["shard"].tolist() == ["2", "1"]
    assert pd.isna(f.loc[0, "stage"]) and f.loc[1, "stage"] == "legacy"
    assert f["value"].tolist() == [4.0, 5.0]
    assert qsummary(res) == [(4, "value")] and res.quarantined[0].reason == "value 'n/a?' is not numeric"


def test_kpis_long_form_jsonl_numeric_labels_become_str(tmp_path):
    path = write_jsonl(tmp_path / "kpis.jsonl", [
        {"ts": "2024-03-01T10:00:00Z", "metric": "sessions", "value": 10, "shard": 1},
        {"ts": "2024-03-01T10:01:00Z", "metric": "sessions", "value": 11.5, "shard": None},
    ])
    f = load_kpis(path).frame
    assert f["shard"].iloc[0] == "1" and pd.isna(f["shard"].iloc[1])
    assert f["value"].tolist() == [10.0, 11.5]


def test_kpis_nab_form_detected_metric_from_stem(tmp_path):
    text = "timestamp,value\n2013-12-02 21:20:00,74.9\n2013-12-02 21:15:00,73.9\nbad,1\n"
    res = load_kpis(write(tmp_path / "cpu_utilization.csv", text))
    assert list(res.frame.columns) == ["ts", "metric", "value"]
    assert res.frame["metric"].unique().tolist() == ["cpu_utilization"]
    assert res.frame["ts"].iloc[0] == pd.Timestamp("2013-12-02T21:15:00Z")
    assert qsummary(res) == [(4, "ts")]

    gz = tmp_path / "nyc_taxi.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert load_kpis(gz).frame["metric"].iloc[0] == "nyc_taxi"


def test_kpis_in_neither_form_is_an_input_error(tmp_path):
    path = write(tmp_path / "kpis.csv", "when,value\n2024-01-01,1\n")
    with pytest.raises(InputError) as err:
        load_kpis(path)
    msg = str(err.value)
    assert str(path) in msg and "ts" in msg and "NAB" in msg and "when" in msg


def test_real_nab_file():
    if not NAB_FILE.exists():
        pytest.skip(f"NAB dataset not found at {NAB_FILE} (expected ../shared/datasets next to the repo)")
    res = load_kpis(NAB_FILE)
    n_lines = sum(1 for ln in NAB_FILE.read_text().splitlines() if ln.strip())
    assert res.quarantined == []
    assert res.rows_read == n_lines - 1 == len(res.frame)
    f = res.frame
    assert list(f.columns) == ["ts", "metric", "value"]
    assert (f["metric"] == "machine_temperature_system_failure").all()
    assert str(f["ts"].dtype) == UTC and f["ts"].is_monotonic_increasing
    assert f["ts"].iloc[0] == pd.Timestamp("2013-12-02T21:15:00Z")
    assert f["value"].dtype == np.float64 and f["value"].notna().all()


def test_load_signal_generic(tmp_path):
    path = write(tmp_path / "k.csv", "ts,metric,value,zone\n2024-01-01T00:00:00Z,m,1,eu\n")
    assert "zone" in load_signal(path, KPIS).frame.columns
    assert "zone" not in load_signal(path, KPIS, keep_extra=False).frame.columns


# --------------------------------------------------------------------------------------------------
# unusable files
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logs.txt", "logs.xlsx", "logs", "logs.parquet.gz"])
def test_unsupported_extension(tmp_path, name):
    path = write(tmp_path / name, LOG_HEADER + "\n")
    with pytest.raises(InputError) as err:
        load_logs(path)
    assert str(path) in str(err.value) and ".csv" in str(err.value) and ".parquet" in str(err.value)


@pytest.mark.parametrize("name", ["missing.csv", "missing.jsonl", "missing.parquet"])
def test_missing_file(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(InputError, match="no such file") as err:
        load_logs(path)
    assert str(err.value).startswith(f"{path}: cannot read")


@pytest.mark.parametrize("name,content", [("e.csv", b""), ("e.jsonl", b""), ("e.parquet", b""),
                                          ("w.csv", b"\n  \n"), ("w.jsonl", b"\n\n")])
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match="empty") as err:
        load_logs(path)
    assert str(err.value).startswith(f"{path}: cannot read")


def test_directory_is_an_input_error(tmp_path):
    path = tmp_path / "dir.csv"
    path.mkdir()
    with pytest.raises(InputError, match="is a directory") as err:
        load_logs(path)
    assert str(path) in str(err.value)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "logs.parquet"
    path.write_bytes(b"PAR1 this is not really parquet at all")
    with pytest.raises(InputError) as err:
        load_logs(path)
    assert str(err.value).startswith(f"{path}: cannot read Parquet file:")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "logs.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(InputError, match="gzip") as err:
        load_logs(path)
    assert str(path) in str(err.value)


def test_undecodable_text_names_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,created_at,subject,body\nt1,2024-01-01,caf\xe9,b\n")
    with pytest.raises(InputError, match=r"line 2 is not valid UTF-8") as err:
        load_tickets(path)
    assert str(err.value).startswith(f"{path}: cannot read CSV file") and err.value.line == 2


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_missing_required_column(tmp_path, fmt):
    df = pd.DataFrame([{k: v for k, v in log_row().items() if k not in ("status", "level")}])
    path = tmp_path / f"logs.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    with pytest.raises(InputError) as err:
        load_logs(path)
    msg = str(err.value)
    assert msg.startswith(str(path))
    assert "['status', 'level']" in msg and "found columns" in msg and "service" in msg


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


# --------------------------------------------------------------------------------------------------
# fast (pyarrow) and fallback (pandas C parser / json.loads) readers agree
# --------------------------------------------------------------------------------------------------


def _clean_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "logs.csv", "\n".join([
        LOG_HEADER + ",extra",
        "2024-03-01T10:00:02Z,checkout,/pay,200,INFO,ok,007,12.5,x",
        "",
        'yesterday,checkout,/pay,200,INFO,"multi\nline",m1,12.5,x',
        "2024-03-01T10:00:03Z,checkout,/pay,abc,INFO,ok,m1,,x",
        "2024-03-01T12:00:01+02:00, api ,/pay,502,ERROR,boom,,3,x",
    ]) + "\n")


def _clean_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "logs.jsonl", [
        log_row("2024-03-01T10:00:02Z", merchant_id="007"), "",
        log_row("yesterday"), log_row(status=None), log_row("2024-03-01T12:00:01+02:00", latency_ms=None),
        log_row("2024-03-01T10:00:04Z", latency_ms=3),
    ])


@pytest.mark.parametrize("make,fast", [(_clean_csv, "_csv_fast"), (_clean_jsonl, "_jsonl_fast")])
def test_fast_and_fallback_readers_agree(tmp_path, monkeypatch, make, fast):
    from opsloop.data import loaders

    path = make(tmp_path)
    calls = []
    real = getattr(loaders, fast)
    monkeypatch.setattr(loaders, fast, lambda *a: calls.append(real(*a)) or calls[-1])
    quick = load_logs(path)
    assert calls and calls[0] is not None, "clean file should take the fast path"

    monkeypatch.setattr(loaders, fast, lambda *a: None)
    slow = load_logs(path)
    pd.testing.assert_frame_equal(quick.frame, slow.frame)
    assert quick.quarantined == slow.quarantined and quick.quarantined
    assert quick.rows_read == slow.rows_read
    assert "007" in quick.frame["merchant_id"].tolist()  # never re-typed as a number
