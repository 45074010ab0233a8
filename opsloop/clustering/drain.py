"""Log templates with Drain (He et al. 2017, "Drain: An Online Log Parsing Approach with Fixed Depth
Tree"; the ``drain3`` implementation), one miner per service, persisted between cycles, and the
template-level anomalies of a window.

**Masking.** Variable tokens are replaced before mining by the one masker,
:mod:`opsloop.clustering.masking` (e-mails, UUIDs, timestamps, MAC and IP addresses, host names,
paths with ids, prefixed ids, versions, numbers with or without units; one token per field, lists of
a field as one token; HTTP status codes with their reason phrase kept). It feeds both drain3's
:class:`~drain3.template_miner_config.TemplateMinerConfig` (so ``miner.add_log_message`` /
``miner.match`` on raw lines mask the same way, through :func:`~opsloop.clustering.masking.mask_one`)
and the vectorised :func:`~opsloop.clustering.masking.mask_messages`.

**Parameters** (:func:`template_config`, one default for every source): similarity threshold
0.85 and depth 5 (the length and the first two tokens route a line in the prefix tree). Masking
is strong enough that what is left unmasked is mostly the event's own words, so a line joins a
template only when at most ~15% of its tokens differ: short events that differ in one word
(``VM Paused`` / ``VM Resumed``, ``disk limit ...`` / ``vcpu limit ...``) stay apart, and the HTTP
method (second token after a client IP) keeps ``GET`` / ``POST`` / ``DELETE`` apart. Chosen on
Loghub's 2k samples (:func:`grouping_accuracy`, ``benchmarks/logs.py``); it is the development set,
there is no held-out log corpus.

**Speed.** drain3 masks and mines line by line in Python (~10k lines/s here). Here each frame is
masked with vectorised pandas string operations (RE2 through pyarrow: the patterns avoid
look-arounds; Python ``re`` would be ~5x slower), each *distinct* masked message of a service is
mined once, and the template of every line is mapped back with ``factorize``. On the simulator
(≈ 460k lines, a few dozen distinct masked messages) masking is nearly all of the cost; see
``benchmarks/logs.py`` for the figures.

**State.** One ``TemplateMiner`` per service. Its Drain tree is saved with drain3's own
jsonpickle snapshot (zlib-compressed), either as files under ``state_dir`` (``<service>.drain3``)
or as bytes (:meth:`LogTemplateMiners.states`) for the store. Template ids (``tpl-<service>-<n>``)
are drain's cluster ids, stable for as long as the state is kept. jsonpickle restores arbitrary
Python objects: load state only from a trusted place.

**Anomalies** (:func:`detect_templates`): per template, the window's count against a trailing
baseline with the model of the registered ``log_template`` detector
(:func:`opsloop.detectors.log_template.share_surge`): the expected count is the template's baseline
*share* of its service's lines times the service's lines in the window, so the daily traffic cycle
cancels out. A template becomes an :class:`~opsloop.domain.Anomaly` with
:class:`~opsloop.evidence.LogTemplateEvidence` when it is

* **new** -- absent from the baseline and from the miner's earlier state -- and is an error template
  (most of its lines have status >= 400 or level WARN/ERROR), with at least ``min_new`` lines; its
  severity is at least ``medium``; or
* **surging** -- ``-log10 P(X >= k)`` with ``X ~ Poisson(expected)``
  (:func:`opsloop.detectors.tails.poisson_upper`) above ``threshold``, with ``k >= min_count`` and
  ``k >= min_ratio · expected``.

Kind ``hard`` when most of the template's lines are failed requests (status >= 400 or level ERROR),
else ``soft`` -- a WARN line of a request that succeeded (``201 … with empty cart``) counts as an
error for the "new error template" test but is a soft failure (the request worked, the outcome did
not), as in :class:`~opsloop.domain.Kind`. A new template is only judged when its service
has at least ``min_baseline_lines`` baseline lines (on a first cycle with no history nothing is "new").
"""

