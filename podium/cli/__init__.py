"""The ``podium`` command line. Every command goes through ``podium.Client``."""

from __future__ import annotations

import asyncio
import json
import signal as _signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from ..client import Client
from ..config import Settings
from ..engine.worker import Worker
from ..errors import PodiumError, RunCancelledError, RunFailedError
from ..records import Run
from ..types import RunStatus, check_queue_name
from . import render
from .access import DbOption, TenantOption, acting
from .loader import load_flow, load_module

T = TypeVar("T")

app = typer.Typer(
    name="podium",
    help="Podium: durable, observable AI orchestration. Run flows, steer them, look inside.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = render.console()
err = render.console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(code)


def _json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        _fail(f"{what} is not valid JSON ({exc.msg} at position {exc.pos}): {value!r}")


def who() -> str:
    """Who acts, as the journal and the audit trail record it: ``cli:<the OS user>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _settings(db: str | None) -> Settings:
    return Settings.from_env(database_url=db)


def _narrator(settings: Settings) -> Callable[[str], None]:
    """How a long-running command (worker, serve) reports: rich lines on stderr, or with
    ``PODIUM_LOG_FORMAT=json`` log records, all logging then being JSON lines on stderr."""
    obs = settings.observability
    if obs.log_format != "json":
        return lambda message: err.print(escape(message))
    import logging

    from ..observability.logs import configure_logging

    configure_logging(obs.log_level)
    return logging.getLogger("podium.cli").info


def _call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` and turn Podium's user-facing errors into one clear line."""
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except PodiumError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


@app.command("run")
def run_cmd(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:FLOW", help="e.g. examples/hello.py:hello")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="The flow's input as JSON")] = None,
    key: Annotated[
        str | None, typer.Option("--key", "-k", help="Idempotency key: same key, same run")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Only enqueue; a `podium worker` runs it")
    ] = False,
    pin: Annotated[
        list[str] | None,
        typer.Option("--pin", help="KEY=VALUE, repeatable: e.g. model:default=smart or prompt:triage=3"),
    ] = None,
    tenant: TenantOption = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The data subject (a person) whose data the run holds")
    ] = None,
    db: DbOption = None,
) -> None:
    """Start a flow and (unless --no-wait) run it here until it finishes."""
    flow = load_flow(flow_ref)
    value = _json(input, "--input")
    pins: dict[str, str] = {}
    for p in pin or []:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            _fail(f"--pin takes KEY=VALUE, not {p!r}")
        pins[k.strip()] = v

    async def go() -> None:
        async with Client(_settings(db), worker=not no_wait) as client:
            handle = await acting(client, tenant).start(
                flow, value, key=key, pins=pins or None, subject=subject
            )
            if no_wait:
                module = flow_ref.rpartition(":")[0]
                hint = escape(f"({flow.name}); run `podium worker {module}`")
                out.print(f"started run [bold]{handle.id}[/] {hint}")
                return
            await _follow(client, handle.id)

    _call(go)


async def _follow(client: Client, run_id: str) -> None:
    """Wait for a run with a live status line; print its outcome."""
    spinner = Spinner("dots", text="starting")
    hinted: set[str] = set()
    with Live(spinner, console=err, transient=True, refresh_per_second=12) as live:
        while True:
            run = await client.get(run_id)
            if run.status.terminal:
                break
            rows = await client.timeline(run_id)
            done = sum(1 for r in rows if r.status in ("ok", "fired", "received", "approved", "completed"))
            text = Text.assemble(
                ("run ", "dim"), run_id, " ", render.status_text(run.status), f"  {done} step(s) done"
            )
            if run.status is RunStatus.WAITING:
                for p in await client.pending_approvals(run_id):
                    text.append(f"  waiting for approval {p.name!r}", style="magenta")
                    if p.position not in hinted:
                        hinted.add(p.position)
                        live.console.print(
                            f"run {run_id} waits for approval [bold]{p.name}[/] "
                            f"of {render.short(p.payload)}\n"
                            f"  decide from another terminal: podium approve {run_id}"
                            f"  |  podium reject {run_id}"
                        )
            spinner.update(text=text)
            try:
                await client.result(run_id, timeout=0.25)
            except TimeoutError:
                pass
            except (RunFailedError, RunCancelledError):
                break
    run = await client.get(run_id)
    if run.status is RunStatus.COMPLETED:
        out.print(json.dumps(run.output, indent=2, ensure_ascii=False, default=str))
        err.print(Text.assemble(("✔ ", "green"), f"run {run_id} completed"))
        return
    detail = f"{run.error.get('type')}: {run.error.get('message')}" if run.error else run.status.value
    _fail(f"run {run_id} {run.status.value}: {detail}")


