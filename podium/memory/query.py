"""Query helpers of the memory stores: full-text queries, metadata filters as SQL (SQLite and PostgreSQL),
URLs, migrations."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ConfigError

_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "has", "have", "how",
        "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when",
        "where", "which", "who", "why", "will", "with", "you"
    }
)  # fmt: skip
_WORD = re.compile(r"\w+", re.UNICODE)
_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def query_words(text: str) -> list[str]:
    """The distinct words of ``text`` that a full-text query uses (stop words left out, unless that
    leaves none)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    if not words:
        words = _WORD.findall(text.lower())
    return list(dict.fromkeys(words))[:32]


def fts_query(text: str | list[str]) -> str | None:
    """An FTS5 query matching any word of ``text`` (quoted, so no word is read as an operator)."""
    seen = query_words(text) if isinstance(text, str) else text
    return " OR ".join(f'"{w}"' for w in seen) if seen else None


def filter_conditions(filters: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    """Metadata filters checked and read as ``(key, operator, value)`` conditions (operator ``IN``: a list).

    ``{"lang": "en"}`` equality; ``{"lang": ["en", "de"]}`` any of; ``{"year": {"$gte": 2020}}`` comparisons
    ($eq $ne $gt $gte $lt $lte $in); the keys ``source`` and ``doc`` filter on those columns.
    """
    if not filters:
        return []
    if not isinstance(filters, dict):
        raise ConfigError(f"filters must be a dict of metadata key -> value, not {filters!r}")
    out: list[tuple[str, str, Any]] = []
    for key, want in filters.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filter keys must be non-empty strings, not {key!r}")
        conds: list[tuple[str, Any]] = []
        if isinstance(want, dict):
            for op, value in want.items():
                if op == "$in":
                    conds.append(("IN", list(value)))
                elif op in _OPS:
                    conds.append((_OPS[op], value))
                else:
                    raise ConfigError(
                        f"filter on {key!r}: unknown operator {op!r} (use {', '.join(_OPS)}, $in)"
                    )
        elif isinstance(want, list | tuple):
            conds.append(("IN", list(want)))
        else:
            conds.append(("=", want))
        for op, value in conds:
            for v in value if op == "IN" else [value]:
                _sql_value(v)
            out.append((key, op, value))
    return out


def filter_sql(filters: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """``AND ...`` conditions on ``i`` (mem_items) for metadata filters, in SQLite (see
    ``filter_conditions``)."""
    parts: list[str] = []
    args: list[Any] = []
    for key, op, value in filter_conditions(filters):
        if key in ("source", "doc"):
            col = f"i.{key}"
        else:
            col = "json_extract(i.metadata, ?)"
            args.append('$."' + key.replace('"', '""') + '"')
        if op == "IN":
            if not value:
                parts.append("0")
                if key not in ("source", "doc"):
                    args.pop()
                continue
            parts.append(f"{col} IN ({','.join('?' * len(value))})")
            args.extend(_sql_value(v) for v in value)
        else:
            parts.append(f"{col} {op} ?")
            args.append(_sql_value(value))
    return "".join(f" AND {p}" for p in parts), args


def filter_pg(filters: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """The same conditions in PostgreSQL (``metadata`` is ``jsonb``; ``%s`` parameters). An order
    comparison ($gt ...) holds only between values of one JSON type (numbers with numbers, strings with
    strings)."""
    parts: list[str] = []
    args: list[Any] = []
    for key, op, value in filter_conditions(filters):
        column = key in ("source", "doc")
        if op == "IN" and not value:
            parts.append("false")
            continue
        values = value if op == "IN" else [value]
        if column:
            marks = ["%s"] * len(values)
            args.extend(None if v is None else str(_sql_value(v)) for v in values)
            col = f"i.{key}"
        else:
            marks = ["%s::jsonb"] * len(values)
            col = "(i.metadata -> %s)"
            args.append(key)
            args.extend(json.dumps(v) for v in values)
        if op == "IN":
            parts.append(f"{col} IN ({', '.join(marks)})")
        elif op in ("=", "!=") or column:
            parts.append(f"{col} {op} {marks[0]}")
        else:
            parts.append(f"jsonb_typeof{col} = jsonb_typeof(%s::jsonb) AND {col} {op} %s::jsonb")
            args.extend([key, json.dumps(value)])
    return "".join(f" AND {p}" for p in parts), args


def _sql_value(v: Any) -> Any:
    if isinstance(v, bool):
        return 1 if v else 0  # json_extract returns 1/0 for JSON true/false
    if v is None or isinstance(v, int | float | str):
        return v
    raise ConfigError(f"filter values must be strings, numbers, booleans or null, not {v!r}")


def path_of(url: str) -> str:
    """The SQLite file of a ``sqlite:///PATH`` URL (``:memory:`` for ``memory://``)."""
    if url.startswith("memory://"):
        return ":memory:"
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///") :]
    raise ConfigError(
        f"unsupported memory URL {url!r}: use sqlite:///PATH, postgresql://USER@HOST/DB or memory://"
    )


def statements(sql: str) -> list[str]:
    """Split a migration into statements (a trigger's body holds ';' and ends with 'END;')."""
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for line in sql.splitlines():
        if not line.strip():
            continue
        buf.append(line)
        if line.lstrip().upper().startswith("CREATE TRIGGER"):
            in_trigger = True
        if line.rstrip().endswith(";") and (not in_trigger or line.strip().upper() == "END;"):
            out.append("\n".join(buf))
            buf = []
            in_trigger = False
    if buf:
        out.append("\n".join(buf))
    return out
