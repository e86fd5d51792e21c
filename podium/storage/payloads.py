"""Content-addressed payloads: large JSON values are kept once, by SHA-256, compressed.

A journal row (an event's ``data``, a run's ``input`` or ``output``) whose JSON text is at least
``PayloadOptions.threshold`` bytes is *split*: every value inside it that is that large on its own is replaced
by a reference ``{"$payload": "<sha256>", "bytes": N}`` and kept in the ``payloads`` table (or, from
``blob_threshold`` bytes on, in a file of the blob directory). The same 100 KB context returned by a thousand
steps is therefore stored once. An event's top-level object is never replaced as a whole, so its skeleton
(``attempts``, ``started``, ``ended``, ``status`` ...) stays in the row after retention dropped the payload.

Readers *resolve* references transparently (``Resolver``); a payload deleted by ``podium gc`` reads as
``{"expired_payload": "<sha256>", "bytes": N}``. User data that happens to hold a key starting with
``$payload`` is escaped as ``{"$payload_literal": {...}}`` on the way in and restored on the way out, so no
value is ever mistaken for a reference.

This module is pure (no database): each store writes ``Encoder.new`` and ``Encoder.refs`` in the same
transaction as the rows that point at them, which is what keeps a reference from ever dangling.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError

MARK = "$payload"
LITERAL = "$payload_literal"
_PROBE = '"$payload'  # any text holding a reference or an escaped key contains this
DEFAULT_THRESHOLD = 4096
DEFAULT_BLOB_THRESHOLD = 1 << 20

_ZSTD: list[Any] = []  # [the zstandard module or None], once looked up


def _zstd() -> Any:
    """zstd when the optional package is there (``podium[zstd]``), imported on first use; else None."""
    if not _ZSTD:
        try:
            import zstandard  # type: ignore[import-not-found, unused-ignore]
        except ImportError:  # pragma: no cover - depends on the environment
            _ZSTD.append(None)
        else:
            _ZSTD.append(zstandard)
    return _ZSTD[0]


@dataclass(frozen=True, kw_only=True)
class PayloadOptions:
    """Where and from what size payloads leave the journal row (``[storage]`` in ``podium.toml``)."""

    threshold: int = DEFAULT_THRESHOLD
    """Values whose JSON text has at least this many bytes are stored once, by hash."""
    blobs: Path | None = None
    """A directory for very large payloads (files named by hash); None keeps them all in the database."""
    blob_threshold: int = DEFAULT_BLOB_THRESHOLD
    """Payloads of at least this many bytes go to ``blobs`` (when set)."""

    def __post_init__(self) -> None:
        if self.threshold < 64:
            raise StoreError(f"payload threshold must be at least 64 bytes, not {self.threshold}")
        if self.blob_threshold < self.threshold:
            raise StoreError("the blob threshold must not be below the payload threshold")


@dataclass(slots=True)
class Payload:
    """One payload to write: its hash, its JSON text (UTF-8) and, once ``pack``ed, its stored form."""

    hash: str
    raw: bytes
    codec: str = ""
    data: bytes | None = None
    in_file: bool = False
    streamed: tuple[int, int] | None = None
    """``(size, stored)`` of a payload already streamed to its blob file (``raw`` is then empty)."""

    @property
    def size(self) -> int:
        return self.streamed[0] if self.streamed is not None else len(self.raw)

    @property
    def stored(self) -> int:
        """Bytes kept (compressed), in the database or in a file."""
        if self.streamed is not None:
            return self.streamed[1]
        return len(self.data) if self.data is not None else 0

    def pack(self, options: PayloadOptions) -> Payload:
        """Compress; a payload for the blob directory is written there now (temp file, fsync, rename), before
        the transaction that references it commits, and ``data`` is then left out of the row."""
        if not self.codec:
            self.codec, self.data = compress(self.raw)
            if options.blobs is not None and self.size >= options.blob_threshold:
                write_blob(options.blobs, self.hash, self.data)
                self.in_file = True
        return self


@dataclass(slots=True)
class Usage:
    """Storage of one flow's runs of one age (``podium stats``)."""

    flow: str
    age: str
    runs: int = 0
    journal_bytes: int = 0
    """Bytes of journal rows (event data as stored, references included)."""
    payloads: int = 0
    payload_bytes: int = 0
    """Stored (compressed) bytes of the payloads those runs reference; a payload shared by runs of two
    flows counts for both."""
    payload_raw_bytes: int = 0


