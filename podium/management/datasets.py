"""Datasets: named, versioned collections of examples (input, expected output) for evaluations.

```python
await client.datasets.create("tickets")
await client.datasets.add("tickets", {"text": "my card was charged twice"}, expected="billing")
for item in await client.datasets.items("tickets"):
    print(item.id, item.input, item.expected)
text = await client.datasets.export("tickets")           # JSONL, one item a line
await client.datasets.import_("copy", text)               # validated line by line; all or nothing
```
A dataset is versioned by append: adding an item (or a new revision of an item, under the same id) moves the
dataset to its next version, and ``items(name, version=N)`` shows it as it was then. Evaluations record the
version they ran on. An item's ``source`` links it to where it came from (run, step, model, prompt version).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.codec import to_json
from ..errors import NotFoundError, UsageError
from ..storage.base import DatasetRecord, ItemRecord
from ..types import JSON, new_id

if TYPE_CHECKING:
    from ..client import Client

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_FIELDS = {"id", "input", "expected", "metadata", "source"}
MAX_ERRORS = 10
"""How many bad lines an import names before it stops listing them."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset: ``version`` counts the item revisions appended so far, ``items`` its items."""

    name: str
    description: str
    created_at: float
    version: int
    items: int

    @classmethod
    def _of(cls, d: DatasetRecord) -> Dataset:
        return cls(d.name, d.description, d.created_at, d.version, d.items)


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One example: the flow's ``input``, the ``expected`` output (None: no reference answer), free
    ``metadata`` and its ``source`` (``run_id``, ``step``, ``model``, ``prompt``, ``feedback`` when known).
    ``version`` is the dataset version that added this revision of the item."""

    id: str
    input: JSON
    expected: JSON = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    version: int = 0
    created_at: float = 0.0

    @classmethod
    def _of(cls, r: ItemRecord) -> DatasetItem:
        return cls(r.id, r.input, r.expected, r.metadata, r.source, r.version, r.created_at)

    def to_json(self) -> dict[str, Any]:
        """The item as one line of an export (without the store's version and time)."""
        out: dict[str, Any] = {"id": self.id, "input": self.input, "expected": self.expected}
        if self.metadata:
            out["metadata"] = self.metadata
        if self.source:
            out["source"] = self.source
        return out


def check_name(name: Any) -> str:
    """A dataset name: letters, digits, ``_.-``, up to 128 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '.' and '-' (up to 128 characters)"
        )
    return name


def _json(value: Any, what: str) -> JSON:
    try:
        return to_json(value)
    except Exception as exc:
        raise UsageError(f"{what} is not JSON-serializable: {exc}") from None


def make_item(
    input: Any,
    expected: Any = None,
    *,
    id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> ItemRecord:
    """A checked item revision (a new id unless ``id`` is given)."""
    if id is not None and (not isinstance(id, str) or not id or len(id) > 200):
        raise UsageError(f"an item id must be a non-empty string of up to 200 characters, not {id!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise UsageError(f"metadata must be a JSON object, not {type(metadata).__name__}")
    if source is not None and not isinstance(source, Mapping):
        raise UsageError(f"source must be a JSON object, not {type(source).__name__}")
    return ItemRecord(
        id=id or new_id(),
        input=_json(input, "input"),
        expected=_json(expected, "expected"),
        metadata=dict(_json(dict(metadata or {}), "metadata") or {}),
        source=None if source is None else dict(_json(dict(source), "source") or {}),
    )


def parse_jsonl(text: str) -> list[ItemRecord]:
    """Items from JSONL (one JSON object a line; blank lines skipped). Every line is checked first; a
    ``UsageError`` names each bad line by number (the first ``MAX_ERRORS``), so nothing half-imports."""
    items: list[ItemRecord] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {number}: expected a JSON object, got {type(obj).__name__}")
            continue
        unknown = sorted(set(obj) - _FIELDS)
        if unknown:
            errors.append(
                f"line {number}: unknown field(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(_FIELDS))})"
            )
            continue
        if "input" not in obj:
            errors.append(f"line {number}: missing field 'input'")
            continue
        try:
            item = make_item(
                obj["input"], obj.get("expected"), id=obj.get("id"), metadata=obj.get("metadata"),
                source=obj.get("source"),
            )  # fmt: skip
        except UsageError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if "id" in obj and item.id in seen:
            errors.append(f"line {number}: item id {item.id!r} appears again (first on line {seen[item.id]})")
            continue
        seen[item.id] = number
        items.append(item)
    if errors:
        more = len(errors) - MAX_ERRORS
        listed = errors[:MAX_ERRORS] + ([f"... and {more} more"] if more > 0 else [])
        raise UsageError("nothing imported; bad lines:\n  " + "\n  ".join(listed))
    return items


class Datasets:
    """``client.datasets``: create datasets, add items, read, export and import them (JSONL)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def create(self, name: str, *, description: str = "", exist_ok: bool = False) -> Dataset:
        """Create an empty dataset. ``UsageError`` if it exists (unless ``exist_ok``)."""
        self._client._check_open()
        check_name(name)
        rec = DatasetRecord(name, description, self._client.clock())
        if not await self._client.store.dataset_create(rec) and not exist_ok:
            raise UsageError(f"dataset {name!r} exists already")
        return await self.get(name)

    async def get(self, name: str) -> Dataset:
        """The dataset with its current version and item count; ``NotFoundError`` if there is none."""
        self._client._check_open()
        rec = await self._client.store.dataset_get(check_name(name))
        if rec is None:
            raise NotFoundError(f"no dataset named {name!r} (create it: podium datasets create {name})")
        return Dataset._of(rec)

    async def list(self) -> builtins.list[Dataset]:
        """Every dataset, by name."""
        self._client._check_open()
        return [Dataset._of(d) for d in await self._client.store.dataset_list()]

    async def add(
        self,
        name: str,
        input: Any,
        expected: Any = None,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> DatasetItem:
        """Add an item (or, with the ``id`` of an existing item, a new revision of it)."""
        item = make_item(input, expected, id=id, metadata=metadata, source=source)
        version = await self._append(name, [item])
        return DatasetItem._of(ItemRecord(item.id, item.input, item.expected, item.metadata, item.source,
                                          version, self._client.clock()))  # fmt: skip

    async def add_many(self, name: str, items: Iterable[DatasetItem | Mapping[str, Any]]) -> int:
        """Add several items in one transaction (all or none); the dataset's new version."""
        recs = []
        for it in items:
            if isinstance(it, DatasetItem):
                recs.append(
                    make_item(it.input, it.expected, id=it.id, metadata=it.metadata, source=it.source)
                )
            elif isinstance(it, Mapping) and "input" in it:
                recs.append(make_item(it["input"], it.get("expected"), id=it.get("id"),
                                      metadata=it.get("metadata"), source=it.get("source")))  # fmt: skip
            else:
                raise UsageError(f"an item is a DatasetItem or a mapping with 'input', not {it!r}")
        return await self._append(name, recs)

    async def _append(self, name: str, items: builtins.list[ItemRecord]) -> int:
        self._client._check_open()
        version = await self._client.store.dataset_append(check_name(name), items, now=self._client.clock())
        if version is None:
            raise NotFoundError(f"no dataset named {name!r} (create it: podium datasets create {name})")
        return version

    async def items(self, name: str, *, version: int | None = None) -> builtins.list[DatasetItem]:
        """The dataset's items (each at its newest revision), in the order they were first added; with
        ``version``, as the dataset was at that version."""
        d = await self.get(name)
        if version is not None and not 0 <= version <= d.version:
            raise UsageError(f"dataset {name!r} has versions 0 to {d.version}, not {version}")
        return [DatasetItem._of(r) for r in await self._client.store.dataset_items(name, version=version)]

    async def export(self, name: str, path: str | Path | None = None, *, version: int | None = None) -> str:
        """The items as JSONL (``{"id", "input", "expected", "metadata", "source"}`` a line), also written
        to ``path`` if given."""
        lines = [
            json.dumps(i.to_json(), ensure_ascii=False) + "\n"
            for i in await self.items(name, version=version)
        ]
        text = "".join(lines)
        if path is not None:
            await asyncio.to_thread(Path(path).write_text, text, encoding="utf-8")
        return text

    async def import_(self, name: str, source: str | Path, *, create: bool = True) -> int:
        """Add the items of JSONL text (or a ``Path`` to a JSONL file). Lines are validated first, and a
        ``UsageError`` names every bad line by number; then all items are added in one transaction.
        Creates the dataset if needed (``create=False``: it must exist). Returns the number of items."""
        if isinstance(source, Path):
            try:
                source = await asyncio.to_thread(source.read_text, encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {source}: {exc}") from None
        items = parse_jsonl(source)
        if not items:
            raise UsageError("nothing to import: no items in the input")
        if create:
            await self.create(name, exist_ok=True)
        await self._append(name, items)
        return len(items)
