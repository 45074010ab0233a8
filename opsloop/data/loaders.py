"""Input loaders: read tickets, logs and KPI files, validate rows against a contract, quarantine bad rows.

One call reads one file and returns a :class:`LoadResult`: the valid rows as a DataFrame shaped by
the signal's :class:`~opsloop.data.contracts.Contract`, plus one :class:`~opsloop.domain.Quarantined`
record per rejected row. A *file* that cannot be used at all (unsupported format, missing, empty,
undecodable, corrupt, missing a required column) raises :class:`InputError`; a bad *row* never does.

Formats (chosen by extension, case-insensitive)
    ``.csv``, ``.csv.gz``, ``.jsonl``, ``.ndjson``, ``.jsonl.gz``, ``.ndjson.gz``, ``.parquet``.
    Text files must be UTF-8 (a BOM is allowed).

Line numbers in :class:`Quarantined`
    * CSV: the physical line in the file where the record starts (the header is line 1, so the first
      data row is normally line 2). Blank lines and quoted multi-line fields are accounted for by a
      second pass with :mod:`csv`; if that pass cannot reproduce pandas' view of the file (e.g. exotic
      line endings) the number falls back to ``row index + 2``.
    * JSONL: the 1-based physical line (blank lines are skipped but counted).
    * Parquet: the 1-based row number in the file.

Row validation (vectorised with pandas; first failing field in contract order wins)
    * required field missing, or empty after stripping whitespace -> ``missing required field 'x'``
    * ``ts`` fields: ISO-8601 (``T`` or space separator, optional fraction, ``Z``/``±hh:mm`` offsets,
      date only). Offsets are converted to UTC, naive values are taken as UTC. Anything else
      (including epoch numbers) -> ``unparseable timestamp '...'``
    * ``int`` fields must be integer-valued (``"200"``, ``200``, ``"200.0"``); ``status`` must lie in
      100..599
    * ``float`` fields must be finite numbers
    * ``str`` fields must be scalars (a JSON object/array is rejected)
    * JSONL lines that are not valid JSON or not a JSON object are quarantined with ``field=None``;
      so are CSV lines with more fields than the header (shorter lines are padded with empty fields).
    * In numeric and timestamp fields the tokens ``NaN``, ``NaT``, ``null``, ``None``, ``NA``,
      ``N/A`` (any case) mean *missing*; in string fields only an empty value is missing.

Output frame
    Contract columns in contract order (absent optional columns added as all-missing), then, for
    KPIs only, the label columns in file order. Timestamps ``datetime64[ns, UTC]``; strings pandas
    ``str`` dtype (missing = NaN), whitespace stripped; ``int`` -> ``int64`` (``Int64`` if optional);
    ``float`` -> ``float64``. Rows are stably sorted by the contract's time column; the index is a
    fresh ``RangeIndex``. Unknown columns are dropped for tickets and logs, kept (as labels) for KPIs.
    In JSONL a column exists when at least one line has that key.

Speed
    CSV and JSONL are parsed with pyarrow's multi-threaded readers when the file is clean (every
    column read as text, so ``"007"`` stays ``"007"``); a file the fast reader rejects (ragged CSV
    rows, an odd number of ``"`` characters, a bad JSON line, mixed JSON types) is re-read with
    pandas' C CSV parser or line by line with :func:`json.loads`, which is what lets bad lines be
    quarantined with their line numbers. (``pd.read_json(lines=True)`` was measured at 3-7 s for
    600k lines, ``pyarrow.json`` at ~0.6 s.) Validation is column-wise; Python only touches bad rows.
    About 0.6-1.5 s for 600k log rows in CSV or Parquet on a 2-core machine; building one
    :class:`Quarantined` costs ~5 us, so a file whose every row is bad is several times slower.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from opsloop.data.contracts import KPIS, LOGS, TICKETS, Contract
from opsloop.domain import Quarantined

__all__ = [
    "SUPPORTED_FORMATS", "InputError", "LoadResult", "load_kpis", "load_logs", "load_signal", "load_tickets",
]

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".parquet")
"""File name endings the loaders accept."""

_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSONL", "parquet": "Parquet"}
_NULL_TOKENS = frozenset({"nan", "nat", "null", "none", "na", "n/a", "<na>"})
_INT_RANGES: dict[str, tuple[int, int]] = {"status": (100, 599)}
_TS_MIN = pd.Timestamp.min.tz_localize("UTC")
_TS_MAX = pd.Timestamp.max.tz_localize("UTC")
_UNNAMED = re.compile(r"^Unnamed: \d+$")
_SKIP_LINE = re.compile(r"Skipping line (\d+): (.*)")
_STR_DTYPE = "str"
_TS_DTYPE = "datetime64[ns, UTC]"


class InputError(ValueError):
    """An input file that cannot be used at all (as opposed to a bad row, which is quarantined).

    The message always starts with the file path as given, and names the line and field when known,
    e.g. ``"tickets.csv: cannot read CSV: Error tokenizing data ..."`` or
    ``"logs.csv: missing required column(s) ['status'] for logs; found columns: [...]"``.
    ``file``/``line``/``field`` repeat those facts for programs.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.field = field