@dataclass(slots=True)
class Collected:
    """What one garbage collection did."""

    runs: int = 0
    """Finished runs whose payloads were released (their skeleton stays)."""
    payloads: int = 0
    """Payloads deleted (no run references them any more)."""
    bytes: int = 0
    """Stored bytes freed."""
    files: list[str] = field(default_factory=list)
    """Blob files to delete once the transaction committed."""


AGES = ((86_400.0, "<1d"), (7 * 86_400.0, "1-7d"), (30 * 86_400.0, "7-30d"))


def age_label(seconds: float) -> str:
    """The age bucket of ``podium stats`` for a run created ``seconds`` ago."""
    for limit, label in AGES:
        if seconds < limit:
            return label
    return ">30d"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def compress(raw: bytes) -> tuple[str, bytes]:
    """``(codec, data)``: zstd if available, else zlib; ``none`` when compressing does not pay."""
    zstd = _zstd()
    if zstd is not None:
        packed = zstd.ZstdCompressor(level=3).compress(raw)
        codec = "zstd"
    else:
        packed = zlib.compress(raw, 6)
        codec = "zlib"
    if len(packed) >= len(raw):
        return "none", raw
    return codec, packed


def decompress(codec: str, data: bytes) -> bytes:
    if codec == "none":
        return data
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "zstd":
        zstd = _zstd()
        if zstd is None:
            raise StoreError("a payload is zstd-compressed: pip install 'podium[zstd]' to read it")
        if zstd.frame_content_size(data) < 0:  # a streamed blob's frame does not record its size
            return bytes(zstd.ZstdDecompressor().decompressobj().decompress(data))
        return bytes(zstd.ZstdDecompressor().decompress(data))
    raise StoreError(f"unknown payload codec {codec!r}")


def blob_path(root: Path, sha: str) -> Path:
    return root / sha[:2] / sha


def write_blob(root: Path, sha: str, data: bytes) -> None:
    """Write a blob durably and atomically: a crash leaves either no file or the whole file, never a part."""
    path = blob_path(root, sha)
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{sha}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself is durable before the row that points at it commits
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot write payload blob {path}: {exc}") from exc


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SPOOL = "tm"
"""The blob directory's subdirectory for files being streamed (their hash is known only at the end); a
crash leaves a dot-named temp file there, which ``podium gc`` removes like any other."""
_SLICE = 1 << 20  # characters of JSON text encoded at a time when streaming


