"""File sources: signal files given by path, and a watched directory that picks up new files.

Both load each file with the contract loaders (:mod:`opsloop.data.loaders`: validation, quarantine)
once per version of the file (path, size, modification time) and slice what a window asks for, so
a runner reading hundreds of windows parses each file once. A file's quarantined rows are reported
by the first read after the file (or its new version) was loaded.

A **directory source** takes a file's signal type from its name's first word or from the
subdirectory it is in: ``tickets*.jsonl`` or ``tickets/…``, ``logs*.parquet`` or ``logs/…``,
``kpis*.csv`` or ``kpis/…`` (CSV, JSON lines or Parquet). Files appearing later are read by the next
window; a file still being written (modified less than ``settle_seconds`` ago) waits a window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from opsloop.data import contracts as C
from opsloop.data.loaders import InputError, LoadResult, load_kpis, load_logs, load_tickets
from opsloop.domain import Quarantined, Window, utc
from opsloop.pipeline.observe import Signals, empty_frame
from opsloop.sources.base import SourceError

LOADERS = {"tickets": load_tickets, "logs": load_logs, "kpis": load_kpis}
CONTRACTS = {"tickets": C.TICKETS, "logs": C.LOGS, "kpis": C.KPIS}
SUFFIXES = {".csv", ".jsonl", ".json", ".ndjson", ".parquet"}


@dataclass
class _Loaded:
    version: tuple[int, int]
    result: LoadResult
    reported: bool = False


@dataclass
class _FileCache:
    """Loaded files by path, reloaded when their size or modification time changes."""

    files: dict[tuple[str, Path], _Loaded] = field(default_factory=dict)

    def get(self, kind: str, path: Path) -> _Loaded:
        try:
            st = path.stat()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        version = (st.st_size, st.st_mtime_ns)
        hit = self.files.get((kind, path))
        if hit is None or hit.version != version:
            try:
                hit = _Loaded(version, LOADERS[kind](path))
            except InputError as exc:
                raise SourceError(str(exc)) from exc
            self.files[(kind, path)] = hit
        return hit


def _slice(
    kind: str, loaded: list[_Loaded], window: Window, since: datetime
) -> tuple[pd.DataFrame, list[Quarantined]]:
    contract = CONTRACTS[kind]
    col = contract.time_column
    frames = []
    quarantined: list[Quarantined] = []
    for f in loaded:
        frame = f.result.frame
        if not frame.empty:
            ts = frame[col]
            frames.append(frame[(ts >= pd.Timestamp(since)) & (ts < pd.Timestamp(window.end))])
        if not f.reported:
            quarantined += f.result.quarantined
            f.reported = True
    frames = [x for x in frames if not x.empty]
    if not frames:
        return empty_frame(contract), quarantined
    return pd.concat(frames, ignore_index=True).sort_values(col, kind="stable").reset_index(
        drop=True
    ), quarantined


def _read(loaded: list[tuple[str, _Loaded]], window: Window, since: datetime) -> Signals:
    frames, quarantined = {}, []
    for kind in LOADERS:
        frames[kind], q = _slice(kind, [f for k, f in loaded if k == kind], window, since)
        quarantined += q
    return Signals(
        window=window, quarantined=quarantined, sources=[f.result.source for _, f in loaded], **frames
    )


def _newest(loaded: list[tuple[str, _Loaded]]) -> datetime | None:
    times = [f.result.frame[CONTRACTS[k].time_column].max() for k, f in loaded if not f.result.frame.empty]
    return utc(max(times).to_pydatetime()) if times else None


class FileSource:
    """Signals from files given by path: ``tickets``, ``logs`` and ``kpis`` (lists of paths; any may
    be empty). Raises :class:`SourceError` naming the file when one cannot be read."""

    def __init__(
        self,
        tickets: list[Path] | None = None,
        logs: list[Path] | None = None,
        kpis: list[Path] | None = None,
    ) -> None:
        self.paths = {"tickets": list(tickets or []), "logs": list(logs or []), "kpis": list(kpis or [])}
        if not any(self.paths.values()):
            raise ValueError("a file source needs at least one tickets, logs or kpis file")
        self.name = "files:" + ",".join(str(p) for ps in self.paths.values() for p in ps)
        self._cache = _FileCache()

    def _loaded(self) -> list[tuple[str, _Loaded]]:
        return [(k, self._cache.get(k, p)) for k, ps in self.paths.items() for p in ps]

    def read(self, window: Window, since: datetime) -> Signals:
        """Rows with event time in ``[since, window.end)`` of every file (see the module docstring)."""
        return _read(self._loaded(), window, since)

    def watermark(self) -> datetime | None:
        """The newest event time in the files (``None`` if they hold no valid row)."""
        return _newest(self._loaded())


def _kind_of(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root)
    for part in (rel.parts[0] if len(rel.parts) > 1 else "", path.name):
        for kind in LOADERS:
            if part.lower().startswith(kind):
                return kind
    return None


class DirectorySource:
    """Signals from every signal file under ``root`` (see the module docstring for how a file's
    type is told); files whose type cannot be told are listed in ``ignored``."""

    def __init__(self, root: Path, settle_seconds: float = 2.0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: not a directory")
        self.name = f"dir:{self.root}"
        self.settle_seconds = settle_seconds
        self.ignored: list[Path] = []
        self._cache = _FileCache()

    def files(self) -> list[tuple[str, Path]]:
        """``(kind, path)`` of the settled signal files under the root, sorted by path."""
        out, ignored = [], []
        cutoff = time.time() - self.settle_seconds
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES):
            kind = _kind_of(path, self.root)
            if kind is None:
                ignored.append(path)
            elif path.stat().st_mtime <= cutoff:
                out.append((kind, path))
        self.ignored = ignored
        return out

    def _loaded(self) -> list[tuple[str, _Loaded]]:
        return [(k, self._cache.get(k, p)) for k, p in self.files()]

    def read(self, window: Window, since: datetime) -> Signals:
        """Rows with event time in ``[since, window.end)`` of every settled file under the root."""
        return _read(self._loaded(), window, since)

    def watermark(self) -> datetime | None:
        """The newest event time in the settled files (``None`` if none)."""
        return _newest(self._loaded())
