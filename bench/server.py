"""HTTP API benchmarks: ``GET /api/runs/{id}`` under load with 10,000 runs stored, and how soon an approval
made over the API (as the dashboard makes it) resumes the run.

```
.venv/bin/python bench/server.py                          # 10,000 runs, 10 s of load, 8 connections
.venv/bin/python bench/server.py --connections 1,8,32     # one load phase per connection count
.venv/bin/python bench/server.py --dir /path/on/the/disk/to/measure
```

| measure | target |
|---|---|
| ``GET /api/runs/{id}``, 10,000 runs in SQLite, one ``podium serve`` process: requests/s | 500 or more |
| the same: p99 latency | under 20 ms |
| an approval POSTed to the API -> the run completes (embedded worker) | under 1 s |

How: 10,000 runs of a one-step flow are started (``Client.start_many``, batches of 500) and run to completion
in SQLite. Then ``podium serve bench/server.py --worker --db sqlite:///...`` is started as a subprocess
exactly as a user starts it (one uvicorn process, its access log on, written to a file), and a load generator
in this process (asyncio, N keep-alive connections, each sending its next request when the previous one
answered) asks for random runs for ``--seconds`` after a one-second warm-up. The generator speaks minimal
HTTP/1.1 itself: httpx (``--client httpx``) costs about a millisecond per request of the cores the server
needs, and then measures itself more than the server. Every request carries a
viewer key, so each one also looks up the key. Latencies are measured in the load generator, so they
include its own overhead: the generator and the server share this machine's two cores.

Approvals: ``--approvals`` runs of a flow that waits for an approval are started over the API; once each is
suspended (``waiting``, out of memory), they are approved one at a time with an edited payload and a
comment, as the dashboard's inbox does. For each: the POST's round trip, the time from just before the POST
until the step after the approval starts (journaled start time), and until the run ended (``ended_at``).
All three use the same machine's clock. With a separate ``podium worker`` (no worker in the server) a
decision is found by the worker's claim loop, so add up to ``poll_seconds`` (default 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

import podium


@podium.step(name="bench.server.work")
async def work(n: int) -> int:
    return n * 2


@podium.flow(name="bench.server.done")
async def done(ctx: podium.Context, n: int) -> int:
    return await work(n)


@podium.step(name="bench.server.ship")
async def ship(payload: dict[str, Any]) -> str:
    return f"shipped {payload}"


@podium.flow(name="bench.server.review")
async def review(ctx: podium.Context, n: int) -> str:
    decision = await ctx.approval("ship", payload={"n": n})
    return await ship(decision.payload)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def seed(url: str, count: int) -> tuple[list[str], dict[str, str], float]:
    """``count`` completed runs, and keys for the load (viewer) and the approvals (admin)."""
    t0 = time.perf_counter()
    settings = podium.Settings(database_url=url, lease_seconds=300, poll_seconds=0.05, concurrency=500)
    async with podium.Client(settings) as client:
        ids: list[str] = []
        for i in range(0, count, 500):
            handles = await client.start_many([(done, j, None) for j in range(i, min(count, i + 500))])
            ids += [h.id for h in handles]
        for run_id in ids:
            await client.result(run_id, timeout=600)
        keys = {role: (await client.create_key(f"bench-{role}", role))[1] for role in ("viewer", "admin")}
    return ids, keys, time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("podium")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from podium.cli import main; main()"]
    cmd += ["serve", str(Path(__file__).resolve()), "--worker", "--port", str(port), "--db", url]
    log = (root / "serve.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    return subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)


async def wait_up(base: str, proc: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"podium serve exited:\n{(root / 'serve.log').read_text()}")
            try:
                if (await http.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("podium serve did not start within 60 s")


class Raw:
    """A minimal HTTP/1.1 keep-alive connection: a few microseconds per request, where httpx spends about a
    millisecond of the two cores the server needs too."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def load(
    base: str, key: str, ids: list[str], conns: int, seconds: float, client: str = "raw"
) -> dict[str, Any]:
    url = httpx.URL(base)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:

        async def via_httpx(path: str) -> int:
            return (await http.get(path)).status_code

        async def one(seed: int, until: float, record: bool) -> None:
            nonlocal errors
            rnd = random.Random(seed)
            raw = Raw(url.host, url.port or 80, key)
            get = raw.get if client == "raw" else via_httpx
            try:
                while time.perf_counter() < until:
                    t = time.perf_counter()
                    status = await get(f"/api/runs/{rnd.choice(ids)}")
                    took = time.perf_counter() - t
                    if status != 200:
                        errors += 1
                    elif record:
                        latencies.append(took)
            finally:
                await raw.close()

        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(one(-i - 1, warm, False) for i in range(conns)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, t0 + seconds, True) for i in range(conns)))
        elapsed = time.perf_counter() - t0
    return {
        "conns": conns,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p90": pct(latencies, 90),
        "p99": pct(latencies, 99),
        "max": max(latencies),
    }