class _Spool:
    """Where a payload's JSON text goes while it is encoded: SHA-256 and size always, the bytes in memory
    until they reach the blob threshold, then compressed into a temp file of the blob directory."""

    def __init__(self, root: Path, blob_threshold: int) -> None:
        self.root = root
        self.limit = blob_threshold
        self.hasher = hashlib.sha256()
        self.size = 0
        self.stored = 0
        self.buffer: list[bytes] | None = []
        self.file: Any = None
        self.tmp: Path | None = None
        self.packer: Any = None
        self.codec = ""

    def write(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.size += len(chunk)
        if self.buffer is not None:
            self.buffer.append(chunk)
            if self.size < self.limit:
                return
            held, self.buffer = self.buffer, None
            self._open()
            for part in held:
                self._pack(part)
            return
        self._pack(chunk)

    def _open(self) -> None:
        spool = self.root / SPOOL
        try:
            spool.mkdir(parents=True, exist_ok=True)
            self.tmp = spool / f".stream.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed by finish() or discard()
        except OSError as exc:
            raise StoreError(f"cannot write payload blob in {self.root}: {exc}") from exc
        zstd = _zstd()
        if zstd is not None:
            self.codec, self.packer = "zstd", zstd.ZstdCompressor(level=3).compressobj()
        else:
            self.codec, self.packer = "zlib", zlib.compressobj(6)

    def _pack(self, chunk: bytes) -> None:
        out = self.packer.compress(chunk)
        if out:
            self._emit(out)

    def _emit(self, data: bytes) -> None:
        self.stored += len(data)
        try:
            self.file.write(data)
        except OSError as exc:
            self.discard()
            raise StoreError(f"cannot write payload blob in {self.root}: {exc}") from exc

    def finish(self) -> Payload:
        """The payload: in memory (below the blob threshold, packed later as any other) or its file durably
        renamed to its hash (``fsync`` of the file and of its directory), before any row references it."""
        sha = self.hasher.hexdigest()
        if self.buffer is not None:
            raw = b"".join(self.buffer)
            self.buffer = None
            return Payload(sha, raw)
        assert self.tmp is not None
        self._emit(self.packer.flush())
        path = blob_path(self.root, sha)
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if path.exists():
                self.tmp.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.tmp, path)
                _sync_dir(path.parent)  # the rename is durable before the row that points at it commits
        except OSError as exc:
            self.discard()
            raise StoreError(f"cannot write payload blob {path}: {exc}") from exc
        return Payload(sha, b"", self.codec, None, True, (self.size, self.stored))

    def discard(self) -> None:
        self.buffer = None
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def _text(value: Any, path: set[int] | None = None) -> Iterator[str]:
    """Any value's JSON text (as ``_dumps`` makes it) in pieces of at most about ``_SLICE`` characters: the
    size of a value is measured without making its whole text. ``path``: the containers being encoded (a
    cycle raises ``ValueError`` as ``json`` does)."""
    if isinstance(value, str):
        if len(value) <= _SLICE:
            yield _dumps(value)
            return
        yield '"'
        for i in range(0, len(value), _SLICE):
            yield _dumps(value[i : i + _SLICE])[1:-1]  # JSON escapes one character at a time
        yield '"'
        return
    if not isinstance(value, dict | list | tuple):
        yield _dumps(value)
        return
    path = set() if path is None else path
    if id(value) in path:
        raise ValueError("Circular reference detected")
    path.add(id(value))
    if isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            key = _dumps(k) if isinstance(k, str) else _dumps({k: None})[1:-6]
            yield f",{key}:" if i else f"{key}:"
            yield from _text(v, path)
        yield "}"
    else:
        yield "["
        for i, v in enumerate(value):
            if i:
                yield ","
            yield from _text(v, path)
        yield "]"
    path.discard(id(value))


def _split_text(value: Any, threshold: int) -> Iterator[str]:
    """The JSON text of a value ``Encoder._split`` returned (its items are each under ``threshold``), items
    encoded many at a time: the same text as ``_dumps(value)``, in bounded pieces, at C speed."""
    n = max(1, _SLICE // threshold)
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(LITERAL), dict):
        yield f"{{{_dumps(LITERAL)}:"
        yield from _split_text(value[LITERAL], threshold)
        yield "}"
    elif isinstance(value, dict) and value:
        items = list(value.items())
        yield "{"
        for i in range(0, len(items), n):
            yield ("," if i else "") + _dumps(dict(items[i : i + n]))[1:-1]
        yield "}"
    elif isinstance(value, list) and value:
        yield "["
        for i in range(0, len(value), n):
            yield ("," if i else "") + _dumps(value[i : i + n])[1:-1]
        yield "]"
    else:
        yield from _text(value)


def read_blob(root: Path | None, sha: str) -> bytes | None:
    if root is None:
        return None
    try:
        return blob_path(root, sha).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read payload blob {sha}: {exc}") from exc


STRAY_MARGIN = 3600.0
"""A blob file without a row is only deleted once it is this much older than the collection's cutoff: the
file of a commit still in flight (written, not yet committed) is never taken for a stray."""


