"""Small display helpers shared by the pages: status and severity chips, UTC times, money."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

_COLOURS = {
    "critical": "red", "high": "orange", "medium": "yellow", "low": "blue",
    "open": "red", "reopened": "red", "acknowledged": "orange", "mitigating": "orange", "resolved": "green",
    "proposed": "blue", "approved": "violet", "executing": "orange", "succeeded": "green", "failed": "red",
    "rejected": "gray", "expired": "gray", "unknown": "red",
    "ok": "green", "degraded": "orange", "down": "red",
    "narrative by the rules": "gray", "narrative pending": "blue", "narrative written": "green",
    "narrative fell back": "orange",
}


def chip(word: str, prefix: str = "") -> None:
    """A coloured badge showing ``word`` (a severity, status, risk or health)."""
    st.badge(f"{prefix}{word}", color=_COLOURS.get(word, "gray"))  # type: ignore[arg-type]


def chips(*words: str) -> str:
    """Markdown badges for several words on one line."""
    return " ".join(f":{_COLOURS.get(w, 'gray')}-badge[{w}]" for w in words if w)


def when(t: datetime | None) -> str:
    """``2026-11-05 14:05 UTC`` (or an em dash)."""
    return f"{t:%Y-%m-%d %H:%M} UTC" if t else "—"


def money(amount: float | None, currency: str) -> str | None:
    """``12,345 EUR``; ``None`` when there is no amount (no revenue model)."""
    if amount is None:
        return None
    return f"{amount:,.0f} {currency}".strip()
