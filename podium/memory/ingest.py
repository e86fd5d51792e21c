"""Ingestion as a durable flow (``podium.ingest``): scan, split, embed in batches, commit per document.

```
ingest.prepare   the embedder's identity and vector size; create the collection or refuse a mismatch
ingest.scan      the files under PATH with their content hashes; which changed, which are unchanged
per changed document:
  ingest.split   stream the file into chunks, staged in SQLite (invisible to searches); returns the count
  ingest.embed   one step per batch: embed the staged texts, store their vectors beside them
  ingest.commit  replace the document's chunks by the staged ones, in one transaction
ingest.prune     forget documents under PATH that no longer exist
```
Killed halfway, the run resumes where it stopped: finished batches come from the journal and are not
embedded again. A document is searchable with all its new chunks or still with all its old ones, never
half; a run that fails removes what it staged.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..workflow.context import Context
from ..workflow.flow import flow
from .chunking import CHUNK_SIZE, OVERLAP, chunks, file_hash, kind_of
from .embedder import Embedder, settings_of
from .errors import IngestError
from .names import scoped
from .store import memory_config, store_for

BATCH = 64
"""Chunks per ``ingest.embed`` step."""

PROBE = "passage: dimension probe"


@dataclass
class Progress:
    """What an ingestion run has done so far (read by ``podium ingest`` for its progress bar)."""

    files: int = 0
    files_done: int = 0
    chunks: int = 0
    chunks_done: int = 0
    current: str = ""
    started: float = field(default_factory=time.time)


PROGRESS: dict[str, Progress] = {}
"""Progress of the ingestion runs executing in this process, by run id."""


def doc_name(path: Path, base: Path | None = None) -> str:
    """A document's name in its collection: its path relative to ``base`` (the directory ``podium ingest``
    ran in, part of the run's input, so any worker resuming the run names documents alike), when inside it."""
    try:
        return str(path.resolve().relative_to((base or Path.cwd()).resolve()))
    except ValueError:
        return str(path.resolve())


def scan(root: Path, known: dict[str, str], base: Path | None = None) -> dict[str, Any]:
    """The supported files under ``root`` (or ``root`` itself), hashed; changed, unchanged and skipped."""
    if not root.exists():
        raise IngestError(f"{root}: no such file or directory")
    if root.is_file():
        if kind_of(root) is None:
            raise IngestError(f"{root}: unsupported file type (use .txt, .md, .html or .pdf)")
        paths = [root]
    else:
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    files: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    unchanged: list[str] = []
    for p in paths:
        if kind_of(p) is None:
            skipped.append({"path": str(p), "reason": "unsupported file type"})
            continue
        if p.stat().st_size == 0:
            skipped.append({"path": str(p), "reason": "empty file"})
            continue
        doc = doc_name(p, base)
        digest = file_hash(p)
        if known.get(doc) == digest:
            unchanged.append(doc)
            continue
        files.append({"path": str(p.resolve()), "doc": doc, "hash": digest, "size": p.stat().st_size})
    if root.is_file() and skipped:
        raise IngestError(f"{root}: {skipped[0]['reason']}, nothing to ingest")
    prefix = doc_name(root, base)
    present = {doc_name(p, base) for p in paths}
    under = [d for d in known if (d == prefix or d.startswith(prefix.rstrip("/") + "/")) and d not in present]
    return {
        "files": files,
        "unchanged": unchanged,
        "skipped": skipped,
        "removed": sorted(under),
        "single": root.is_file(),
    }