def blob_files(root: Path | None, before: float) -> tuple[list[str], list[Path]]:
    """``(hashes, temp files)`` of the blob directory last modified before ``before`` (seconds since the
    epoch): candidates for strays, left by a crash between a file's write and its transaction's commit."""
    if root is None or not root.is_dir():
        return [], []
    hashes: list[str] = []
    temps: list[Path] = []
    for sub in root.iterdir():
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        for f in sub.iterdir():
            try:
                old = f.stat().st_mtime < before
            except FileNotFoundError:
                continue
            if not old:
                continue
            if f.name.startswith("."):
                temps.append(f)
            elif len(f.name) == 64:
                hashes.append(f.name)
    return hashes, temps


def delete_blobs(root: Path | None, hashes: Iterable[str]) -> None:
    if root is None:
        return
    for sha in hashes:
        try:
            blob_path(root, sha).unlink()
        except FileNotFoundError:
            pass


class Encoder:
    """Splits the rows of one transaction; ``new`` and ``refs`` are what the store writes beside them."""

    def __init__(self, options: PayloadOptions) -> None:
        self.options = options
        self.new: dict[str, Payload] = {}
        self.refs: set[tuple[str, str]] = set()
        """``(run_id, hash)``: which run references which payload (what retention releases)."""
        self._path: set[int] = set()  # the containers ``_stream`` is inside (a cycle is refused)

    def dump(self, value: Any, run_id: str, *, keep_root: bool = False) -> str | None:
        """``value`` as the JSON text of its row. ``keep_root``: never replace the top-level object itself
        (an event's data: its skeleton stays readable after retention)."""
        if value is None:
            return None
        if self.options.blobs is not None:
            small = self._small(value)
            return small if small is not None else _dumps(self._stream(value, run_id, keep_root))
        text = _dumps(value)
        if len(text) < self.options.threshold and _PROBE not in text:
            return text
        if isinstance(value, dict | list):
            del text  # a large value: its text is made again once its parts are split out (memory)
            return _dumps(self._split(value, "", run_id, keep_root))
        return _dumps(self._split(value, text, run_id, keep_root))

    def _small(self, value: Any) -> str | None:
        """``value``'s JSON text when it stays in the row (under the threshold, no reference-like key);
        None otherwise. Stops encoding once the threshold is passed: a large value's text is never made."""
        if isinstance(value, str) and len(value) >= self.options.threshold:
            return None
        if isinstance(value, dict | list | tuple):  # a scalar or a short string is small: no probe
            n = 0
            for piece in _text(value):
                n += len(piece)
                if n >= self.options.threshold:
                    return None
        text = _dumps(value)
        return text if len(text) < self.options.threshold and _PROBE not in text else None

    def _stream(self, value: Any, run_id: str, keep_root: bool = False) -> Any:
        """``_split`` for a store with a blob directory: nothing large is ever encoded whole. Each item is
        measured piecewise (``_small``); what is kept as a payload is encoded piece by piece into a hasher
        and a spool that moves to a compressed temp file of the blob directory once it passes the blob
        threshold (the same bytes, hence the same hash, as the in-memory path)."""
        out: Any = value
        if isinstance(value, dict | list):
            if id(value) in self._path:
                raise ValueError("Circular reference detected")
            self._path.add(id(value))
            if isinstance(value, dict):
                out = {}
                for k, v in value.items():
                    out[k] = v if self._small(v) is not None else self._stream(v, run_id)
                if any(isinstance(k, str) and k.startswith(MARK) for k in out):
                    out = {LITERAL: out}
            else:
                out = [v if self._small(v) is not None else self._stream(v, run_id) for v in value]
            self._path.discard(id(value))
        if keep_root:
            return out
        assert self.options.blobs is not None
        spool = _Spool(self.options.blobs, self.options.blob_threshold)
        chars = 0
        try:
            for piece in _split_text(out, self.options.threshold):
                chars += len(piece)
                spool.write(piece.encode())
        except BaseException:
            spool.discard()
            raise
        if chars < self.options.threshold:
            spool.discard()
            return out
        payload = spool.finish()
        if payload.hash not in self.new:
            self.new[payload.hash] = payload
        self.refs.add((run_id, payload.hash))
        return {MARK: payload.hash, "bytes": payload.size}

    def _split(self, value: Any, text: str, run_id: str, keep_root: bool = False) -> Any:
        threshold = self.options.threshold
        out: Any = value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                t = _dumps(v)
                out[k] = v if len(t) < threshold and _PROBE not in t else self._split(v, t, run_id)
            if any(isinstance(k, str) and k.startswith(MARK) for k in out):
                out = {LITERAL: out}
            text = _dumps(out)
        elif isinstance(value, list):
            out = []
            for v in value:
                t = _dumps(v)
                out.append(v if len(t) < threshold and _PROBE not in t else self._split(v, t, run_id))
            text = _dumps(out)
        if keep_root or len(text) < threshold:
            return out
        raw = text.encode()
        del text
        if len(raw) < threshold:
            return out
        sha = digest(raw)
        if sha not in self.new:
            self.new[sha] = Payload(sha, raw)
        self.refs.add((run_id, sha))
        return {MARK: sha, "bytes": len(raw)}