@dataclass
class LoadResult:
    """What one loader call produced.

    ``frame``: valid rows only, shape ``(n_valid, n_columns)``; contract columns (+ label columns for
    KPIs), sorted by the contract's time column, ``RangeIndex``. ``quarantined``: one record per
    rejected row, ordered by line. ``source``: the path as given. ``rows_read``: data rows/records
    seen in the file (valid + quarantined; blank lines are not rows).
    """

    frame: pd.DataFrame
    quarantined: list[Quarantined] = field(default_factory=list)
    source: str = ""
    rows_read: int = 0


# --------------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------------


def load_tickets(path: str | Path) -> LoadResult:
    """Load support tickets (contract :data:`~opsloop.data.contracts.TICKETS`).

    Output columns ``id, created_at, subject, body, priority, channel`` and every other column of
    the file as a ``str`` label; ``created_at`` is ``datetime64[ns, UTC]``, the rest ``str``. Sorted by
    ``created_at``.
    Raises :class:`InputError` for an unusable file.
    """
    return load_signal(path, TICKETS)


def load_logs(path: str | Path) -> LoadResult:
    """Load application log events (contract :data:`~opsloop.data.contracts.LOGS`).

    Output columns ``ts, service, endpoint, status, level, message, event, latency_ms`` and every
    other column of the file as a ``str`` label; ``ts`` UTC, ``status`` ``int64`` HTTP code in 100..599, ``latency_ms``
    ``float64`` milliseconds (NaN when absent), the rest ``str``. Sorted by ``ts``.
    Raises :class:`InputError` for an unusable file.
    """
    return load_signal(path, LOGS)


def load_kpis(path: str | Path) -> LoadResult:
    """Load KPI points in long form or NAB form, auto-detected from the columns.

    * long form -- columns ``ts, metric, value`` plus any label columns (every other column, e.g.
      ``region``, ``host``), output ``ts, metric, value, <labels...>``; labels are ``str`` with
      missing kept as NaN (a column named ``Unnamed: N`` -- a nameless CSV column, typically a saved
      pandas index -- is not a label and is dropped).
    * NAB form -- columns ``timestamp, value`` and no ``metric``: one series whose metric is the file
      name without its extensions (``nyc_taxi.csv`` -> ``nyc_taxi``); output ``ts, metric, value``,
      other columns dropped.

    ``ts`` is ``datetime64[ns, UTC]``, ``value`` ``float64``. Sorted by ``ts`` (stable).
    Raises :class:`InputError` for an unusable file, including one in neither form.
    """
    source = str(path)
    wanted = {*KPIS.columns, "timestamp"}
    raw = _read_raw(Path(path), source, wanted=wanted, str_columns={"ts", "metric", "timestamp"},
                    keep_all=True)
    cols = set(raw.frame.columns)
    if raw.columns_known and not {"ts", "metric", "value"} <= cols:
        if {"timestamp", "value"} <= cols and "metric" not in cols:  # NAB form
            frame = raw.frame[["timestamp", "value"]].rename(columns={"timestamp": "ts"})
            frame.insert(1, "metric", _stem(Path(path)))
            raw.frame = frame
            return _validate(raw, KPIS, source, keep_extra=False)
        missing = [c for c in ("ts", "metric", "value") if c not in cols]
        raise InputError(
            f"{source}: missing required column(s) {missing} for kpis (long form needs ts, metric, value "
            f"[+ label columns]; NAB form needs timestamp, value); found columns: {list(raw.frame.columns)}",
            file=source, field=missing[0])
    return _validate(raw, KPIS, source, keep_extra=True)