@app.command()
def worker(
    modules: Annotated[
        list[str] | None, typer.Argument(help="Modules or .py files whose flows to run")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Runs executed at once")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: any free port)"),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Serve only the flows of this queue (repeat for several)"),
    ] = None,
    db: DbOption = None,
) -> None:
    """Run a worker: claim runnable runs of the loaded flows and execute them until stopped."""
    for m in modules or []:
        try:
            load_module(m.rpartition(":")[0] if ":" in m and not m.endswith(".py") else m)
        except PodiumError as exc:
            _fail(str(exc))
    from ..triggers.nats import load_events, servers_from
    from ..workflow.flow import registered

    settings = _settings(db).with_(**({"concurrency": concurrency} if concurrency else {}))
    events = load_events(settings.config, load=load_flow)  # imports the events' flows too
    names = sorted(registered())
    if not names:
        _fail("no flows loaded: pass the modules that define them, e.g. `podium worker examples/hello.py`")
    if queue:
        try:
            queues = {check_queue_name(q) for q in queue}
        except PodiumError as exc:
            _fail(str(exc))
        names = [n for n in names if registered()[n].queue in queues]
        if not names:
            _fail(f"no loaded flow is in queue {', '.join(sorted(queues))}")

    say = _narrator(settings)

    async def go() -> None:
        from ..runtime import close_observers, make_observers

        client = Client(settings, worker=False)
        await client.open()
        observers = make_observers(settings, store=client.store)
        server = None
        if metrics_port is not None:
            from ..observability.metrics import MetricsObserver, find_metrics, serve_metrics

            metrics = find_metrics(observers)
            if metrics is None:
                metrics = MetricsObserver(store=client.store, process=True)
                observers.append(metrics)
            server = serve_metrics(metrics.registry, metrics_port)
            say(f"metrics on http://127.0.0.1:{server.server_port}/metrics")
        w = Worker(client.store, settings, observers=observers, queues=queue or None)
        say(f"worker {w.owner} on {settings.database_url}: flows {', '.join(names)} (Ctrl-C stops)")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await w.start()
        consumers = None
        try:
            if events:
                from ..triggers.nats import start_events

                servers = servers_from(settings.config)
                consumers = await start_events(Client.for_worker(w), events, servers=servers)
                say(f"consuming NATS events: {', '.join(sorted(events))}")
            await stop.wait()
        finally:
            say("stopping: releasing held runs")
            if consumers is not None:
                await consumers.stop()
            await w.stop()
            close_observers(observers)
            if server is not None:
                server.shutdown()
            await client.close()

    _call(go)


@app.command()
def runs(
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="pending|running|waiting|completed|failed|cancelled")
    ] = None,
    flow: Annotated[str | None, typer.Option("--flow", "-f")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """List runs, newest first."""

    async def go() -> list[Run]:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant).list(status=status, flow=flow, limit=limit)

    items = _call(go)
    if as_json:
        typer.echo(json.dumps([_run_json(r) for r in items], indent=2, ensure_ascii=False, default=str))
    else:
        out.print(render.runs_table(items))