from __future__ import annotations

import base64
import re
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jsonpickle
import numpy as np
import pandas as pd
from drain3 import TemplateMiner
from drain3.file_persistence import FilePersistence
from drain3.masking import MaskingInstruction
from drain3.memory_buffer_persistence import MemoryBufferPersistence
from drain3.template_miner_config import TemplateMinerConfig

from opsloop.clustering.masking import mask_messages, mask_one
from opsloop.data.contracts import affected
from opsloop.detectors.log_template import LogTemplateConfig, LogTemplateDetector, share_surge
from opsloop.detectors.severity import at_least, severity_of
from opsloop.domain import Anomaly, Kind, LogSignature, Severity, Window
from opsloop.evidence import LogTemplateEvidence
from opsloop.packs.model import SeverityRules

DETECTOR = LogTemplateDetector.name
ERROR_LEVELS = ("WARN", "WARNING", "ERROR", "CRITICAL", "FATAL")
FAILURE_LEVELS = ("ERROR", "CRITICAL", "FATAL")

class _StatusAwareMask(MaskingInstruction):
    """drain3 masking instruction applying :func:`~opsloop.clustering.masking.mask_one` (all masks,
    status codes kept)."""

    def __init__(self) -> None:
        super().__init__(r"(?!)", "*")

    def mask(self, content: str, mask_prefix: str, mask_suffix: str) -> str:
        return mask_one(content)


def template_config(sim_th: float = 0.85, depth: int = 5, max_children: int = 100,
                    max_clusters: int | None = None) -> TemplateMinerConfig:
    """drain3 config set in code: Drain parameters and the masking of
    :data:`opsloop.clustering.masking.MASKS`.

    ``sim_th``: share of equal tokens (masks count as equal, drain3's ``<*>`` does not) for a line
    to join a template; ``depth``: prefix-tree depth (drain3 counts the root and the length layer,
    so ``depth - 2`` leading tokens route a line); ``max_children`` per tree node; ``max_clusters``
    (LRU) bound or ``None``. The defaults are the module docstring's.
    """
    cfg = TemplateMinerConfig()
    cfg.drain_sim_th = sim_th
    cfg.drain_depth = depth
    cfg.drain_max_children = max_children
    cfg.drain_max_clusters = max_clusters
    cfg.masking_instructions = [_StatusAwareMask()]
    cfg.mask_prefix, cfg.mask_suffix = "<", ">"
    cfg.parametrize_numeric_tokens = True
    cfg.snapshot_compress_state = True
    cfg.profiling_enabled = False
    return cfg


def grouping_accuracy(truth: pd.Series, predicted: pd.Series) -> float:
    """Grouping accuracy of a log parser (Zhu et al., ICSE-SEIP 2019, "Tools and Benchmarks for
    Automated Log Parsing", §III-C): the share of lines whose predicted group holds exactly the lines
    of their true event. ``truth`` and ``predicted``: one label per line, same length (positions
    matter, not the index). Returns a value in [0, 1]; 0 for no lines."""
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} lines, predicted {len(predicted)}")
    pair = pd.DataFrame({"t": np.asarray(truth), "p": np.asarray(predicted)})
    n = pair.groupby(["t", "p"]).size()
    t_size = pair["t"].value_counts().reindex(n.index.get_level_values("t")).to_numpy()
    p_size = pair["p"].value_counts().reindex(n.index.get_level_values("p")).to_numpy()
    exact = (n.to_numpy() == t_size) & (n.to_numpy() == p_size)
    return float(n.to_numpy()[exact].sum()) / max(len(pair), 1)