def load_signal(path: str | Path, contract: Contract, *, keep_extra: bool | None = None) -> LoadResult:
    """Load any signal file against ``contract`` (the three loaders above are thin wrappers).

    ``keep_extra``: keep columns outside the contract (cast to ``str``: they are labels) -- default
    ``True``. This generic entry point does not
    recognise NAB's ``timestamp,value`` form; use :func:`load_kpis` for that.
    Raises :class:`InputError` for an unusable file (see the module docstring).
    """
    if keep_extra is None:
        keep_extra = True
    source = str(path)
    str_columns = {c for c, t in {**contract.required, **contract.optional}.items() if t in ("str", "ts")}
    raw = _read_raw(Path(path), source, wanted=set(contract.columns), str_columns=str_columns,
                    keep_all=keep_extra)
    return _validate(raw, contract, source, keep_extra=keep_extra)


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """A file read into memory, before validation.

    ``frame`` has ``RangeIndex`` positions ``0..n-1``; ``line_of(positions)`` maps positions to the
    line numbers reported in :class:`Quarantined`. ``quarantined`` holds records rejected while
    reading (bad JSON, ragged CSV lines). ``columns_known`` is False when no record could be read to
    learn the columns from (e.g. a JSONL file whose every line is broken).
    """

    frame: pd.DataFrame
    line_of: Callable[[np.ndarray], np.ndarray]
    quarantined: list[Quarantined]
    rows_read: int
    columns_known: bool = True


def _detect_format(path: Path, source: str) -> tuple[str, bool]:
    name = path.name.lower()
    compressed = name.endswith(".gz")
    base = name[:-3] if compressed else name
    suffix = Path(base).suffix
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(suffix)
    if fmt is None or (compressed and fmt == "parquet"):
        shown = "".join(Path(name).suffixes[-2:] if compressed else Path(name).suffixes[-1:]) or "(none)"
        raise InputError(
            f"{source}: unsupported file format {shown!r}; supported formats: {', '.join(SUPPORTED_FORMATS)}",
            file=source)
    return fmt, compressed


def _stem(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def _read_raw(path: Path, source: str, *, wanted: set[str], str_columns: set[str], keep_all: bool) -> _Raw:
    fmt, compressed = _detect_format(path, source)
    what = _FORMAT_NAMES[fmt]
    try:
        if not path.exists():
            raise InputError(f"{source}: cannot read {what} file: no such file", file=source)
        if path.is_dir():
            raise InputError(f"{source}: cannot read {what} file: is a directory", file=source)
        if path.stat().st_size == 0:
            raise InputError(f"{source}: cannot read {what} file: file is empty", file=source)
        if fmt == "parquet":
            return _read_parquet(path, source, wanted, keep_all)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{source}: cannot read {what} file: {exc.strerror or exc}", file=source) from exc
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{source}: cannot read {what} file: corrupt gzip data: {exc}",
                             file=source) from exc
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data or data.isspace():
        raise InputError(f"{source}: cannot read {what} file: file is empty", file=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"{source}: cannot read {what} file: line {line} is not valid UTF-8 "
            f"(byte 0x{data[exc.start]:02x} at column {col})", file=source, line=line) from exc
    if fmt == "csv":
        return _read_csv(data, text, source, wanted, keep_all)
    return _read_jsonl(data, text, source, str_columns, keep_all)


