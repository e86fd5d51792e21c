"""Helpers of the memory tests: settings with the hashing embedder, a fresh store per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import podium
from podium.testing import HASH_EMBED_CONFIG


def hash_settings(path: Path, **memory: Any) -> podium.Settings:
    """Settings on a SQLite file with the deterministic hashing embedder as ``embed``."""
    config: dict[str, Any] = {"models": {"embed": HASH_EMBED_CONFIG}}
    if memory:
        config["memory"] = memory
    return podium.Settings(
        database_url=f"sqlite:///{path}", poll_seconds=0.05, lease_seconds=2, config=config
    )
