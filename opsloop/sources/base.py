"""The ``Source`` protocol: read the signals of a window, and say how far the source is complete.

A source returns rows whose event time lies in ``[since, window.end)``: ``since`` reaches back
before ``window.start`` so detectors get their history (baselines, ticket lookback). Its
``watermark()`` is the newest event time it holds (``None``: nothing yet, or unknown), which the
runner reports as the source's lag. Reading never mutates the source, so a window can be read
again after a crash and gives the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from opsloop.domain import Window
from opsloop.pipeline.observe import Signals


class SourceError(RuntimeError):
    """A source could not be read; the one-line message names the source (and the query, file or
    URL) and what failed. A cycle records it as a degradation and the window is retried."""


@runtime_checkable
class Source(Protocol):
    """A producer of signals.

    ``name``: how reports, ``/health`` and ``/metrics`` name it (e.g. ``prometheus:up``,
    ``files:./incoming``). ``read(window, since)``: a :class:`Signals` for ``window`` holding rows
    with event time in ``[since, window.end)``; raises :class:`SourceError`. ``watermark()``: the
    newest event time held (aware UTC) or ``None``.
    """

    name: str

    def read(self, window: Window, since: datetime) -> Signals: ...

    def watermark(self) -> datetime | None: ...
