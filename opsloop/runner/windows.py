"""Which windows a cycle runner processes: a fixed grid, a grace for late data, a catch-up bound.

Windows are ``[origin + k·every, origin + (k+1)·every)`` (UTC; the origin defaults to the Unix
epoch, so hourly windows start on the hour). A window is **due** at ``now`` once
``now >= window.end + grace``. After downtime every missed window is due; when more than
``max_catch_up`` are, the oldest are merged into one wide window covering them (so nothing goes
unread and a restart after a week offline runs ``max_catch_up + 1`` cycles, not thousands), then
the newest ``max_catch_up`` follow in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opsloop.domain import Window, utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Grid:
    """The window grid: ``every`` (window length), ``grace`` (how long after a window's end it is
    first run, for late data), ``max_catch_up`` (windows run one by one after downtime, ≥ 1),
    ``origin`` (aware UTC). Raises ``ValueError`` for a non-positive ``every`` or a negative
    ``grace``."""

    every: timedelta
    grace: timedelta = timedelta(0)
    max_catch_up: int = 24
    origin: datetime = EPOCH

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError(f"window length must be positive, got {self.every}")
        if self.grace < timedelta(0):
            raise ValueError(f"grace must not be negative, got {self.grace}")
        if self.max_catch_up < 1:
            raise ValueError(f"max_catch_up must be at least 1, got {self.max_catch_up}")
        object.__setattr__(self, "origin", utc(self.origin))

    def floor(self, t: datetime) -> datetime:
        """The latest grid point at or before ``t``."""
        k = (utc(t) - self.origin) // self.every
        return self.origin + k * self.every

    def ceil(self, t: datetime) -> datetime:
        """The earliest grid point at or after ``t``."""
        f = self.floor(t)
        return f if f == utc(t) else f + self.every

    def last_due_end(self, now: datetime) -> datetime:
        """The end of the newest window due at ``now``."""
        return self.floor(utc(now) - self.grace)

    def due(self, done_until: datetime | None, now: datetime) -> list[Window]:
        """Windows due at ``now`` after the watermark ``done_until`` (the end of the last window
        done; ``None``: nothing done yet, so only the newest due window), oldest first, with the
        catch-up merge of the module docstring."""
        last = self.last_due_end(now)
        start = self.ceil(done_until) if done_until is not None else last - self.every
        if start >= last:
            return []
        n = (last - start) // self.every
        if n <= self.max_catch_up:
            return [Window(start=start + i * self.every, end=start + (i + 1) * self.every) for i in range(n)]
        cut = last - self.max_catch_up * self.every
        return [Window(start=start, end=cut)] + self.due(cut, now)

    def between(self, start: datetime, until: datetime) -> list[Window]:
        """Every grid window inside ``[floor(start), ceil(until))``, oldest first (replay)."""
        a, b = self.floor(start), self.ceil(until)
        return [
            Window(start=a + i * self.every, end=a + (i + 1) * self.every)
            for i in range((b - a) // self.every)
        ]


def parse_duration(text: str, allow_zero: bool = False) -> timedelta:
    """``"5m"``, ``"1h"``, ``"90s"``, ``"1d"``, ``"1h30m"`` → timedelta. Raises ``ValueError`` naming
    the text for anything else, and for zero unless ``allow_zero`` (a grace may be ``0s``)."""
    if allow_zero and text.strip() == "0":
        return timedelta(0)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total, num = 0.0, ""
    for ch in text.strip().lower():
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
        else:
            raise ValueError(f"bad duration {text!r}: use a number with s, m, h, d or w (e.g. 5m, 1h, 1h30m)")
    if num or total < 0 or (total == 0 and not allow_zero):
        raise ValueError(f"bad duration {text!r}: use a number with s, m, h, d or w (e.g. 5m, 1h, 1h30m)")
    return timedelta(seconds=total)
