"""The ``opsloop`` command (typer + rich).

Human output goes to the terminal (progress to stderr); ``--json`` prints one JSON document on
stdout. Input errors exit with code 2 and a message naming the file, line and field.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from opsloop.actions import service
from opsloop.actions.outbox import stale_after_seconds
from opsloop.config import Settings, SettingsError, effective_settings
from opsloop.data.loaders import InputError
from opsloop.domain import (
    ROLES,
    ActionStatus,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    PolicyViolation,
    Role,
    utc,
)
from opsloop.store import repository as repo
from opsloop.store.models import ActionRow, IncidentRow
from opsloop.store.session import open_store

app = typer.Typer(help="opsloop: incident intelligence for SREs (observe → reason → decide → act).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
incidents_app = typer.Typer(help="Review incidents.", no_args_is_help=True)
actions_app = typer.Typer(help="Review, approve, reject and execute proposed actions; resolve or retry executions a crash left unknown.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
config_app = typer.Typer(help="The settings in force.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(actions_app, name="actions")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _redacted(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable URL)"


def _store(settings: Settings):
    """The migrated store of ``settings``; a database that cannot be opened (unreachable, no driver,
    bad URL) exits 2 with one line naming the URL without its password."""
    url = settings.resolved_database_url()
    try:
        return open_store(url)
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        _fail(f"cannot open the database {_redacted(url)}: {reason[0] if reason else type(exc).__name__}")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    """The settings from the environment (and ``overrides``, e.g. ``pack``); a bad value exits 2
    with a message naming the variable."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        _fail(str(exc))


def _choice(value: str | None, allowed: type[Enum] | tuple[str, ...], option: str) -> str | None:
    """``value`` if it is one of ``allowed`` (an Enum's values or a tuple), else exit 2 with one line
    naming the allowed values; ``None`` passes through (the option was not given)."""
    names = tuple(m.value for m in allowed) if isinstance(allowed, type) else allowed
    if value is not None and value not in names:
        _fail(f"{option}: {value!r} is not one of {', '.join(names)}")
    return value


def _resolve_id(row: type[IncidentRow | ActionRow], prefix: str) -> str:
    """The stored id of ``row``'s table equal to ``prefix`` or, failing that, the only one starting
    with it; ``prefix`` itself when none does (the command then reports it not found). Several
    matches exit 1 with one line listing them."""
    with _store(_settings())() as s:
        if s.get(row, prefix) is not None:
            return prefix
        ids = list(s.scalars(select(row.id).where(row.id.startswith(prefix, autoescape=True))
                             .order_by(row.id).limit(11)))
    if len(ids) > 1:
        shown = ", ".join(ids[:10]) + (", …" if len(ids) > 10 else "")
        _fail(f"{prefix!r} is ambiguous: it matches {shown}; give more of the id", 1)
    return ids[0] if ids else prefix


@contextmanager
def _progress(first: str) -> Iterator[Callable[[str], None]]:
    """Progress on stderr for a block: a rich spinner on a terminal, else (piped, redirected) one
    plain line per stage. Yields the function that announces the next stage."""
    if err.is_terminal:
        with err.status(first) as status:
            yield lambda stage: status.update(f"{stage} …")
        return
    err.print(f"… {first}", highlight=False, markup=False)
    yield lambda stage: err.print(f"… {stage}", highlight=False, markup=False)


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        _fail(f"--{name}: not an ISO-8601 time: {value!r}")
    return None


def _incident_json(inc: Incident) -> dict[str, Any]:
    a = inc.assessment
    return {
        "id": inc.id, "fingerprint": inc.fingerprint, "status": inc.status.value, "kind": inc.kind.value,
        "severity": inc.severity.value, "title": inc.title, "first_seen": inc.first_seen.isoformat(),
        "last_seen": inc.last_seen.isoformat(), "category": a.category if a else None,
        "confidence": a.confidence if a else None, "generated_by": a.generated_by if a else None,
        "llm_latency_s": a.latency_s if a else None, "llm_fallback_reason": a.fallback_reason if a else None,
        "narrative": a.narrative.value if a else None,
        "hypotheses": [{"category": h.category, "confidence": h.confidence, "supporting": len(h.supporting),
                        "contrary": len(h.contrary)} for h in a.hypotheses] if a else [],
        "insufficient_evidence": a.insufficient_evidence if a else None,
        "mitigation": [m.text for m in a.mitigation] if a else [],
        "affected": inc.affected,
        "revenue_at_risk_per_hour": a.risk.revenue_at_risk_per_hour if a else None,
        "anomalies": len(inc.anomalies), "clusters": [c.label for c in inc.clusters],
        "citations": [f"{c.document} > {c.section}" for c in a.citations] if a else [],
        "actions": [{"id": x.id, "type": x.type, "risk": x.risk.value, "status": x.status.value} for x in inc.actions],
    }