def _run_json(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "flow": r.flow,
        "status": r.status.value,
        "input": r.input,
        "output": r.output,
        "error": r.error,
        "key": r.key,
        "parent_id": r.parent_id,
        "queue": r.queue,
        "priority": r.priority,
        "tenant": r.tenant,
        "created_at": r.created_at,
        "ended_at": r.ended_at,
    }


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    journal: Annotated[bool, typer.Option("--journal", help="Also print the raw journal")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Show a run: status, input/output, and its timeline of steps (attempts, durations, errors)."""

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as c:
            client = acting(c, tenant)
            run = await client.get(run_id)
            return (
                run,
                await client.timeline(run_id),
                await client.pending_approvals(run_id),
                (await client.journal(run_id) if journal or as_json else []),
                await client.usage(run_id),
            )

    run, rows, pending, entries, used = _call(go)
    if as_json:
        journal_json = [
            {"seq": e.seq, "kind": e.kind, "position": e.position, "name": e.name, "data": e.data, "at": e.at}
            for e in entries
        ]
        typer.echo(
            json.dumps({**_run_json(run), "journal": journal_json}, indent=2, ensure_ascii=False, default=str)
        )
        return
    out.print(render.run_panel(run, rows, pending, used))
    if journal:
        out.print(render.journal_table(entries))


@app.command()
def costs(
    flow: Annotated[str | None, typer.Option("--flow", "-f")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest runs to sum over")] = 1000,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Model calls, tokens and dollars per flow, over the newest runs; with ``--tenant``, also the tenant's
    spending today (what a per-tenant daily budget counts)."""
    from rich.table import Table

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            who = acting(client, tenant)
            today = None if tenant is None else await who.tenant_spend(tenant)
            return await who.usage_by_flow(flow=flow, limit=limit), today

    totals, today = _call(go)
    table = Table(
        header_style="bold", title=f"model usage per flow (newest {limit} runs)", title_justify="left"
    )
    for col in ("flow", "calls", "cache hits", "tokens in", "tokens out", "cost"):
        table.add_column(col, justify="right" if col != "flow" else "left")
    for name, u in sorted(totals.items()):
        table.add_row(
            name, str(u.calls), str(u.cached), f"{u.input_tokens:,}", f"{u.output_tokens:,}", f"${u.cost:.4f}"
        )
    out.print(table)
    if today is not None:
        out.print(f"tenant {tenant}: ${today:.4f} spent on model calls today (UTC)")


@app.command()
def inbox(tenant: TenantOption = None, db: DbOption = None) -> None:
    """List approvals waiting for a human."""

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant).pending_approvals()

    out.print(render.approvals_table(_call(go)))


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    name: Annotated[
        str | None, typer.Option("--name", help="Which approval, if the run waits for several")
    ] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="Edited payload (JSON) to approve instead")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who decides")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Approve a run's pending approval, optionally with an edited payload."""
    kwargs: dict[str, Any] = {"comment": comment}
    if payload is not None:
        kwargs["payload"] = _json(payload, "--payload")

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant, by).approve(run_id, name, **kwargs)

    p = _call(go)
    out.print(Text.assemble(("✔ approved ", "green"), f"{p.name!r} of run {run_id}"))


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    by: Annotated[str | None, typer.Option("--by")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Reject a run's pending approval."""

    async def go() -> Any:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant, by).reject(run_id, name, comment=comment)

    p = _call(go)
    out.print(Text.assemble(("✘ rejected ", "red"), f"{p.name!r} of run {run_id}"))


