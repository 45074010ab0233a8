"""Learned state kept between cycles: the embedding cache, ticket themes, drain3 snapshots."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from opsloop.clustering.themes import KnownTheme
from opsloop.store.models import DrainStateRow, EmbeddingCacheRow, ThemeRow
from opsloop.store.repository import now
from opsloop.store.session import Store


class StoreEmbeddingCache:
    """:class:`~opsloop.clustering.themes.EmbeddingCache` in the store (float32 vectors by key), so a
    ticket is embedded once across cycles and processes."""

    def __init__(self, store: Store, batch: int = 500) -> None:
        self.store = store
        self.batch = batch

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self.store() as s:
            for i in range(0, len(keys), self.batch):
                rows = s.execute(select(EmbeddingCacheRow).where(EmbeddingCacheRow.key.in_(keys[i : i + self.batch])))
                out.update((r.key, np.frombuffer(r.vector, dtype=np.float32)) for r in rows.scalars())
        return out

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        with self.store.begin() as s:
            known = set(self.get_many(list(vectors)))
            t = now()
            s.add_all(EmbeddingCacheRow(key=k, vector=np.asarray(v, dtype=np.float32).tobytes(), created_at=t)
                      for k, v in vectors.items() if k not in known)


def load_themes(session: Session) -> list[KnownTheme]:
    return [KnownTheme(id=r.id, centroid=np.frombuffer(r.centroid, dtype=np.float32), size=r.size, label=r.label,
                       last_seen=r.last_seen) for r in session.execute(select(ThemeRow).order_by(ThemeRow.id)).scalars()]


def save_themes(session: Session, themes: list[KnownTheme]) -> None:
    """Replace the stored themes with ``themes``."""
    session.execute(delete(ThemeRow))
    session.add_all(ThemeRow(id=t.id, centroid=np.asarray(t.centroid, dtype=np.float32).tobytes(), size=int(t.size),
                             label=t.label or "", last_seen=t.last_seen) for t in themes)


def load_drain_states(session: Session) -> dict[str, bytes]:
    return {r.service: r.snapshot for r in session.execute(select(DrainStateRow)).scalars()}


def save_drain_states(session: Session, states: Mapping[str, bytes]) -> None:
    t = now()
    for service, snapshot in states.items():
        row = session.get(DrainStateRow, service)
        if row is None:
            session.add(DrainStateRow(service=service, snapshot=snapshot, updated_at=t))
        else:
            row.snapshot, row.updated_at = snapshot, t