def has_refs(text: str | None) -> bool:
    """Whether a row's JSON text may hold references (or escaped keys) to resolve."""
    return text is not None and _PROBE in text


def refs_in(value: Any, found: set[str]) -> None:
    """Add the hashes ``value`` references to ``found``."""
    if isinstance(value, dict):
        sha = value.get(MARK)
        if isinstance(sha, str) and len(value) == 2 and "bytes" in value:
            found.add(sha)
            return
        inner = value.get(LITERAL) if len(value) == 1 else None
        for v in (inner if isinstance(inner, dict) else value).values():
            refs_in(v, found)
    elif isinstance(value, list):
        for v in value:
            refs_in(v, found)


class Resolver:
    """Replaces references by their payloads. A store feeds it: ``wanted()`` hashes, ``add`` what it found,
    until ``wanted()`` is empty; then ``apply`` each value. Loads only the payloads the values reference."""

    def __init__(self, values: Iterable[Any]) -> None:
        self._found: dict[str, Any] = {}
        self._missing: set[str] = set()
        self._todo: set[str] = set()
        for v in values:
            refs_in(v, self._todo)

    def wanted(self) -> list[str]:
        todo = [h for h in self._todo if h not in self._found and h not in self._missing]
        self._todo = set()
        return todo

    def add(self, rows: Mapping[str, bytes | None]) -> None:
        """Payloads by hash as JSON text (UTF-8); None or absent: deleted by retention."""
        for sha, raw in rows.items():
            if raw is None:
                self._missing.add(sha)
                continue
            value = json.loads(raw)
            self._found[sha] = value
            refs_in(value, self._todo)

    def done(self, asked: Iterable[str]) -> None:
        """Mark hashes asked for but not returned as missing."""
        for sha in asked:
            if sha not in self._found:
                self._missing.add(sha)

    def apply(self, value: Any) -> Any:
        if isinstance(value, dict):
            sha = value.get(MARK)
            if isinstance(sha, str) and len(value) == 2 and "bytes" in value:
                if sha in self._found:
                    return self.apply(self._found[sha])
                return {"expired_payload": sha, "bytes": value["bytes"]}
            if len(value) == 1 and isinstance(value.get(LITERAL), dict):
                return {k: self.apply(v) for k, v in value[LITERAL].items()}
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value


def json_size(value: Any) -> int:
    """Bytes of ``value``'s JSON text (a value JSON cannot hold counts as its ``repr``)."""
    if value is None:
        return 0
    try:
        return len(_dumps(value).encode())
    except (TypeError, ValueError):
        return len(repr(value).encode())


def expire(value: Any, threshold: int, *, keep_root: bool = True) -> Any:
    """``value`` with every value of at least ``threshold`` JSON bytes replaced by an expired placeholder
    (the memory store's retention: it keeps no payload table, so it drops the large values in place).
    ``keep_root``: a top-level object keeps its keys (an event's skeleton)."""
    size = json_size(value)
    if size < threshold:
        return value
    if isinstance(value, dict) and keep_root:
        return {k: expire(v, threshold, keep_root=False) for k, v in value.items()}
    return {"expired_payload": None, "bytes": size}
