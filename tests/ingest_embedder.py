"""An embedding model for ingestion tests in other processes: the hashing embedder, which appends each
text it embeds to the file named by ``PODIUM_TEST_EMBED_LOG`` and sleeps ``PODIUM_TEST_EMBED_DELAY``
seconds per call (so a test can kill the process while it is halfway)."""

from __future__ import annotations

import os
import time

from podium.testing.embedding import hash_embed


def embed(texts: list[str]) -> list[list[float]]:
    log = os.environ.get("PODIUM_TEST_EMBED_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            for t in texts:
                f.write(" ".join(t.split())[:80] + "\n")
            f.flush()
            os.fsync(f.fileno())
    time.sleep(float(os.environ.get("PODIUM_TEST_EMBED_DELAY", "0")))
    return hash_embed(texts)