def _id_column(t: Table, header: str, ids: list[str]) -> None:
    """Add an id column that never wraps nor truncates, however narrow the terminal: ids are what a
    user copies into the next command."""
    t.add_column(header, no_wrap=True, min_width=max([len(header), *map(len, ids)]))


def _columns(t: Table, *headers: str) -> None:
    """Add columns that fold long values onto more lines rather than cut them with an ellipsis."""
    for h in headers:
        t.add_column(h, overflow="fold")


def _incident_table(incidents: list[Incident]) -> Table:
    t = Table(title=f"{len(incidents)} incident(s)", show_lines=False)
    _id_column(t, "id", [i.id for i in incidents])
    _columns(t, "severity", "kind", "category", "title", "first seen (UTC)", "last", "$/h at risk", "by",
             "actions")
    colors = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}
    for i in incidents:
        a = i.assessment
        money = a.risk.revenue_at_risk_per_hour if a and a.risk.revenue_at_risk_per_hour is not None else None
        t.add_row(i.id, f"[{colors[i.severity.value]}]{i.severity.value}[/]", i.kind.value, a.category if a else "-",
                  i.title, f"{i.first_seen:%Y-%m-%d %H:%M}", f"{i.last_seen:%m-%d %H:%M}",
                  f"{money:,.0f}" if money is not None else "-", a.generated_by if a else "-",
                  ", ".join(f"{x.type}:{x.status.value}" for x in i.actions) or "-")
    return t


def _pack(settings: Settings):
    from opsloop.packs import PackError, load_pack

    try:
        return load_pack(settings.pack)
    except PackError as exc:
        _fail(str(exc))


def _narrate(store, settings: Settings, pack, result, stage):
    """Narrate the cycle's pending incidents after the cycle committed them (nothing without a
    model); the narration's counts and time are added to the stored cycle report."""
    from opsloop.pipeline.narration import narrate_pending
    from opsloop.store import repository as repo

    if settings.llm.backend == "off" or not result.incidents:
        return result
    stage("narrate: the LLM writes the narratives")
    done = narrate_pending(store, settings, pack, incident_ids=[i.id for i in result.incidents])
    report = result.report
    report.counts.update(done.counts)
    report.degradations.extend(done.degradations)
    report.stage_seconds["narrate"] = done.seconds
    with store.begin() as session:
        repo.update_cycle_counts(session, report.id, report.counts)
        incidents = [repo.get_incident(session, i.id) for i in result.incidents]
    return dataclasses.replace(result, incidents=incidents, report=report)


