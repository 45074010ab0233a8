from datetime import UTC, datetime, timedelta

import pytest

from opsloop.runner.windows import Grid, parse_duration

H = timedelta(hours=1)


def t(h: float) -> datetime:
    return datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=h)


def test_due_windows_are_on_the_grid_after_the_grace():
    grid = Grid(every=H, grace=timedelta(minutes=5))
    assert [w.start for w in grid.due(t(0), t(3) + timedelta(minutes=4))] == [
        t(0),
        t(1),
    ]  # 02:00-03:00 not yet due
    assert [w.start for w in grid.due(t(0), t(3) + timedelta(minutes=5))] == [t(0), t(1), t(2)]
    assert grid.due(t(3), t(3) + timedelta(minutes=30)) == []
    first = grid.due(None, t(5) + timedelta(minutes=20))  # nothing done yet: only the newest due window
    assert [(w.start, w.end) for w in first] == [(t(4), t(5))]


def test_a_watermark_off_the_grid_resumes_at_the_next_grid_point():
    assert [w.start for w in Grid(every=H).due(t(1.5), t(4))] == [t(2), t(3)]


def test_catch_up_after_downtime_merges_the_oldest_windows_into_one():
    grid = Grid(every=H, max_catch_up=3)
    due = grid.due(t(0), t(10))
    assert [(w.start, w.end) for w in due] == [(t(0), t(7)), (t(7), t(8)), (t(8), t(9)), (t(9), t(10))]
    assert due[0].end == due[1].start  # nothing between the merged window and the rest is skipped


def test_replay_windows_cover_the_span():
    ws = Grid(every=timedelta(minutes=30)).between(t(0.2), t(2))
    assert ws[0].start == t(0) and ws[-1].end == t(2) and len(ws) == 4
    assert all(a.end == b.start for a, b in zip(ws, ws[1:]))


def test_bad_grids_and_durations_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="positive"):
        Grid(every=timedelta(0))
    with pytest.raises(ValueError, match="max_catch_up"):
        Grid(every=H, max_catch_up=0)
    assert parse_duration("1h30m") == timedelta(minutes=90) and parse_duration("5m") == timedelta(minutes=5)
    for bad in ("", "5", "h", "1x", "0s", "-5m"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)