@flow(name="podium.ingest")
async def ingest_flow(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Ingest ``job["path"]`` into ``job["collection"]`` (see the module's docstring)."""
    settings = settings_of(ctx)
    section = memory_config(settings)
    collection = str(job["collection"])
    space = f"collection:{scoped(collection, ctx)}"
    chunk_size = int(job.get("chunk_size") or section.get("chunk_size", CHUNK_SIZE))
    overlap = int(job["overlap"] if job.get("overlap") is not None else section.get("overlap", OVERLAP))
    batch = int(job.get("batch") or section.get("batch", BATCH))
    root = Path(job["path"])
    run = ctx.run_id
    progress = PROGRESS.setdefault(run, Progress())
    embedder = Embedder.of(ctx, settings, job.get("model"))

    def store() -> Any:
        return store_for(settings)

    async def prepare() -> dict[str, Any]:
        probe = await embedder.embed([PROBE])
        info = store().ensure_space(
            space, kind="collection", model=embedder.identity, dim=int(probe.shape[1])
        )
        return {"model": info.model, "dim": info.dim}

    await ctx.step("ingest.prepare", prepare)

    async def do_scan() -> dict[str, Any]:
        base = Path(job["base"]) if job.get("base") else None
        return await asyncio.to_thread(scan, root, store().doc_hashes(space), base)

    plan = await ctx.step("ingest.scan", do_scan)
    progress.files = len(plan["files"])
    skipped: list[dict[str, str]] = list(plan["skipped"])
    ingested = 0
    total_chunks = 0
    try:
        for f in plan["files"]:
            doc, path = f["doc"], Path(f["path"])
            progress.current = doc

            async def split(doc: str = doc, path: Path = path) -> dict[str, Any]:
                def work() -> dict[str, Any]:
                    s = store()
                    s.unstage(run, doc)
                    n = 0
                    buf: list[tuple[str, dict[str, Any]]] = []
                    try:
                        for text, meta in chunks(path, chunk_size=chunk_size, overlap=overlap):
                            buf.append((text, {**meta, "source": doc}))
                            if len(buf) >= 500:
                                n += s.stage(run, doc, n, buf)
                                buf = []
                        n += s.stage(run, doc, n, buf)
                    except IngestError as exc:
                        s.unstage(run, doc)
                        return {"skipped": str(exc).removeprefix(f"{path}: ")}
                    if n == 0:
                        return {"skipped": "no text in the file"}
                    return {"chunks": n}

                return await asyncio.to_thread(work)

            staged = await ctx.step("ingest.split", split)
            if "skipped" in staged:
                skipped.append({"path": str(path), "reason": staged["skipped"]})
                if plan["single"]:
                    raise IngestError(f"{root}: {staged['skipped']}, nothing to ingest")
                progress.files_done += 1
                continue
            n = int(staged["chunks"])
            progress.chunks, progress.chunks_done = n, 0
            for b in range(math.ceil(n / batch)):

                async def embed(doc: str = doc, b: int = b) -> int:
                    s = store()
                    rows = s.staged_texts(run, doc, b * batch, (b + 1) * batch)
                    vectors = await embedder.embed([t for _, t in rows])
                    await asyncio.to_thread(
                        s.stage_vectors, run, doc, space, [(i, vectors[j]) for j, (i, _) in enumerate(rows)]
                    )
                    return len(rows)

                progress.chunks_done += await ctx.step("ingest.embed", embed)

            async def commit(doc: str = doc, digest: str = f["hash"]) -> int:
                return await asyncio.to_thread(store().commit_doc, space, run, doc, hash=digest, source=doc)

            total_chunks += await ctx.step("ingest.commit", commit)
            ingested += 1
            progress.files_done += 1

        async def prune() -> int:
            s = store()
            removed: int = s.remove_docs(space, plan["removed"])
            await asyncio.to_thread(s.flush)
            return removed

        await ctx.step("ingest.prune", prune)
    except Exception:
        # A failure: remove what this run staged (documents it committed are whole and stay). An engine
        # stop (shutdown, SIGKILL) leaves the staged work for the run's next execution to finish.
        await asyncio.to_thread(store().unstage, run)
        raise
    finally:
        PROGRESS.pop(run, None)
    return {
        "collection": collection,
        "ingested": ingested,
        "chunks": total_chunks,
        "unchanged": len(plan["unchanged"]),
        "skipped": skipped,
        "removed": len(plan["removed"]),
    }