@app.command("signal")
def signal_cmd(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    name: Annotated[str, typer.Argument(metavar="NAME")],
    payload: Annotated[str | None, typer.Option("--payload", help="JSON payload")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Deduplication key: sent twice, applied once")
    ] = None,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """Send a signal to a run."""
    value = _json(payload, "--payload")

    async def go() -> bool:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant).signal(run_id, name, value, key=key)

    if _call(go):
        out.print(escape(f"signal {name!r} sent to run {run_id}"))
    else:
        out.print(
            escape(f"signal {name!r} with key {key!r} was already delivered to run {run_id}; nothing changed")
        )


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")], tenant: TenantOption = None, db: DbOption = None
) -> None:
    """Cancel a run (idempotent)."""

    async def go() -> Run:
        async with Client(_settings(db), worker=False) as client:
            return await acting(client, tenant).cancel(run_id)

    run = _call(go)
    verb = "cancelled" if run.status is RunStatus.CANCELLED else "cancel requested for"
    out.print(f"{verb} run {run_id}")


@app.command()
def models(
    check: Annotated[bool, typer.Option("--check/--no-check", help="Probe each model")] = True,
) -> None:
    """List the configured models (podium.toml and built-in defaults) and whether each is reachable."""
    from rich.table import Table

    from ..models.probe import probe
    from ..models.registry import Models

    async def go() -> list[tuple[Any, bool | None, str]]:
        registry = Models.from_config(_settings(None).config)
        rows = []
        for name in registry.names():
            spec = registry.spec(name)
            ok, detail = await probe(registry, spec) if check else (None, "")
            rows.append((spec, ok, detail))
        await registry.aclose()
        return rows

    table = Table(header_style="bold", title="models", title_justify="left")
    for col in ("name", "kind", "provider", "model", "price in/out per 1M", "reachable"):
        table.add_column(col)
    for spec, ok, detail in _call(go):
        price = (
            f"${spec.price_input:g} / ${spec.price_output:g}"
            if spec.price_input or spec.price_output
            else "free"
        )
        mark = "" if ok is None else ("[green]yes[/] " if ok else "[red]no[/] ") + escape(detail)
        table.add_row(spec.name, spec.kind, spec.provider, spec.model, price, mark)
    out.print(table)


@app.command()
def demo(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Act as the reviewer automatically")] = False,
    db: DbOption = None,
) -> None:
    """Run the customer-support triage demo: classify, look up, draft, approve large refunds, send."""
    from .demo import run_demo

    interactive = not yes and sys.stdin.isatty()
    _call(lambda: run_demo(_settings(db), interactive=interactive, console=out))