def _run(settings: Settings, tickets, logs, kpis, runbooks, start, end, as_json: bool, extra=None):
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.observe import observe

    pack = _pack(settings)
    t0 = time.perf_counter()
    try:
        store = _store(settings)
        with _progress("observe: loading signals") as stage:
            signals = observe(tickets=tickets, logs=logs, kpis=kpis, start=start, end=end)
            result = run_cycle(signals, store, settings, runbooks=runbooks, progress=stage, pack=pack)
            stored = time.perf_counter() - t0
            result = _narrate(store, settings, pack, result, stage)
    except InputError as exc:
        _fail(str(exc))
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    wall = time.perf_counter() - t0
    report = result.report
    if as_json:
        doc = {"report": report.model_dump(mode="json"), "wall_seconds": round(wall, 2),
               "stored_seconds": round(stored, 2),
               "incidents": [_incident_json(i) for i in result.incidents]}
        if extra:
            doc.update(extra(result))
        typer.echo(json.dumps(doc, indent=2))
        return result
    out.print(_incident_table(result.incidents))
    c = report.counts
    out.print(f"cycle {report.id}: window {report.window.start:%Y-%m-%d %H:%M} → {report.window.end:%Y-%m-%d %H:%M} UTC; "
              f"{c.get('tickets', 0)} tickets, {c.get('log_events', 0)} log events, {c.get('kpi_points', 0)} KPI points, "
              f"{c.get('quarantined', 0)} quarantined; {c['anomalies']} anomalies, {c['clusters']} ticket clusters; "
              f"{c['incidents_new']} new / {c['incidents_updated']} updated incidents; {c['actions_new']} new actions "
              f"({c['actions_auto_executed']} auto-executed, {c.get('actions_failed', 0)} failed) in {wall:.1f} s",
              highlight=False)
    if report.context:
        why = ", ".join(f"{n} {r}" for r, n in sorted(Counter(x.reason for x in report.context).items()))
        out.print(f"context (paged nobody): {len(report.context)} candidate(s): {why}; "
                  f"{c.get('maintenance_suppressed', 0)} anomalies inside maintenance windows", highlight=False)
    if c.get("actions_stale"):
        err.print(f"[yellow]{c['actions_stale']} action(s) claimed but never finished are now unknown[/] (a crash "
                  "mid-execution): check, then `opsloop actions resolve ID --outcome succeeded|failed --note …` "
                  "or `opsloop actions retry ID`; see `opsloop actions list --status unknown`", highlight=False)
    for q in report.quarantined[:10]:
        err.print(f"[yellow]quarantined[/] {q.file}:{q.line}: {q.field or '-'}: {q.reason}", highlight=False)
    if len(report.quarantined) > 10:
        err.print(f"[yellow]… and {len(report.quarantined) - 10} more quarantined rows[/]")
    if "ticket_eps" in report.parameters:
        p = report.parameters
        radius = ("median core distance" if p["ticket_clustering"] == "hdbscan" else "DBSCAN eps")
        out.print(f"ticket clustering: {p['ticket_clustering']}, {radius} {p['ticket_eps']}, "
                  f"min_samples {p['ticket_min_samples']}", highlight=False)
    llm_total = c.get("llm_validated", 0) + c.get("llm_fallbacks", 0)
    if llm_total:
        out.print(f"LLM narratives ({settings.llm.backend}): {c.get('llm_validated', 0)} of {llm_total} written by the model and "
                  f"validated, {c.get('llm_fallbacks', 0)} fell back to the rules ({c.get('llm_calls', 0)} model calls, "
                  f"{c.get('llm_cache_hits', 0)} cache hits); reasons below and in `opsloop incidents show`",
                  highlight=False)
    for d in report.degradations:
        err.print(f"[yellow]degraded:[/] {d}", highlight=False)
    return result


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 7,
    days: Annotated[int, typer.Option(help="Days to simulate (>= 3).")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Simulate the checkout-migration scenario, run one cycle on it (the ``checkout`` pack), and compare
    with its ground truth."""
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.evaluate import match_ground_truth

    settings = _settings(pack="checkout")
    target = settings.home / "demo" / f"seed{seed}-days{days}"
    try:
        with _progress(f"simulating {days} days (seed {seed}) into {target}"):
            scenario = simulate(seed=seed, days=days)
            paths = write_scenario(scenario, target)
    except ValueError as exc:  # e.g. --days below 3
        _fail(f"--days/--seed: {exc}")
    truth = json.loads(paths["ground_truth"].read_text())

    def extra(result):
        return {"ground_truth": truth, "match": match_ground_truth(result.incidents, truth), "data": str(target)}

    result = _run(settings, paths["tickets"], paths["logs"], [paths["kpis"]], None, None, None, as_json, extra)
    if not as_json:
        m = match_ground_truth(result.incidents, truth)
        out.print(f"ground truth: found {len(m['found'])} of {len(truth)} injected incidents "
                  f"({sum(f['category_correct'] for f in m['found'])} with the right category), "
                  f"{len(m['false_incidents'])} false incident(s). Data: {target}", highlight=False)
        for miss in m["missed"]:
            out.print(f"[red]missed[/] {miss['truth']} {miss['name']}", highlight=False)
        out.print("Next: [bold]opsloop incidents show ID[/], [bold]opsloop actions list[/]")


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the scenario into.")],
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 7,
    days: Annotated[int, typer.Option(help="Days to simulate (>= 3).")] = 7,
) -> None:
    """Write the checkout-migration scenario (tickets, logs, KPIs, ground truth) to a directory."""
    from opsloop.packs.checkout.simulator import simulate as run_sim
    from opsloop.packs.checkout.simulator import write_scenario

    try:
        scenario = run_sim(seed=seed, days=days)
    except ValueError as exc:
        _fail(str(exc))
    paths = write_scenario(scenario, out_dir)
    for name, p in paths.items():
        out.print(f"{name:>12}: {p}")


def _split_paths(values: list[str] | None) -> list[Path]:
    return [Path(p) for v in values or [] for p in v.split(",") if p]


@app.command()
def cycle(
    tickets: Annotated[Path | None, typer.Option(help="Tickets file (CSV, JSONL or Parquet).")] = None,
    logs: Annotated[Path | None, typer.Option(help="Log events file (CSV, JSONL or Parquet).")] = None,
    kpis: Annotated[list[str] | None, typer.Option(help="KPI file(s), comma-separated or repeated; long or NAB form.")] = None,
    runbooks: Annotated[Path | None, typer.Option(help="Runbook directory (default: the knowledge base, else the pack's runbooks).")] = None,
    pack: Annotated[str | None, typer.Option(help="Domain pack: checkout, generic or a pack directory (default $OPSLOOP_PACK, else generic).")] = None,
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 (default: start of data).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601, exclusive (default: end of data).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one cycle on files (any subset of tickets, logs, KPIs)."""
    kpi_paths = _split_paths(kpis)
    if not (tickets or logs or kpi_paths):
        _fail("give at least one of --tickets, --logs, --kpis")
    settings = _settings(pack=pack) if pack else _settings()
    _run(settings, tickets, logs, kpi_paths, runbooks, _parse_time(start, "start"), _parse_time(end, "end"), as_json)


@app.command()
def narrate(
    incident: Annotated[list[str] | None, typer.Option(help="Only these incident ids (repeatable).")] = None,
    budget: Annotated[float | None, typer.Option(help="Stop taking new incidents after this many seconds.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the pending LLM narratives (incidents stored by cycles while a model is configured)."""
    from opsloop.pipeline.narration import narrate_pending

    settings = _settings()
    if settings.llm.backend == "off":
        _fail("no LLM is configured (OPSLOOP_LLM=ollama or llamacpp): nothing to narrate")
    done = narrate_pending(_store(settings), settings, _pack(settings), incident_ids=incident or None,
                           budget_seconds=budget)
    if as_json:
        typer.echo(json.dumps({"counts": done.counts, "degradations": done.degradations, "seconds": done.seconds}))
        return
    c = done.counts
    total = c.get("llm_validated", 0) + c.get("llm_fallbacks", 0)
    out.print(f"narratives: {c.get('llm_validated', 0)} of {total} written by the model, "
              f"{c.get('llm_fallbacks', 0)} fell back to the rules, {c.get('narratives_superseded', 0)} superseded "
              f"by a newer cycle, in {done.seconds:.1f} s", highlight=False)
    for d in done.degradations:
        err.print(f"[yellow]degraded:[/] {d}", highlight=False)


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(
        help=f"One of {', '.join(m.value for m in IncidentStatus)}.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, most severe first."""
    _choice(status, IncidentStatus, "--status")
    with _store(_settings())() as s:
        incs = [repo.get_incident(s, i.id) for i in repo.list_incidents(s, status)]
    if as_json:
        typer.echo(json.dumps([_incident_json(i) for i in incs], indent=2))
    else:
        out.print(_incident_table(incs))


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: JsonOpt = False) -> None:
    """One incident in full: assessment, evidence, assumptions, uncertainties, the cited runbook
    passages, risk and actions with their rationale. INCIDENT_ID may be a unique prefix."""
    incident_id = _resolve_id(IncidentRow, incident_id)
    with _store(_settings())() as s:
        try:
            inc = repo.get_incident(s, incident_id)
        except repo.NotFound as exc:
            _fail(str(exc), 1)
    if as_json:
        typer.echo(inc.model_dump_json(indent=2))
        return
    a = inc.assessment
    out.print(f"[bold]{inc.id}[/] {inc.severity.value} {inc.kind.value}: {inc.title}", highlight=False)
    out.print(f"{inc.first_seen:%Y-%m-%d %H:%M} → {inc.last_seen:%Y-%m-%d %H:%M} UTC; fingerprint {inc.fingerprint}")
    out.print(f"affected: {json.dumps(inc.affected)}", highlight=False)
    if a:
        by = a.generated_by + (f" in {a.latency_s:.1f} s" if a.latency_s is not None else "")
        rules = f"; the rules said {a.rule_category}" if a.rule_category else ""
        out.print(f"\n[bold]Assessment[/] ({by}, category {a.category}{rules}, confidence {a.confidence:.2f}; "
                  f"{a.narrative.phrase})", highlight=False)
        if a.fallback_reason:
            out.print(f"[yellow]LLM narrative not used:[/] {a.fallback_reason}", highlight=False)
        out.print(a.summary, highlight=False, markup=False)
        out.print(f"[bold]Root cause:[/] {a.root_cause}", highlight=False)
        if a.hypotheses:
            out.print("[bold]Hypotheses[/]" + (" [yellow](insufficient evidence to tell them apart)[/]"
                                              if a.insufficient_evidence else "") + ":", highlight=False)
            for n, h in enumerate(a.hypotheses, 1):
                out.print(f"  {n}. {h.title} ({h.category}, confidence {h.confidence:.2f})", highlight=False,
                          markup=False)
                if h.explanation and a.narrative.value == "written":
                    out.print(f"     {h.explanation}", highlight=False, markup=False)
                for x in h.supporting:
                    out.print(f"     + {x}", highlight=False, markup=False)
                for x in h.contrary:
                    out.print(f"     - {x}", highlight=False, markup=False)
        if a.mitigation:
            out.print(f"[bold]Mitigation[/] (quoted from {a.mitigation[0].document}):", highlight=False)
            for m in a.mitigation:
                out.print(f"  › {m.text}  [{m.section.split(' > ')[-1]}]", highlight=False, markup=False)
        out.print("[bold]Evidence:[/]")
        for e in a.evidence:
            out.print(f"  • {e}", highlight=False)
        if a.assumptions:
            out.print("[bold]Assumptions:[/]")
            for x in a.assumptions:
                out.print(f"  • {x}", highlight=False, markup=False)
        if a.uncertainties:
            out.print("[bold]Uncertainties:[/]")
            for u in a.uncertainties:
                out.print(f"  ? {u}", highlight=False, markup=False)
        r = a.risk
        if r.revenue_at_risk_per_hour is not None:
            out.print(f"[bold]Revenue at risk:[/] {r.lost_orders:.0f} lost orders, {r.revenue_at_risk_window:,.0f} "
                      f"{r.currency} over the span ({r.revenue_at_risk_per_hour:,.0f}/h, {r.revenue_at_risk_per_day:,.0f}/day; "
                      f"95% {r.interval[0]:,.0f}–{r.interval[1]:,.0f})", highlight=False)
        out.print(f"[dim]{r.method}[/]", highlight=False)
        out.print("[bold]Runbook passages:[/]")
        for c in a.citations:
            out.print(f"  [{c.chunk_id}] {c.document} › {c.section} (score {c.score:.3f})", highlight=False, markup=False)
            for line in c.text.strip().splitlines():
                out.print(f"      {line}", highlight=False, markup=False, soft_wrap=True)
    for c in inc.clusters:
        out.print(f"[bold]Tickets:[/] {c.size} × '{c.label}' ({', '.join(c.top_terms)})", highlight=False)
    for sig in inc.signatures:
        out.print(f"[bold]Log:[/] {sig.count} × {sig.template}", highlight=False)
    if inc.actions:
        t = Table(title="actions")
        _id_column(t, "id", [x.id for x in inc.actions])
        _columns(t, "type", "risk", "status", "needs approval", "params")
        for x in inc.actions:
            t.add_row(x.id, x.type, x.risk.value, x.status.value, "yes" if x.requires_approval else "no",
                      escape(json.dumps(x.params)))
        out.print(t)
        out.print("[bold]Why:[/]")
        for x in inc.actions:
            out.print(f"  {x.id} ({x.type}): {x.rationale}", highlight=False, markup=False, soft_wrap=True)


def _incident_op(incident_id: str, verb: str, token: str | None, reason: str | None) -> None:
    who = _caller(token, Role.operator)
    incident_id = _resolve_id(IncidentRow, incident_id)
    with _store(_settings()).begin() as s:
        try:
            inc = repo.move_incident(s, incident_id, verb, who, reason)
        except (repo.NotFound, repo.Conflict) as exc:
            _fail(str(exc), 1)
    out.print(f"{inc.id} is now [bold]{inc.status.value}[/]", highlight=False)


TokenOpt = Annotated[str | None, typer.Option(
    envvar="OPSLOOP_TOKEN", show_envvar=True,
    help="Your API token (`opsloop tokens create`): the change is made and audited as its owner.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")]


@incidents_app.command("ack")
def incidents_ack(incident_id: str, token: TokenOpt = None, reason: ReasonOpt = None) -> None:
    """Acknowledge an open incident: someone is on it (it is then not escalated)."""
    _incident_op(incident_id, "acknowledged", token, reason)


@incidents_app.command("resolve")
def incidents_resolve(incident_id: str, token: TokenOpt = None, reason: ReasonOpt = None) -> None:
    """Resolve an incident (a recurrence within the merge gap reopens it)."""
    _incident_op(incident_id, "resolved", token, reason)


@incidents_app.command("reopen")
def incidents_reopen(incident_id: str, token: TokenOpt = None, reason: ReasonOpt = None) -> None:
    """Reopen a resolved incident."""
    _incident_op(incident_id, "reopened", token, reason)


@actions_app.command("list")
def actions_list(
    status: Annotated[str | None, typer.Option(
        help=f"One of {', '.join(m.value for m in ActionStatus)}.")] = None,
    stale: Annotated[bool, typer.Option(
        "--stale", help="Only claims left executing past their executor's deadline plus a margin (a crash "
        "between claim and outcome): never run again, for an operator to check.")] = False,
    older_than: Annotated[float | None, typer.Option(
        min=0, help="With --stale: claimed more than this many seconds ago (default: the longest executor "
        "deadline plus OPSLOOP_ACTION_STALE_MARGIN_SECONDS).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Actions and their state."""
    _choice(status, ActionStatus, "--status")
    settings = _settings()
    if stale and status not in (None, ActionStatus.executing.value):
        _fail("--stale lists executing actions; it cannot be combined with another --status")
    threshold = (older_than if older_than is not None else stale_after_seconds(settings)) if stale else 0.0
    with _store(settings)() as s:
        if stale:
            acts = repo.stale_executions(s, threshold)
        else:
            acts = repo.list_actions(s, status)
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in acts], indent=2))
        return
    title = f"{len(acts)} stale claim(s), executing for over {threshold:g} s" if stale else f"{len(acts)} action(s)"
    t = Table(title=title)
    _id_column(t, "id", [a.id for a in acts])
    _id_column(t, "incident", [a.incident_id for a in acts])
    _columns(t, "type", "risk", "confidence", "status", "needs approval")
    for a in acts:
        t.add_row(a.id, a.incident_id, a.type, a.risk.value, f"{a.confidence:.2f}", a.status.value,
                  "yes" if a.requires_approval else "no")
    out.print(t)


def _caller(token: str | None, role: Role, settings: Settings | None = None) -> str:
    """The name of the token's owner if the token is valid and its role is at least ``role``; exit 2
    (no or unknown token) or 1 (role too low) with a one-line error otherwise."""
    if not token:
        _fail(f"this command acts as a token's owner: pass --token or set OPSLOOP_TOKEN (role {role.value} "
              "or higher; `opsloop tokens create`)")
    with _store(settings or _settings())() as s:
        ident = repo.token_identity(s, token.strip())
    if ident is None:
        _fail("the token is unknown, expired or revoked")
    name, has = ident
    if Role(has).rank < role.rank:
        _fail(f"needs role {role.value}; token {name!r} has {has}", 1)
    return name


def _action_op(op) -> None:
    try:
        a = op()
    except (repo.NotFound, repo.Conflict, PolicyViolation, ValueError) as exc:
        _fail(str(exc), 1)
    out.print(f"{a.id} ({a.type}) is now [bold]{a.status.value}[/]")


@actions_app.command("approve")
def actions_approve(
    action_id: str,
    token: TokenOpt = None,
) -> None:
    """Approve a proposed action as the token's owner (critical actions need a second, distinct approver)."""
    settings = _settings()
    who = _caller(token, Role.approver, settings)
    action_id = _resolve_id(ActionRow, action_id)

    def op():
        action, done = service.approve(_store(settings), action_id, who, settings.policy())
        if not done and action.status == ActionStatus.proposed:
            out.print(f"approval recorded; {action.id} needs another approver ({action.risk.value} risk)")
        return action

    _action_op(op)


@actions_app.command("reject")
def actions_reject(
    action_id: str,
    reason: Annotated[str, typer.Option(help="Why the action is rejected (required).")],
    token: TokenOpt = None,
) -> None:
    """Reject a proposed action with a reason (``proposed → rejected``)."""
    if not reason.strip():
        _fail("--reason must not be empty")
    who = _caller(token, Role.approver)
    action_id = _resolve_id(ActionRow, action_id)
    _action_op(lambda: service.reject(_store(_settings()), action_id, who, reason))


@actions_app.command("execute")
def actions_execute(
    action_id: str,
    token: TokenOpt = None,
) -> None:
    """Execute an approved action as the token's owner (exactly once: a second call is refused)."""
    settings = _settings()
    who = _caller(token, Role.operator, settings)
    action_id = _resolve_id(ActionRow, action_id)
    _action_op(lambda: service.execute(_store(settings), action_id, who, settings.policy(), settings))


@actions_app.command("resolve")
def actions_resolve(
    action_id: str,
    outcome: Annotated[str, typer.Option(help="What the check found: succeeded or failed.")],
    note: Annotated[str, typer.Option(help="What was checked (required, kept in the audit trail).")],
    token: TokenOpt = None,
) -> None:
    """Resolve an interrupted execution (``unknown``) as succeeded or failed after checking."""
    _choice(outcome, (ActionStatus.succeeded.value, ActionStatus.failed.value), "--outcome")
    if not note.strip():
        _fail("--note must not be empty")
    settings = _settings()
    who = _caller(token, Role.operator, settings)
    action_id = _resolve_id(ActionRow, action_id)
    _action_op(lambda: service.resolve(_store(settings), action_id, who, ActionStatus(outcome), note, settings))


@actions_app.command("retry")
def actions_retry(
    action_id: str,
    token: TokenOpt = None,
) -> None:
    """Run an interrupted execution (``unknown``) again, with the same idempotency key."""
    settings = _settings()
    who = _caller(token, Role.operator, settings)
    action_id = _resolve_id(ActionRow, action_id)
    _action_op(lambda: service.retry(_store(settings), action_id, who, settings.policy(), settings))


rag_app = typer.Typer(help="The runbook knowledge base (hybrid MiniLM + BM25 retrieval).", no_args_is_help=True)
app.add_typer(rag_app, name="rag")


def _kb():
    from opsloop.rag.store import open_knowledge_base

    settings = _settings()
    return open_knowledge_base(settings, _store(settings))


@rag_app.command("ingest")
def rag_ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories (md, txt, pdf).")] = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Also ingest the pack's and the uploaded runbooks.")] = False,
) -> None:
    """Add documents; unchanged ones are no-ops, changed ones replace their chunks."""
    from opsloop.rag.store import default_sources

    settings = _settings()
    sources = list(paths or []) + (default_sources(settings.home, _pack(settings).runbooks_path) if defaults else [])
    if not sources:
        _fail("give PATH… or --defaults")
    try:
        with _progress("embedding and indexing"):
            counts = _kb().ingest(sources)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(counts))