# ---- CSV -------------------------------------------------------------------------------------------


def _physical_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _csv_records(text: str) -> list[tuple[int, bool]] | None:
    """``(start line, is blank)`` for every CSV record in ``text``, numbered like pandas' C parser."""
    old_limit = csv.field_size_limit()
    try:
        csv.field_size_limit(max(old_limit, len(text) + 1))
        reader = csv.reader(io.StringIO(text, newline=""))
        records: list[tuple[int, bool]] = []
        prev = 0
        for rec in reader:
            records.append((prev + 1, not rec or (len(rec) == 1 and not rec[0].strip())))
            prev = reader.line_num
        return records
    except (csv.Error, OverflowError):
        return None
    finally:
        csv.field_size_limit(old_limit)


def _csv_header(text: str) -> list[str] | None:
    try:
        for rec in csv.reader(io.StringIO(text[: 1 << 20], newline="")):
            if rec and not (len(rec) == 1 and not rec[0].strip()):
                return rec
    except csv.Error:
        return None
    return None


def _read_csv(data: bytes, text: str, source: str, wanted: set[str], keep_all: bool) -> _Raw:
    header = _csv_header(text)
    frame: pd.DataFrame | None = None
    skipped: dict[int, str] = {}  # pandas record number -> reason
    # an odd number of quote characters may be an unterminated quoted field, which pyarrow would
    # silently run to the end of the file; the C parser reports it (or parses a stray literal quote)
    if header and len(set(header)) == len(header) and data.count(b'"') % 2 == 0:
        frame = _csv_fast(data, header, wanted, keep_all)
    if frame is None:
        frame, skipped = _csv_slow(data, text, source)
    frame.columns = [str(c).strip() for c in frame.columns]
    n = len(frame)

    # Line numbers are only worked out when some row is rejected. pandas numbers records from 1
    # counting the header and blank lines; map those numbers (and frame rows) to physical lines.
    cache: dict[str, object] = {}

    def records() -> list[tuple[int, bool]] | None:
        if "records" not in cache:
            cache["records"] = _csv_records(text)
        return cache["records"]  # type: ignore[return-value]

    def row_lines() -> np.ndarray | None:
        if "lines" not in cache:
            lines = None
            if not skipped and _physical_lines(text) == n + 1:  # no blank lines, no multi-line fields
                lines = np.arange(2, n + 2, dtype=np.int64)
            elif (recs := records()) is not None:
                numbered = [(i + 1, start) for i, (start, blank) in enumerate(recs) if not blank]
                starts = [start for recno, start in numbered[1:] if recno not in skipped]
                if len(starts) == n:
                    lines = np.asarray(starts, dtype=np.int64)
            if lines is None:
                log.debug("%s: CSV line numbers approximated as row index + 2", source)
            cache["lines"] = lines
        return cache["lines"]  # type: ignore[return-value]

    def line_of(pos: np.ndarray) -> np.ndarray:
        lines = row_lines()
        return lines[pos] if lines is not None else np.asarray(pos, dtype=np.int64) + 2

    quarantined: list[Quarantined] = []
    if skipped:
        recs = records()
        for recno, reason in skipped.items():
            line = recs[recno - 1][0] if recs is not None and recno <= len(recs) else recno
            quarantined.append(Quarantined(file=source, line=int(line), field=None, reason=reason))
    return _Raw(frame=frame, line_of=line_of, quarantined=quarantined, rows_read=n + len(skipped))


