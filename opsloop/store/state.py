"""Learned state kept between cycles, all in the store: the embedding cache, ticket themes, drain3
snapshots and the LLM answer cache. Themes and snapshots are written in the cycle's own transaction,
so a window's learned state commits (or rolls back) with its results."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsloop.clustering.themes import KnownTheme
from opsloop.store.models import DrainStateRow, EmbeddingCacheRow, LLMCacheRow, ThemeRow
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
    """Make the stored themes ``themes``: each upserted by id, and only the themes no longer in the
    list deleted (by id), so a concurrent reader never sees the table empty."""
    keep = {t.id for t in themes}
    stored = set(session.execute(select(ThemeRow.id)).scalars())
    gone = stored - keep
    if gone:
        session.execute(delete(ThemeRow).where(ThemeRow.id.in_(gone)))
    for t in themes:
        values = dict(centroid=np.asarray(t.centroid, dtype=np.float32).tobytes(), size=int(t.size),
                      label=t.label or "", last_seen=t.last_seen)
        row = session.get(ThemeRow, t.id) if t.id in stored else None
        if row is None:
            session.add(ThemeRow(id=t.id, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)


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


class StoreLLMCache(MutableMapping[str, Any]):
    """The LLM answer cache (key: model and prompt cache key, i.e. incident fingerprint + evidence
    hash; value: the JSON answer record) in the store's ``llm_cache`` table: one row per answer,
    written in its own short transaction, shared by every process on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getitem__(self, key: str) -> Any:
        with self.store() as s:
            row = s.get(LLMCacheRow, key)
            if row is None:
                raise KeyError(key)
            return row.value

    def __setitem__(self, key: str, value: Any) -> None:
        try:
            with self.store.begin() as s:
                row = s.get(LLMCacheRow, key)
                if row is None:
                    s.add(LLMCacheRow(key=key, value=value, created_at=now()))
                else:
                    row.value = value
        except IntegrityError:  # another process stored the same answer first
            pass

    def __delitem__(self, key: str) -> None:
        with self.store.begin() as s:
            if s.execute(delete(LLMCacheRow).where(LLMCacheRow.key == key)).rowcount != 1:
                raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self.store() as s:
            return iter(list(s.execute(select(LLMCacheRow.key)).scalars()))

    def __len__(self) -> int:
        with self.store() as s:
            return len(list(s.execute(select(LLMCacheRow.key)).scalars()))
