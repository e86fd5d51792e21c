"""Ingestion: txt, md, html and pdf split by structure, embedded in batches, unchanged documents skipped,
changed ones re-ingested alone, bad input refused clearly with nothing half-written, a dimension mismatch
caught before any write, and a SIGKILLed ``podium ingest`` resumed without embedding finished batches
again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from memory_helpers import hash_settings, sql_rows

import podium
from podium.memory import close_stores, store_for
from podium.memory.chunking import chunks
from podium.memory.ingest import ingest_flow
from podium.models import register

pytest.importorskip("numpy", reason="the memory layer needs `pip install podium[memory]`")
ROOT = Path(__file__).resolve().parent.parent
EMBEDDED: list[str] = []


def counting_embed(texts: list[str]) -> list[list[float]]:
    from podium.testing.embedding import hash_embed

    EMBEDDED.extend(texts)
    return hash_embed(texts)


register("count-embed", counting_embed, kind="embedding")


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    EMBEDDED.clear()
    yield
    close_stores()


def _lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def minimal_pdf(path: Path, pages: list[str]) -> None:
    """A small valid PDF with one line of text per page (Helvetica), written by hand."""
    objs: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))


def make_docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(
        "# Guide\n\nPodium runs flows durably.\n\n## Install\n\n"
        + "Install podium with pip and configure the database. " * 30
        + "\n\n## Harbour\n\nThe harbour office opens at nine.\n"
    )
    (folder / "page.html").write_text(
        "<html><head><style>p{}</style></head><body><h1>Refunds</h1><p>Refunds take five days.</p>"
        "<script>var secret = 1;</script><h2>Contact</h2><p>Write to the refund desk.</p></body></html>"
    )
    (folder / "notes.txt").write_text("Plain notes about lighthouses.\n\nA second paragraph on ships.\n")


def settings_in(tmp_path: Path, **memory: Any) -> podium.Settings:
    return hash_settings(tmp_path / "podium.db", embed="count-embed", **memory)


async def ingest(client: podium.Client, path: Path, collection: str = "kb", **job: Any) -> dict[str, Any]:
    handle = await client.start(ingest_flow, {"path": str(path), "collection": collection, **job})
    result: dict[str, Any] = await handle.result(timeout=60)
    return result


async def test_ingest_splits_embeds_skips_unchanged_and_reingests_changes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_docs(docs)
    pytest.importorskip("pypdf", reason="PDF ingestion needs `pip install podium[memory]`")
    pdf = docs / "manual.pdf"
    minimal_pdf(pdf, ["The lighthouse keeper logs ships.", "Page two is about anchors."])
    settings = settings_in(tmp_path)
    async with podium.Client(settings) as client:
        first = await ingest(client, docs, chunk_size=300, overlap=50, batch=4)
        assert first["ingested"] == 4 and not first["skipped"] and first["unchanged"] == 0
        store = store_for(settings)
        info = store.info("collection:kb")
        assert info is not None and info.documents == 4 and info.count == first["chunks"]
        embedded = len(EMBEDDED)
        assert embedded == first["chunks"] + 1  # every chunk once, and one probe of the vector size

        hits = store.search("collection:kb", text="harbour office", k=3)
        assert hits[0].source.endswith("guide.md") and hits[0].metadata["section"] == "Guide > Harbour"
        assert hits[0].text.startswith("Harbour") and hits[0].id.startswith("kb:")
        page = store.search("collection:kb", text="anchors", k=1)[0]
        assert page.metadata["page"] == 2 and page.source.endswith("manual.pdf")
        html = store.search("collection:kb", text="refund desk", k=1)[0]
        assert html.metadata["section"] == "Refunds > Contact"
        assert not store.search("collection:kb", text="secret", k=3)  # script content is not text
        install = [
            h for h in store.search("collection:kb", text="install podium pip", k=20) if "Install" in h.text
        ]
        assert len(install) > 2 and all(len(h.text) <= 300 for h in install)
        a, b = install[0].text, install[1].text  # consecutive chunks overlap
        assert any(a[-40:].split()[-1] in b[:120] for a, b in [(a, b), (b, a)])

        again = await ingest(client, docs, chunk_size=300, overlap=50, batch=4)
        assert again["ingested"] == 0 and again["unchanged"] == 4 and len(EMBEDDED) == embedded + 1

        (docs / "notes.txt").write_text("Plain notes about lighthouses and fog horns.\n")
        (docs / "page.html").unlink()
        third = await ingest(client, docs, chunk_size=300, overlap=50, batch=4)
        assert (third["ingested"], third["unchanged"], third["removed"]) == (1, 2, 1)
        assert EMBEDDED[embedded + 2 :] == ["Plain notes about lighthouses and fog horns."]
        assert store.search("collection:kb", text="refund", k=3) == []
        assert [
            h.text for h in store.search("collection:kb", text="lighthouses", k=5) if "notes" in h.source
        ] == ["Plain notes about lighthouses and fog horns."]  # the old version's chunks are gone


async def test_bad_input_is_refused_clearly_and_nothing_is_half_written(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_docs(docs)
    (docs / "empty.md").write_text("")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (docs / "image.png").write_bytes(b"\x89PNG")
    settings = settings_in(tmp_path)
    async with podium.Client(settings) as client:
        result = await ingest(client, docs)
        reasons = {Path(s["path"]).name: s["reason"] for s in result["skipped"]}
        assert reasons == {
            "empty.md": "empty file",
            "blob.txt": "a binary file, not text (it holds NUL bytes)",
            "latin1.txt": "not UTF-8 text",
            "image.png": "unsupported file type",
        }
        assert result["ingested"] == 3
        for bad, message in [
            (docs / "blob.txt", "a binary file, not text"),
            (docs / "empty.md", "empty file, nothing to ingest"),
            (tmp_path / "missing.md", "no such file or directory"),
        ]:
            with pytest.raises(podium.RunFailedError, match=message):
                await ingest(client, bad, collection="other")
        db = sqlite3.connect(tmp_path / "podium.db")
        assert db.execute("SELECT count(*) FROM mem_staging").fetchone()[0] == 0
        assert (
            db.execute(
                "SELECT count(*) FROM mem_items WHERE doc LIKE '%blob.txt' OR doc LIKE '%empty.md'"
            ).fetchone()[0]
            == 0
        )
        db.close()


async def test_a_changed_embedder_is_a_clear_error_before_any_write(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_docs(docs)
    async with podium.Client(settings_in(tmp_path)) as client:
        await ingest(client, docs)
    close_stores()
    (docs / "notes.txt").write_text("changed notes")
    changed = hash_settings(tmp_path / "podium.db")
    models = {
        "embed": {
            "provider": "function",
            "kind": "embedding",
            "model": "podium.testing.embedding:hash_embed_32",
        }
    }
    changed = changed.with_(config={"models": models})
    async with podium.Client(changed) as client:
        with pytest.raises(podium.RunFailedError, match=r"holds 64-d vectors of .*32-d vectors"):
            await ingest(client, docs)
        from podium.memory.retrieval import search_collection

        with pytest.raises(podium.memory.DimensionMismatchError, match="re-ingest it"):
            await search_collection("kb", "notes", settings=changed)
    store = store_for(changed)
    assert [h.text for h in store.search("collection:kb", text="notes", k=5)] == [
        "Plain notes about lighthouses.\n\nA second paragraph on ships."
    ]  # the old chunks are intact


def test_splitting_a_large_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    para = "The quick brown fox jumps over the lazy dog near the river bank. " * 12
    with open(big, "w") as f:
        for i in range(3000):
            if i % 100 == 0:
                f.write(f"\n# Part {i // 100}\n\n")
            f.write(para + "\n\n")
    size = big.stat().st_size
    assert size > 2_000_000
    tracemalloc.start()
    count = sum(1 for _ in chunks(big))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count > 2000
    assert peak < 1_000_000  # well under the file's size: the file is never held whole


async def test_sigkilled_ingestion_resumes_without_reembedding_finished_batches(
    tmp_path: Path, memory_url: str
) -> None:
    """On SQLite and on PostgreSQL (runs and memory in one schema)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"doc{i}.md").write_text(
            "".join(
                f"## Section {i}.{j}\n\nParagraph {i}.{j} about topic {j} of document {i}.\n\n"
                for j in range(12)
            )
        )
    (tmp_path / "podium.toml").write_text(
        '[models.embed]\nprovider = "function"\nkind = "embedding"\nmodel = "ingest_embedder:embed"\n'
    )
    log = tmp_path / "embedded.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "PODIUM_CONFIG": str(tmp_path / "podium.toml"),
        "PODIUM_DATABASE_URL": memory_url,
        "PODIUM_LEASE_SECONDS": "1",
        "PODIUM_POLL_SECONDS": "0.1",
        "PODIUM_TEST_EMBED_LOG": str(log),
        "PODIUM_TEST_EMBED_DELAY": "0.3",
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "podium.cli", "ingest", str(docs), "--collection", "kb", "--batch", "4"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await eventually(
        lambda: asyncio.to_thread(_lines_in, log),
        lambda n: n >= 1 + 4 * 4,
        what="four batches to be embedded",
        timeout=60,
    )
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    before = log.read_text().splitlines()
    assert len(before) < 1 + 36  # killed halfway

    env["PODIUM_TEST_EMBED_DELAY"] = "0"
    again = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(90):
        out, err = await again.communicate()
    assert again.returncode == 0, err.decode()
    assert b"resuming unfinished ingestion run" in err
    assert b"kb: ingested 0 document(s)" in out and b"3 unchanged" in out  # the follow-up run finds no change

    lines = log.read_text().splitlines()
    probes = [x for x in lines if x == "passage: dimension probe"]
    texts = [x for x in lines if x != "passage: dimension probe"]
    assert len(probes) == 2  # the first run's, and the follow-up run's (the resumed run's was journaled)
    repeated = len(texts) - len(set(texts))
    assert (
        len(set(texts)) == 36 and repeated <= 4
    )  # at most the batch in flight at the kill is embedded twice
    assert sql_rows(memory_url, "SELECT count(*) FROM mem_items") == [(36,)]
    assert sql_rows(memory_url, "SELECT count(*) FROM mem_staging") == [(0,)]