def _csv_fast(data: bytes, header: list[str], wanted: set[str], keep_all: bool) -> pd.DataFrame | None:
    """pyarrow's reader, all columns as strings; ``None`` when the file is not clean enough for it."""
    include = header if keep_all else [h for h in header if h.strip() in wanted]
    if not include:
        include = header

    def reject(_row: object) -> str:
        return "error"  # any ragged row: let the slow path report it with its line number

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            parse_options=pa_csv.ParseOptions(newlines_in_values=b'"' in data, invalid_row_handler=reject),
            convert_options=pa_csv.ConvertOptions(
                column_types={h: pa.string() for h in header}, include_columns=include,
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.column_names != include:
        return None
    return table.to_pandas()


def _csv_slow(data: bytes, text: str, source: str) -> tuple[pd.DataFrame, dict[int, str]]:
    skipped: dict[int, str] = {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(data), dtype=str, na_filter=False, encoding="utf-8",
                                on_bad_lines="warn", skip_blank_lines=True)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{source}: cannot read CSV file: no header row ({exc})", file=source) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        m = re.search(r"EOF inside string starting at row (\d+)", str(exc))
        recs = _csv_records(text) if m else None
        if m and recs is not None and int(m.group(1)) < len(recs):
            line = recs[int(m.group(1))][0]  # pandas counts records from 0 (the header), blanks included
            raise InputError(f"{source}: cannot read CSV file: line {line}: quoted field is never closed "
                             f"(runs to the end of the file)", file=source, line=line) from exc
        raise InputError(f"{source}: cannot read CSV file: {str(exc).strip()}", file=source) from exc
    for w in caught:
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        for m in _SKIP_LINE.finditer(str(w.message)):
            skipped[int(m.group(1))] = m.group(2).strip()
    return frame, skipped


# ---- JSONL -----------------------------------------------------------------------------------------


def _read_jsonl(data: bytes, text: str, source: str, str_columns: set[str], keep_all: bool) -> _Raw:
    frame = _jsonl_fast(data, str_columns, keep_all)
    if frame is not None:
        n = len(frame)
        if _physical_lines(text) == n:
            def line_of(pos: np.ndarray) -> np.ndarray:
                return np.asarray(pos, dtype=np.int64) + 1
        else:
            cache: list[np.ndarray] = []

            def line_of(pos: np.ndarray) -> np.ndarray:
                if not cache:
                    nb = [i for i, ln in enumerate(text.split("\n"), 1) if ln.strip()]
                    cache.append(np.asarray(nb, dtype=np.int64))
                return cache[0][pos]

        return _Raw(frame=frame, line_of=line_of, quarantined=[], rows_read=n)

    records: list[dict] = []
    line_nos: list[int] = []
    quarantined: list[Quarantined] = []
    rows = 0
    for i, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s:
            continue
        rows += 1
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            quarantined.append(Quarantined(file=source, line=i, field=None,
                                           reason=f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            quarantined.append(Quarantined(file=source, line=i, field=None,
                                           reason=f"not a JSON object (got {_json_type(obj)})"))
            continue
        records.append(obj)
        line_nos.append(i)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    lines_arr = np.asarray(line_nos, dtype=np.int64)
    return _Raw(frame=frame, line_of=lambda pos: lines_arr[pos], quarantined=quarantined, rows_read=rows,
                columns_known=bool(records))


def _json_type(obj: object) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(obj), "null" if obj is None else type(obj).__name__)


def _jsonl_fast(data: bytes, str_columns: set[str], keep_all: bool) -> pd.DataFrame | None:
    """pyarrow's JSON reader; ``None`` if it rejects the file (bad line, non-object, mixed types)."""
    schema = pa.schema([(c, pa.string()) for c in sorted(str_columns)])
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"))
    except (pa.ArrowException, ValueError):
        return None
    drop = []
    for name in table.column_names:
        col = table.column(name)
        if name in str_columns:
            # an explicit-schema column is added even when no line has the key: drop it then
            if col.null_count == len(col) and f'"{name}"'.encode() not in data:
                drop.append(name)
        elif keep_all and (pa.types.is_temporal(col.type) or pa.types.is_nested(col.type)):
            return None  # pyarrow re-typed a label (e.g. parsed a date string): keep the text as written
    if drop:
        table = table.drop_columns(drop)
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, UnicodeDecodeError):
        return None


# ---- Parquet ---------------------------------------------------------------------------------------


def _read_parquet(path: Path, source: str, wanted: set[str], keep_all: bool) -> _Raw:
    try:
        names = pq.read_schema(path).names
        columns = None if keep_all else ([c for c in names if c.strip() in wanted] or None)
        frame = pd.read_parquet(path, columns=columns)
    except Exception as exc:  # pyarrow raises a zoo of types for corrupt files
        raise InputError(f"{source}: cannot read Parquet file: {exc}", file=source) from exc
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return _Raw(frame=frame, line_of=lambda pos: np.asarray(pos, dtype=np.int64) + 1, quarantined=[],
                rows_read=len(frame))


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


@dataclass
class _Converted:
    """One column converted: ``values`` (NaN/NaT where missing or invalid) and boolean masks."""

    values: pd.Series
    missing: np.ndarray
    invalid: np.ndarray
    parsed: pd.Series | None = None  # what the invalid check looked at (for messages)


def _show(value: object, limit: int = 60) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _as_str(s: pd.Series) -> pd.Series:
    return s if s.dtype == _STR_DTYPE else s.astype(_STR_DTYPE)


_CLEAN_INFERRED = frozenset({"string", "empty", "integer", "floating", "mixed-integer-float", "decimal"})


def _odd_values(s: pd.Series, *, reject_bool: bool = False) -> np.ndarray:
    """Positions of an object column holding JSON objects/arrays (and bools if ``reject_bool``)."""
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) in _CLEAN_INFERRED:
        return np.zeros(len(s), dtype=bool)
    kinds: tuple[type, ...] = (dict, list, tuple, np.ndarray)
    if reject_bool:
        kinds += (bool, np.bool_)
    return s.map(lambda v: isinstance(v, kinds)).to_numpy(dtype=bool)