async def approvals(base: str, key: str, count: int) -> list[dict[str, float]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        ids = []
        for i in range(count):
            r = await http.post("/api/runs", json={"flow": "bench.server.review", "input": i})
            r.raise_for_status()
            ids.append(r.json()["run"]["id"])
        deadline = time.monotonic() + 60
        for run_id in ids:  # suspended: waiting, out of the worker's memory
            while (await http.get(f"/api/runs/{run_id}")).json()["status"] != "waiting":
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {run_id} never went to sleep on its approval")
                await asyncio.sleep(0.02)
        out = []
        for run_id in ids:
            sent = time.time()
            t0 = time.perf_counter()
            r = await http.post(
                f"/api/runs/{run_id}/approve", json={"payload": {"n": -1}, "comment": "benchmark"}
            )
            r.raise_for_status()
            post = time.perf_counter() - t0
            while (run := (await http.get(f"/api/runs/{run_id}")).json())["status"] != "completed":
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"run {run_id} did not complete within 30 s of its approval")
                await asyncio.sleep(0.005)
            events = (await http.get(f"/api/runs/{run_id}/journal")).json()["events"]
            step = next(e for e in events if e["kind"] == "step" and e["name"] == "bench.server.ship")
            out.append(
                {"post": post, "resumed": step["data"]["started"] - sent, "completed": run["ended_at"] - sent}
            )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs stored before the load starts")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--connections", default="8", help="concurrent connections; a list: 1,8,32")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="load generator's HTTP client"
    )
    parser.add_argument("--approvals", type=int, default=20, help="runs approved one at a time")
    parser.add_argument("--dir", help="where the SQLite file goes (default: a temporary directory)")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 100)
    root = Path(tempfile.mkdtemp(prefix="podium-bench-server-", dir=args.dir))
    url = f"sqlite:///{root}/podium.db"
    proc = None
    try:
        console.print(f"storing {args.runs:,} completed runs in {root}/podium.db ...")
        ids, keys, took = await seed(url, args.runs)
        size = sum(f.stat().st_size for f in root.glob("podium.db*")) / 1e6
        console.print(f"  {args.runs:,} runs in {took:.1f} s ({args.runs / took:,.0f} runs/s), {size:.1f} MB")
        port = free_port()
        proc = start_server(root, url, port)
        base = f"http://127.0.0.1:{port}"
        await wait_up(base, proc, root)

        table = Table(
            title=f"GET /api/runs/{{id}}, {args.runs:,} runs stored, one podium serve process, "
            f"{args.seconds:g} s a row (target: 500 req/s, p99 < 20 ms)",
            title_justify="left",
            header_style="bold",
        )
        for col in ("conns", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "target"):
            table.add_column(col, justify="right", no_wrap=True)
        for conns in [int(c) for c in args.connections.split(",")]:
            r = await load(base, keys["viewer"], ids, conns, args.seconds, args.client)
            ok = r["rps"] >= 500 and r["p99"] < 0.020 and r["errors"] == 0
            table.add_row(
                str(conns),
                f"{r['requests']:,}",
                str(r["errors"]),
                f"{r['rps']:,.0f}",
                f"{r['p50'] * 1000:.2f}",
                f"{r['p90'] * 1000:.2f}",
                f"{r['p99'] * 1000:.2f}",
                f"{r['max'] * 1000:.2f}",
                "[green]met[/]" if ok else "[red]missed[/]",
            )
        console.print(table)

        if args.approvals:
            res = await approvals(base, keys["admin"], args.approvals)
            t2 = Table(
                title=f"{args.approvals} approvals, one at a time (edited payload + comment), "
                "embedded worker: target under 1 s",
                title_justify="left",
                header_style="bold",
            )
            for col in ("from the approve POST to", "median", "p90", "max"):
                t2.add_column(col, justify="right" if col != "from the approve POST to" else "left")
            for label, k in (
                ("its answer (round trip)", "post"),
                ("the next step starts", "resumed"),
                ("the run completed", "completed"),
            ):
                vals = [x[k] for x in res]
                t2.add_row(label, ms(statistics.median(vals)), ms(pct(vals, 90)), ms(max(vals)))
            worst = max(x["completed"] for x in res)
            console.print(t2)
            verdict = "[green]met[/]" if worst < 1.0 else "[red]missed[/]"
            console.print(f"slowest approval -> completed: {ms(worst)} ({verdict})")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
