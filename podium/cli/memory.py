"""``podium ingest`` and ``podium ask``: documents into a collection, questions answered from it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..client import Client
from ..types import RunStatus

UNFINISHED = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING]


def ingest_command(
    path: Annotated[Path, typer.Argument(help="A file or a folder (.txt, .md, .html, .pdf)")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to load into")],
    chunk_size: Annotated[
        int | None, typer.Option(help="Characters per chunk (default 1000, or [memory] chunk_size)")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Characters shared by consecutive chunks (default 150)")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Chunks per embedding step (default 64)")] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)"),
    ] = None,
) -> None:
    """Load documents into a collection: split by structure, embed in batches, skip unchanged files.

    Ingestion is a durable flow: if it is interrupted (even killed), the same command resumes it without
    embedding again what was done."""
    from . import _call, _fail, _settings, err, out

    if not path.exists():
        _fail(f"{path}: no such file or directory")
    if not collection.strip():
        _fail("--collection needs a name")
    settings = _settings(db)
    from ..memory.ingest import PROGRESS, ingest_flow

    job = {
        "path": str(path.resolve()),
        "collection": collection,
        "base": str(Path.cwd().resolve()),
        "chunk_size": chunk_size,
        "overlap": overlap,
        "batch": batch,
    }

    async def follow(client: Client, run_id: str, bar: Progress) -> Any:
        files = bar.add_task("documents", total=None)
        chunks = bar.add_task("chunks", total=None)
        waiter = asyncio.ensure_future(client.result(run_id))
        while not waiter.done():
            p = PROGRESS.get(run_id)
            if p is not None:
                bar.update(
                    files, total=p.files or None, completed=p.files_done, description=escape(p.current)[-40:]
                )
                bar.update(chunks, total=p.chunks or None, completed=p.chunks_done)
            await asyncio.wait([waiter], timeout=0.1)
        bar.remove_task(files)
        bar.remove_task(chunks)
        return waiter.result()

    async def go() -> Any:
        async with Client(settings) as client:
            columns = (
                TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            )  # fmt: skip
            with Progress(*columns, console=err, transient=True) as bar:
                for run in await client.list(status=UNFINISHED, flow=ingest_flow.name, limit=1000):
                    same = isinstance(run.input, dict) and all(
                        run.input.get(k) == job[k] for k in ("path", "collection")
                    )
                    if same:
                        err.print(escape(f"resuming unfinished ingestion run {run.id}"))
                        await follow(client, run.id, bar)
                handle = await client.start(ingest_flow, job)
                return await follow(client, handle.id, bar)

    result = _call(go)
    skipped = result["skipped"]
    out.print(
        escape(
            f"{collection}: ingested {result['ingested']} document(s) ({result['chunks']} chunks), "
            f"{result['unchanged']} unchanged, {result['removed']} removed, {len(skipped)} skipped"
        )
    )
    for s in skipped:
        err.print(escape(f"skipped {s['path']}: {s['reason']}"))


def ask_command(
    question: Annotated[str, typer.Argument(help="The question")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to answer from")],
    k: Annotated[int, typer.Option("-k", help="Chunks to retrieve")] = 4,
    model: Annotated[str, typer.Option(help="The model that writes the answer")] = "default",
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: PODIUM_DATABASE_URL or .podium/podium.db)"),
    ] = None,
) -> None:
    """Answer a question from a collection, citing the chunks used (a durable, journaled run)."""
    from . import _call, _fail, _settings, out

    if not question.strip():
        _fail("the question is empty")
    from ..memory.rag import ask_flow

    async def go() -> Any:
        async with Client(_settings(db)) as client:
            handle = await client.start(ask_flow, {"question": question, "collection": collection, "k": k,
                                                   "model": model})  # fmt: skip
            return await handle.result()

    answer = _call(go)
    out.print(escape(answer["answer"]), soft_wrap=True)
    if answer["sources"]:
        out.print("\nSources:")
        for s in answer["sources"]:
            out.print(escape(f"  [{s['n']}] {s['source']} ({s['id']})"), soft_wrap=True)