db_app = typer.Typer(help="The database that PODIUM_DATABASE_URL (or --db) names.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate(db: DbOption = None) -> None:
    """Apply the migrations the database has not had yet, and print its schema version.

    Stores migrate on first use too; this does it ahead (say, before starting many workers at once).
    """
    from ..runtime import make_store

    settings = _settings(db)

    async def go() -> int | None:
        store = make_store(settings)
        await store.open()  # applies what is missing, under a lock when the database is shared
        try:
            version: int | None = getattr(store, "version", None)
            return version
        finally:
            await store.close()

    version = _call(go)
    if version is None:
        out.print(escape(f"{settings.database_url}: nothing to migrate (in memory)"), soft_wrap=True)
    else:
        out.print(escape(f"{_redact(settings.database_url)}: schema version {version}"), soft_wrap=True)


def _redact(url: str) -> str:
    """A database URL without its password."""
    head, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


@app.command()
def serve(
    modules: Annotated[
        list[str] | None, typer.Argument(help="Modules or .py files whose flows the API may start")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker", help="Also execute runs here (else a `podium worker` does)")
    ] = False,
    db: DbOption = None,
) -> None:
    """Serve the REST API (/api, OpenAPI at /openapi.json), webhooks ([hooks.NAME] in podium.toml) at
    POST /hooks/NAME, and GET /healthz. API calls need a key: `podium keys create NAME --role admin`."""
    try:
        from ..server import serve as serve_http
    except ImportError as exc:
        _fail(str(exc))
    for m in modules or []:
        try:
            load_module(m.rpartition(":")[0] if ":" in m and not m.endswith(".py") else m)
        except PodiumError as exc:
            _fail(str(exc))
    from ..triggers.webhook import load_hooks

    settings = _settings(db)
    say = _narrator(settings)
    hooks = load_hooks(settings.config, load=load_flow)
    if not hooks:
        say("no [hooks.NAME] in podium.toml: no webhooks are served")
    _call(lambda: serve_http(settings, hooks, host=host, port=port, worker=worker))


@app.command()
def replay(
    modules: Annotated[
        list[str], typer.Argument(help="Modules or .py files that define the flows (today's code)")
    ],
    run: Annotated[list[str] | None, typer.Option("--run", help="A run id to check (repeatable)")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Check every run (of --flow, if given)")] = False,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs with --all")] = 1000,
    db: DbOption = None,
) -> None:
    """Replay runs' journals against the current code, running nothing: the check before a deploy.

    Exits 1 if any run would not replay (a nondeterminism, or another outcome)."""
    for m in modules:
        try:
            load_module(m.rpartition(":")[0] if ":" in m and not m.endswith(".py") else m)
        except PodiumError as exc:
            _fail(str(exc))
    if not run and not all_runs:
        _fail("name runs with --run ID, or check them all with --all")

    async def go() -> list[Any]:
        async with Client(_settings(db), worker=False) as c:
            ids = list(run or [])
            if all_runs:
                ids += [r.id for r in await c.list(flow=flow, limit=min(limit, 1000))]
            reports = []
            for run_id in dict.fromkeys(ids):
                reports.append(await c.check_replay(run_id))
            return reports

    reports = _call(go)
    from rich.table import Table

    table = Table("run", "flow", "status", "replays", "code", title=f"{len(reports)} runs replayed")
    for r in reports:
        verdict = Text("yes", style="green") if r.ok else Text(f"NO: {r.problem}", style="red")
        code = (
            "same"
            if r.recorded_version in (None, r.current_version)
            else f"{r.recorded_version} -> {r.current_version}"
        )
        table.add_row(r.run_id, r.flow, r.status.value, verdict, code)
    out.print(table)
    bad = [r for r in reports if not r.ok]
    if bad:
        err.print(
            Text(f"{len(bad)} of {len(reports)} runs do not replay against this code", style="bold red")
        )
        raise typer.Exit(1)


from .keys import keys_app  # noqa: E402 - it reads this module's helpers when it runs

app.add_typer(keys_app, name="keys")

from .mcp import mcp_command  # noqa: E402 - it reads this module's helpers when it runs

app.command("mcp")(mcp_command)

from .memory import ask_command, ingest_command  # noqa: E402 - they read this module's helpers when they run

app.command("ingest")(ingest_command)
app.command("ask")(ask_command)

from .journal import gc_command, stats_command  # noqa: E402 - they read this module's helpers when they run

app.command("gc")(gc_command)
app.command("stats")(stats_command)
from .audit import audit_app  # noqa: E402 - it reads this module's helpers when it runs
from .data import data_app  # noqa: E402 - it reads this module's helpers when it runs
from .schedules import schedule_app  # noqa: E402 - it reads this module's helpers when it runs

app.add_typer(audit_app, name="audit")
app.add_typer(schedule_app, name="schedule")
app.add_typer(data_app, name="data")

from .prompts import prompts_app  # noqa: E402 - it reads this module's helpers when it runs

app.add_typer(prompts_app, name="prompts")

from .policy import policy_app  # noqa: E402 - it reads this module's helpers when it runs

app.add_typer(policy_app, name="policy")

from .datasets import datasets_app, feedback_command  # noqa: E402 - they read this module's helpers when they run
from .evals import eval_command  # noqa: E402

app.add_typer(datasets_app, name="datasets")
app.command("feedback")(feedback_command)
app.command("eval")(eval_command)


def main() -> None:
    """Entry point of the ``podium`` command."""
    try:
        app()
    except PodiumError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        sys.exit(1)