@rag_app.command("query")
def rag_query(
    text: str,
    k: Annotated[int | None, typer.Option("-k", help="Passages to return (default: settings.rag.top_k).")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25.")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Retrieve passages for a query."""
    _choice(mode, ("hybrid", "dense", "bm25"), "--mode")
    kb = _kb()
    k = _settings().rag.top_k if k is None else k
    if not kb.stats()["documents"]:
        _fail("the knowledge base is empty: run `opsloop rag ingest --defaults` or `opsloop rag ingest PATH`", 1)
    hits = kb.query(text, k=k, mode=mode)
    if as_json:
        typer.echo(json.dumps([h.model_dump(mode="json") for h in hits], indent=2))
        return
    for h in hits:
        out.print(f"[{h.chunk_id}] {h.document} › {h.section} (score {h.score:.3f})", highlight=False, markup=False)


@rag_app.command("stats")
def rag_stats() -> None:
    """Documents, chunks and index kind."""
    typer.echo(json.dumps(_kb().stats()))


@rag_app.command("clear")
def rag_clear() -> None:
    """Remove every document from the knowledge base (the cycle then uses the bundled runbooks)."""
    _kb().clear()
    out.print("knowledge base cleared")


tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


def _expiry(text: str) -> datetime | None:
    """``90d``/``12h``/``30m`` from now, or ``never``."""
    if text.strip().lower() == "never":
        return None
    from opsloop.runner.windows import parse_duration

    try:
        return repo.now() + parse_duration(text)
    except ValueError as exc:
        _fail(f"--expires-in: {exc} (or 'never')")


ExpiresOpt = Annotated[str, typer.Option("--expires-in", help="Valid for this long (e.g. 90d, 12h) or 'never'.")]


def _admin(token: str | None, settings: Settings) -> str:
    """The admin acting; with no active admin token in the store yet, the first token may be created
    without one (bootstrap) and is audited as ``admin``."""
    with _store(settings)() as s:
        bootstrap = not repo.has_admin_token(s)
    return "admin" if bootstrap and not token else _caller(token, Role.admin, settings)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who the token is for (a person; it names them in the audit trail).")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    expires_in: ExpiresOpt = "90d",
    token: TokenOpt = None,
) -> None:
    """Create an API token; it is printed once and stored hashed. Needs an admin token, except for the
    store's first admin token."""
    _choice(role, ROLES, "--role")
    settings = _settings()
    who = _admin(token, settings)
    try:
        with _store(settings).begin() as s:
            secret = repo.create_token(s, name, role, _expiry(expires_in), actor=who)
    except (ValueError, repo.Conflict) as exc:
        _fail(str(exc))
    out.print(secret, highlight=False)


@tokens_app.command("list")
def tokens_list(as_json: JsonOpt = False) -> None:
    """Every token's owner, role, state and times (never the secret)."""
    with _store(_settings())() as s:
        tokens = repo.list_tokens(s)
    if as_json:
        typer.echo(json.dumps([{**vars(t), **{k: v.isoformat() if v else None for k, v in vars(t).items()
                                               if k.endswith("_at")}} for t in tokens], indent=2))
        return
    table = Table()
    _columns(table, "name", "role", "state", "created (UTC)", "expires (UTC)")
    for t in tokens:
        table.add_row(t.name, t.role, t.state, f"{t.created_at:%Y-%m-%d %H:%M}",
                      f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never")
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str, token: TokenOpt = None) -> None:
    """Revoke a token at once (audited)."""
    settings = _settings()
    who = _caller(token, Role.admin, settings)
    try:
        with _store(settings).begin() as s:
            repo.revoke_token(s, name, who)
    except (repo.NotFound, repo.Conflict) as exc:
        _fail(str(exc), 1)
    out.print(f"token {name!r} revoked")


@tokens_app.command("rotate")
def tokens_rotate(name: str, expires_in: ExpiresOpt = "90d", token: TokenOpt = None) -> None:
    """Give a token a new secret (printed once); the old one stops working at once."""
    settings = _settings()
    who = _caller(token, Role.admin, settings)
    try:
        with _store(settings).begin() as s:
            secret = repo.rotate_token(s, name, who, _expiry(expires_in))
    except (repo.NotFound, repo.Conflict) as exc:
        _fail(str(exc), 1)
    out.print(secret, highlight=False)


maintenance_app = typer.Typer(help="Declared maintenance windows: their anomalies are context, not incidents.",
                               no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance")


def _selector(values: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            _fail(f"--label: expected NAME=VALUE, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


def _window_row(w: MaintenanceWindow) -> dict[str, Any]:
    return w.model_dump(mode="json")


@maintenance_app.command("add")
def maintenance_add(
    start: Annotated[str, typer.Option(help="Start, ISO-8601 (UTC if no offset).")],
    end: Annotated[str, typer.Option(help="End (exclusive), ISO-8601 (UTC if no offset).")],
    label: Annotated[list[str] | None, typer.Option(help="Only series with this label value, NAME=VALUE (repeatable).")] = None,
    reason: Annotated[str, typer.Option(help="Why (shown on the cycle report).")] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Declare a maintenance window: anomalies inside it on matching labels page nobody."""
    who = _caller(token, Role.operator)
    try:
        window = MaintenanceWindow(start=_parse_time(start, "start"), end=_parse_time(end, "end"),
                                   labels=_selector(label), reason=reason)
    except ValueError as exc:  # pydantic's ValidationError: say what, not where
        _fail(exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc))
    with _store(_settings()).begin() as s:
        window = repo.add_maintenance(s, window, who)
    if as_json:
        typer.echo(json.dumps(_window_row(window)))
        return
    out.print(f"maintenance window {window.id}: {window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC"
              f"{' on ' + ', '.join(f'{k}={v}' for k, v in window.labels.items()) if window.labels else ''}",
              highlight=False)


@maintenance_app.command("list")
def maintenance_list(as_json: JsonOpt = False) -> None:
    """The stored maintenance windows by start (the pack's are listed by `opsloop config show`)."""
    with _store(_settings())() as s:
        windows = repo.list_maintenance(s)
    if as_json:
        typer.echo(json.dumps([_window_row(w) for w in windows], indent=2))
        return
    table = Table()
    _id_column(table, "id", [w.id for w in windows])
    _columns(table, "start (UTC)", "end (UTC)", "labels", "reason", "by")
    for w in windows:
        table.add_row(w.id, f"{w.start:%Y-%m-%d %H:%M}", f"{w.end:%Y-%m-%d %H:%M}",
                      ", ".join(f"{k}={v}" for k, v in w.labels.items()) or "(all)", w.reason, w.created_by)
    out.print(table)


@maintenance_app.command("remove")
def maintenance_remove(
    window_id: str,
    token: TokenOpt = None,
) -> None:
    """Remove a stored maintenance window."""
    who = _caller(token, Role.operator)
    try:
        with _store(_settings()).begin() as s:
            repo.remove_maintenance(s, window_id, who)
    except repo.NotFound as exc:
        _fail(str(exc), code=1)
    out.print(f"maintenance window {window_id} removed")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs, Prometheus metrics at /metrics)."""
    import uvicorn

    uvicorn.run("opsloop.api.main:app", host=host, port=port, workers=workers, log_level="info")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain; exit 1 if any event was edited or deleted."""
    with _store(_settings())() as s:
        problems = repo.verify_audit(s)
        n = repo.count_rows(s)["audit_events"]
    if problems:
        for p in problems:
            err.print(f"[red]{p}[/]")
        raise typer.Exit(1)
    out.print(f"audit chain intact ({n} events)")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """The settings in force by group, where each value came from (default, environment variable
    or argument), and the domain pack. Secrets show as ***; exit 2 naming the variable if a value
    is invalid."""
    settings = _settings()
    shown = effective_settings(settings)
    p = _pack(settings)
    summary = {"name": p.name, "directory": str(p.root), "description": p.description, "labels": p.labels,
               "categories": list(p.category_names), "revenue_model": p.revenue is not None,
               "auto_execute": p.actions.auto_execute, "runbooks": str(p.runbooks_path) if p.runbooks_path else None}
    if as_json:
        typer.echo(json.dumps({**shown, "pack_summary": summary}, indent=2))
        return
    pack = shown["pack"]
    out.print(f"pack: {pack['value']} ({pack['source']}; a built-in pack name or a directory) -> {p.name} at {p.root}",
              highlight=False)
    out.print(f"  labels {', '.join(p.labels) or '-'}; categories {', '.join(p.category_names)}; revenue model "
              f"{'yes' if p.revenue else 'none'}; runs alone: {', '.join(p.actions.auto_execute) or 'nothing'}",
              highlight=False)
    t = Table(show_lines=False)
    for col in ("setting", "value", "source"):
        t.add_column(col)
    for name, entry in shown.items():
        if name == "pack":
            continue
        fields = entry.items() if "value" not in entry else [("", entry)]
        for field, e in fields:
            value = "(backend default)" if e["value"] is None else str(e["value"])
            t.add_row(f"{name}.{field}" if field else name, escape(value), e["source"])
    out.print(t)


def _register_schedule() -> None:
    from opsloop.runner.cli import schedule

    app.command("schedule")(schedule)


def _register_ui() -> None:
    from opsloop.ui.cli import ui

    app.command("ui")(ui)


_register_schedule()
_register_ui()


if __name__ == "__main__":
    app()