def _null_tokens(st: pd.Series, failed: np.ndarray) -> np.ndarray:
    """Which of the ``failed`` positions hold a null token (``NaN``, ``null``, ...)."""
    out = np.zeros(len(st), dtype=bool)
    pos = np.flatnonzero(failed)
    if len(pos):
        vals = st.iloc[pos].str.lower()
        out[pos] = vals.isin(_NULL_TOKENS).to_numpy(dtype=bool)
    return out


def _convert_str(s: pd.Series, col: str) -> _Converted:
    bad = _odd_values(s)
    st = _as_str(s.mask(bad) if bad.any() else s).str.strip()
    missing = (st.isna() | (st == "")).to_numpy(dtype=bool) & ~bad
    return _Converted(values=st.mask(missing | bad), missing=missing, invalid=bad)


def _convert_ts(s: pd.Series, col: str) -> _Converted:
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        vals = s.dt.tz_convert("UTC") if s.dt.tz is not None else s.dt.tz_localize("UTC")
        missing = vals.isna().to_numpy(dtype=bool)
        invalid = np.zeros(len(s), dtype=bool)
        parsed = None
    else:
        bad = _odd_values(s)
        st = _as_str(s.mask(bad) if bad.any() else s).str.strip()
        empty = (st.isna() | (st == "")).to_numpy(dtype=bool) & ~bad
        vals = pd.to_datetime(st.mask(empty | bad), utc=True, errors="coerce", format="ISO8601")
        failed = vals.isna().to_numpy(dtype=bool) & ~empty & ~bad
        tokens = _null_tokens(st, failed)
        missing = empty | tokens
        invalid = (failed & ~tokens) | bad
        parsed = None
    out_of_range = ((vals < _TS_MIN) | (vals > _TS_MAX)).to_numpy(dtype=bool)
    if out_of_range.any():
        invalid = invalid | out_of_range
        vals = vals.mask(out_of_range)
    vals = vals.astype(_TS_DTYPE) if vals.dtype != _TS_DTYPE else vals
    return _Converted(values=vals, missing=missing, invalid=invalid, parsed=parsed)