def _slug(service: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", service) or "_"


@dataclass
class MinedLogs:
    """Templates of a frame's lines: ``template_id`` (same index as the frame), ``templates`` id →
    text, ``service_of`` id → service, ``known_before`` ids that existed before this call, and
    ``distinct`` masked messages mined."""

    template_id: pd.Series
    templates: dict[str, str]
    service_of: dict[str, str]
    known_before: set[str]
    distinct: int


class LogTemplateMiners:
    """One drain3 ``TemplateMiner`` per service, persisted between cycles.

    Args:
        state_dir: directory of ``<service>.drain3`` snapshots (created on :meth:`save`); ``None``:
            in memory only (see :meth:`states`).
        config: drain3 config; default :func:`template_config`.
        states: snapshots by service as returned by :meth:`states` (e.g. from the store).
    """

    def __init__(self, state_dir: Path | str | None = None, config: TemplateMinerConfig | None = None,
                 states: Mapping[str, bytes] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.config = config or template_config()
        self._states = dict(states or {})
        self._miners: dict[str, TemplateMiner] = {}

    def _persistence(self, service: str):
        if self.state_dir is not None:
            return FilePersistence(str(self.state_dir / f"{_slug(service)}.drain3"))
        p = MemoryBufferPersistence()
        p.state = self._states.get(service)
        return p

    def miner(self, service: str) -> TemplateMiner:
        """The service's miner (its saved state loaded on first use)."""
        if service not in self._miners:
            self._miners[service] = TemplateMiner(self._persistence(service), self.config)
        return self._miners[service]

    @property
    def services(self) -> list[str]:
        return sorted(self._miners)

    @staticmethod
    def template_id(service: str, cluster_id: int) -> str:
        return f"tpl-{_slug(service)}-{cluster_id}"

    def mine(self, logs: pd.DataFrame, masked: pd.Series | None = None) -> MinedLogs:
        """Mine ``logs`` (columns ``service``, ``message``): each distinct masked message of a
        service goes through Drain once; the final template of every line is mapped back."""
        if masked is None:
            masked = mask_messages(logs["message"])
        service = logs["service"].fillna("unknown").astype("str")
        key = service + "\x1f" + masked
        codes, uniques = pd.factorize(key, sort=False)
        known_before = {self.template_id(s, cid) for s in set(service.unique())
                        for cid in self.miner(s).drain.id_to_cluster}
        cluster_of = np.empty(len(uniques), dtype=object)
        for i, u in enumerate(uniques):
            svc, text = u.split("\x1f", 1)
            cluster, _ = self.miner(svc).drain.add_log_message(text)
            cluster_of[i] = (svc, cluster.cluster_id)
        ids = np.array([self.template_id(s, c) for s, c in cluster_of], dtype=object)
        templates: dict[str, str] = {}
        service_of: dict[str, str] = {}
        for (svc, cid), tid in zip(cluster_of, ids):
            if tid not in templates:
                # a template may have been generalised by a later message: read it at the end
                templates[tid] = self.miner(svc).drain.id_to_cluster[cid].get_template()
                service_of[tid] = svc
        template_id = pd.Series(ids[codes] if len(codes) else np.array([], dtype=object), index=logs.index,
                                dtype="str")
        return MinedLogs(template_id, templates, service_of, known_before, len(uniques))

    def states(self) -> dict[str, bytes]:
        """Compressed snapshots by service (drain3's format), for storing elsewhere."""
        out = dict(self._states)
        for svc, m in self._miners.items():
            state = jsonpickle.dumps(m.drain, keys=True).encode("utf-8")
            out[svc] = base64.b64encode(zlib.compress(state))
        return out

    def save(self) -> None:
        """Write every loaded miner's snapshot (to ``state_dir``, or to the in-memory states)."""
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            for m in self._miners.values():
                m.save_state("cycle")
        else:
            self._states = self.states()


# --------------------------------------------------------------------------------------------------
# Template anomalies of a window
# --------------------------------------------------------------------------------------------------


@dataclass
class TemplateReport:
    """:func:`detect_templates` output: anomalies (strongest first), their log signatures, a
    per-template table (one row per template mined in the span: ``template_id, service, template,
    count, baseline_count, expected, tail, score, new, error, failure, flagged``; counts in lines,
    ``tail``/``score`` in -log10 p, ``score`` gated as the detector gates it) and figures (``lines``,
    ``window_lines``, ``distinct_masked``, ``templates``; ``mask_s``, ``mine_s``, ``count_s`` in
    seconds)."""

    anomalies: list[Anomaly]
    signatures: list[LogSignature]
    table: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)


def detect_templates(logs: pd.DataFrame, window: Window, miners: LogTemplateMiners, labels: Sequence[str],
                     config: LogTemplateConfig | None = None, masked: pd.Series | None = None,
                     severity: SeverityRules | None = None) -> TemplateReport:
    """Template anomalies and signatures of ``window`` (see the module docstring).

    Args:
        logs: logs-contract frame (``ts`` UTC, ``service``, ``message``; ``status``, ``level``,
            ``endpoint`` and label columns where present); it may hold more than the window: the
            baseline is the ``config.baseline_hours`` before ``window.start``, lines outside
            ``[start - baseline, end)`` are ignored. Every line in that span is mined (so the miners
            learn the baseline's templates too).
        window: the half-open UTC interval judged.
        miners: the per-service drain3 miners (updated in place; the caller saves them).
        labels: the blast-radius label columns (the domain pack's ``labels``) for ``affected``.
        config: the ``log_template`` detector's config (default :class:`LogTemplateConfig`).
        masked: :func:`~opsloop.clustering.masking.mask_messages` of ``logs["message"]`` if already
            computed (same index).
        severity: the pack's severity ladder (default :class:`~opsloop.packs.model.SeverityRules`);
            a new template is at least ``medium``.

    Returns:
        A :class:`TemplateReport`. Each anomaly's evidence: ``score`` the -log10 p of the window's
        count (ungated for a new template), ``observed`` lines in the window, ``expected`` lines,
        labels ``service`` and ``template_id``, up to 3 ``examples``, ``statuses``, ``endpoints``
        (up to 10) and ``affected`` (top 20 values per label).
    """
    cfg = config or LogTemplateConfig()
    rules = severity or SeverityRules()
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    base_start = start - pd.Timedelta(hours=cfg.baseline_hours)
    empty = TemplateReport([], [], pd.DataFrame(), {"lines": 0})
    if logs.empty:
        return empty
    frame = logs[(logs["ts"] >= base_start) & (logs["ts"] < end)]
    if frame.empty:
        return empty
    t0 = time.perf_counter()
    masked = mask_messages(frame["message"]) if masked is None else masked.loc[frame.index]
    t1 = time.perf_counter()
    mined = miners.mine(frame, masked)
    t2 = time.perf_counter()

    in_win = (frame["ts"] >= start).to_numpy()
    status = pd.to_numeric(frame["status"], errors="coerce").fillna(0).to_numpy() if "status" in frame else np.zeros(len(frame))
    level = frame["level"].fillna("").astype("str").str.upper() if "level" in frame else pd.Series("", index=frame.index)
    df = pd.DataFrame({"tid": mined.template_id.to_numpy(), "win": in_win,
                       "err": (status >= 400) | level.isin(ERROR_LEVELS).to_numpy(),
                       "fail": (status >= 400) | level.isin(FAILURE_LEVELS).to_numpy(),
                       "service": frame["service"].fillna("unknown").astype("str").to_numpy()})
    grp = df.groupby("tid", sort=True)
    win_grp = df[df["win"]].groupby("tid")
    table = pd.DataFrame({
        "count": grp["win"].sum().astype(int),
        "baseline_count": (grp.size() - grp["win"].sum()).astype(int),
        "error_share": win_grp["err"].mean(),
        "failure_share": win_grp["fail"].mean(),
    })
    table["error_share"] = table["error_share"].fillna(grp["err"].mean())
    table["failure_share"] = table["failure_share"].fillna(grp["fail"].mean())
    table["service"] = [mined.service_of[t] for t in table.index]
    table["template"] = [mined.templates[t] for t in table.index]
    svc_win = df[df["win"]].groupby("service").size()
    svc_base = df[~df["win"]].groupby("service").size()
    w_s = table["service"].map(svc_win).fillna(0).to_numpy(dtype=float)
    b_s = table["service"].map(svc_base).fillna(0).to_numpy(dtype=float)
    b = table["baseline_count"].to_numpy(dtype=float)
    k = table["count"].to_numpy(dtype=float)
    score, expected, tail = share_surge(k, w_s, b, b_s, cfg)
    error = table["error_share"].to_numpy() >= 0.5
    failure = table["failure_share"].to_numpy() >= 0.5
    new = (b == 0) & ~table.index.isin(list(mined.known_before)) & (b_s >= cfg.min_baseline_lines)
    flagged = ((new & error & (k >= cfg.min_new)) | (score > cfg.threshold)) & (k > 0)
    table = table.assign(expected=expected, tail=tail, score=score, new=new, error=error, failure=failure,
                         flagged=flagged)
    table.index.name = "template_id"

    hours = max((end - start).total_seconds() / 3600.0, 1e-9)
    step = pd.Timedelta(cfg.bucket)
    anomalies: list[Anomaly] = []
    signatures: list[LogSignature] = []
    win_frame = frame[in_win]
    win_tid = mined.template_id[in_win]
    for tid in table.index[flagged]:
        r = table.loc[tid]
        rows = win_frame[(win_tid == tid).to_numpy()]
        kind = Kind.hard if r["failure"] else Kind.soft
        buckets = rows.groupby(rows["ts"].dt.floor(cfg.bucket)).size()
        base_rate = float(r["baseline_count"]) / cfg.baseline_hours
        evidence = LogTemplateEvidence(
            metric=DETECTOR, labels={"service": r["service"], "template_id": tid}, score=float(r["tail"]),
            observed=float(r["count"]), expected=float(r["expected"]), direction="up",
            affected=affected(rows, labels, top=20), template_id=tid, template=r["template"],
            service=r["service"], count=int(r["count"]), baseline_count=int(r["baseline_count"]),
            baseline_hours=cfg.baseline_hours, new=bool(r["new"]), error=bool(r["error"]),
            failure=bool(r["failure"]),
            statuses={str(s): int(n) for s, n in rows["status"].value_counts().items()} if "status" in rows else {},
            endpoints=sorted(rows["endpoint"].dropna().astype(str).unique().tolist())[:10] if "endpoint" in rows else [],
            examples=rows["message"].drop_duplicates().head(3).astype(str).tolist(),
        )
        grade = severity_of(evidence.score, cfg.threshold, kind, rules.steps, rules.kind_bump, rules.evidence_max)
        anomalies.append(Anomaly(
            kind=kind, start=buckets.index.min().to_pydatetime(), end=(buckets.index.max() + step).to_pydatetime(),
            peak=buckets.idxmax().to_pydatetime(), evidence=evidence,
            severity=at_least(grade, Severity.medium) if evidence.new else grade,
        ))
        signatures.append(LogSignature(template_id=tid, template=f"{r['service']} {r['template']}",
                                       count=int(r["count"]), baseline_rate=base_rate,
                                       rate=float(r["count"]) / hours))
    t3 = time.perf_counter()
    order = np.argsort([-a.score for a in anomalies], kind="stable")
    return TemplateReport(
        anomalies=[anomalies[i] for i in order], signatures=[signatures[i] for i in order],
        table=table.reset_index(),
        stats={"lines": len(frame), "window_lines": int(in_win.sum()), "distinct_masked": mined.distinct,
               "templates": len(table), "mask_s": round(t1 - t0, 3), "mine_s": round(t2 - t1, 3),
               "count_s": round(t3 - t2, 3)},
    )
