"""A deterministic hashing embedder for tests where only the mechanics of embeddings matter.

```toml
[models.embed]
provider = "function"
kind = "embedding"
model = "podium.testing:hash_embed"
```
Each word is hashed to one of ``DIM`` dimensions with a sign; a text's vector is the normalised sum. Texts
that share words are similar, so search behaves sensibly; no model, no numpy, no randomness.
"""

from __future__ import annotations

import hashlib
import math
import re

DIM = 64
_WORD = re.compile(r"\w+", re.UNICODE)


def hash_vector(text: str, dim: int = DIM) -> list[float]:
    v = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        v[h[0] % dim] += 1.0 if h[1] & 1 else -1.0
        v[h[2] % dim] += 0.5 if h[3] & 1 else -0.5
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    if norm == 1.0 and not any(v):
        v[0] = 1.0  # a text without words: some fixed unit vector
    return [x / norm for x in v]


def hash_embed(texts: list[str]) -> list[list[float]]:
    """Embeddings of ``texts`` (``DIM`` dimensions)."""
    return [hash_vector(t) for t in texts]


def hash_embed_32(texts: list[str]) -> list[list[float]]:
    """The same with 32 dimensions (a "changed embedder" in tests of dimension mismatches)."""
    return [hash_vector(t, 32) for t in texts]


HASH_EMBED_CONFIG = {"provider": "function", "kind": "embedding", "model": "podium.testing:hash_embed"}
"""``[models.embed]`` for ``Settings(config={"models": {"embed": HASH_EMBED_CONFIG}})``."""