def _to_number(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """``(float values, missing, unparseable)`` for a column of any dtype."""
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Series(np.nan, index=s.index), s.isna().to_numpy(dtype=bool), s.notna().to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        num = s.astype("float64")
        return num, num.isna().to_numpy(dtype=bool), np.zeros(n, dtype=bool)
    bad = _odd_values(s, reject_bool=True)  # a JSON true must not pass as 1
    st = _as_str(s.mask(bad) if bad.any() else s).str.strip()
    empty = (st.isna() | (st == "")).to_numpy(dtype=bool) & ~bad
    masked = st.mask(empty | bad)
    try:  # pyarrow's cast is ~30x faster than to_numeric but all-or-nothing: use it when the column is clean
        num = pd.Series(pa_compute.cast(pa.array(masked, from_pandas=True), pa.float64())
                        .to_numpy(zero_copy_only=False), index=s.index, dtype="float64")
    except (pa.ArrowException, ValueError, TypeError):
        num = pd.to_numeric(masked, errors="coerce").astype("float64")
    failed = num.isna().to_numpy(dtype=bool) & ~empty & ~bad
    tokens = _null_tokens(st, failed)
    return num, empty | tokens, (failed & ~tokens) | bad


def _convert_float(s: pd.Series, col: str) -> _Converted:
    num, missing, invalid = _to_number(s)
    infinite = np.isinf(num.to_numpy(dtype="float64", na_value=np.nan))
    invalid = invalid | infinite
    return _Converted(values=num.mask(invalid), missing=missing, invalid=invalid, parsed=num)


def _convert_int(s: pd.Series, col: str) -> _Converted:
    num, missing, invalid = _to_number(s)
    arr = num.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        not_int = ~np.isnan(arr) & (~np.isfinite(arr) | (np.mod(arr, 1) != 0))
        bounds = _INT_RANGES.get(col)
        out_of_range = np.zeros(len(arr), dtype=bool)
        if bounds is not None:
            out_of_range = ~np.isnan(arr) & ~not_int & ((arr < bounds[0]) | (arr > bounds[1]))
        else:
            out_of_range = ~np.isnan(arr) & ~not_int & (np.abs(arr) > 2**63 - 1024)
    invalid = invalid | not_int | out_of_range
    return _Converted(values=num.mask(invalid), missing=missing, invalid=invalid, parsed=num)


_CONVERTERS: dict[str, Callable[[pd.Series, str], _Converted]] = {
    "str": _convert_str, "ts": _convert_ts, "int": _convert_int, "float": _convert_float,
}


def _reason(col: str, typ: str, raw: object, parsed: object) -> str:
    """Why ``raw`` (the value as read) is not a valid ``typ``; ``parsed`` is what parsing made of it."""
    if isinstance(raw, (dict, list, tuple, np.ndarray)):
        return f"{col} must be a scalar, got a JSON {'object' if isinstance(raw, dict) else 'array'}"
    if typ == "ts":
        if isinstance(raw, (pd.Timestamp, np.datetime64)):
            return f"timestamp {_show(str(raw))} out of range"
        return f"unparseable timestamp {_show(raw)}"
    if typ == "int":
        if isinstance(parsed, float) and np.isfinite(parsed) and parsed.is_integer() and col in _INT_RANGES:
            lo, hi = _INT_RANGES[col]
            return f"{col} {int(parsed)} is outside {lo}..{hi}"
        return f"{col} {_show(raw)} is not an integer"
    if typ == "float":
        if isinstance(parsed, float) and np.isinf(parsed):
            return f"{col} {_show(raw)} is not a finite number"
        return f"{col} {_show(raw)} is not numeric"
    return f"{col} {_show(raw)} is invalid"


def _empty_column(typ: str, n: int, required: bool) -> pd.Series:
    if typ == "ts":
        return pd.Series(pd.NaT, index=range(n), dtype=_TS_DTYPE)
    if typ in ("float", "int"):
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(np.nan, index=range(n), dtype=_STR_DTYPE)


def _finalize(values: pd.Series, typ: str, required: bool) -> pd.Series:
    if typ == "ts":
        return values.astype(_TS_DTYPE)
    if typ == "float":
        return values.astype("float64")
    if typ == "int":
        return values.astype("int64") if required else values.astype("Int64")
    return values.astype(_STR_DTYPE)


def _label(s: pd.Series) -> pd.Series:
    """A label column as stripped ``str``; missing stays NaN (never ``""``)."""
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = vals[~np.isnan(vals)]
        if np.isfinite(finite).all() and (np.mod(finite, 1) == 0).all() and (np.abs(finite) < 2**53).all():
            s = s.astype("Int64")  # an integer label column with gaps was widened to float: undo that
    st = _as_str(s).str.strip()
    return st.mask(st == "")


def _validate(raw: _Raw, contract: Contract, source: str, keep_extra: bool) -> LoadResult:
    frame = raw.frame.reset_index(drop=True)
    cols = list(frame.columns)
    missing_cols = [c for c in contract.required if c not in cols]
    if missing_cols and raw.columns_known:
        raise InputError(
            f"{source}: missing required column(s) {missing_cols} for {contract.name}; "
            f"found columns: {cols}", file=source, field=missing_cols[0])
    n = len(frame) if raw.columns_known else 0

    out: dict[str, pd.Series] = {}
    rejected = np.zeros(n, dtype=bool)
    quarantined = list(raw.quarantined)
    specs = [(c, t, True) for c, t in contract.required.items()] + \
            [(c, t, False) for c, t in contract.optional.items()]
    for col, typ, required in specs:
        if col not in cols or not raw.columns_known:
            out[col] = _empty_column(typ, n, required)
            continue
        conv = _CONVERTERS[typ](frame[col], col)
        fail = conv.invalid | (conv.missing if required else False)
        new = fail & ~rejected
        if new.any():
            pos = np.flatnonzero(new)
            lines = raw.line_of(pos).tolist()
            miss = conv.missing[pos]
            reasons: list[str] = [f"missing required field '{col}'"] * len(pos)
            if not miss.all():
                inv = np.flatnonzero(~miss)
                raws = frame[col].iloc[pos[inv]].tolist()
                parsed = (conv.parsed if conv.parsed is not None else conv.values).iloc[pos[inv]].tolist()
                for i, rv, pv in zip(inv.tolist(), raws, parsed):
                    reasons[i] = _reason(col, typ, rv, pv)
            quarantined.extend(Quarantined(file=source, line=ln, field=col, reason=r)
                               for ln, r in zip(lines, reasons))
        rejected |= fail
        out[col] = conv.values

    keep = ~rejected
    result = {}
    for col, typ, required in specs:
        result[col] = _finalize(out[col][keep].reset_index(drop=True), typ, required)
    if keep_extra and raw.columns_known:
        for col in cols:
            if col in result or col == "" or _UNNAMED.match(col):
                continue
            result[col] = _label(frame[col])[keep].reset_index(drop=True)
    df = pd.DataFrame(result)
    if len(df):
        df = df.sort_values(contract.time_column, kind="stable", ignore_index=True)
    else:
        df = df.reset_index(drop=True)
    quarantined.sort(key=lambda q: q.line)
    if quarantined:
        log.info("%s: %d of %d rows quarantined (first: line %d, %s)", source, len(quarantined),
                 raw.rows_read, quarantined[0].line, quarantined[0].reason)
    return LoadResult(frame=df, quarantined=quarantined, source=source, rows_read=raw.rows_read)
