"""Scorers: how an evaluation grades a flow's output against a dataset item. A score is a float in
``[0, 1]`` (``True``/``False`` count as 1/0) or ``None`` when the scorer does not apply (no expected output).

| ``--scorer`` | class | 1.0 when |
|---|---|---|
| ``exact`` | ``ExactMatch()`` | output == expected (strings: ignoring surrounding space) |
| ``json_schema:FILE_OR_JSON`` | ``JsonSchemaValid(schema)`` | the output (or JSON in it) fits the schema |
| ``numeric[:TOLERANCE]`` | ``NumericTolerance(0.01)`` | a number within the tolerance of the expected one |
| ``regex[:PATTERN]`` | ``RegexMatch(pattern)`` | the pattern (default: the expected output) is found |
| ``embedding[:MODEL]`` | ``EmbeddingSimilarity("embed")`` | cosine similarity of output and expected |
| ``judge:MODEL`` | ``ModelJudge("smart")`` | the model's grade (0-10 or 0-1) given input and expected |
| ``MODULE:FUNCTION`` | any callable | ``fn(output, expected[, item])``, sync or async |
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UsageError
from ..models.errors import MissingExtraError
from ..types import JSON

if TYPE_CHECKING:
    from ..models.registry import Models
    from .datasets import DatasetItem


class Scorer(Protocol):
    """Grades one output: a score in ``[0, 1]``, or None if it does not apply to this item."""

    name: str

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None: ...


def text(value: JSON) -> str:
    """An output as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def clamp(value: Any, name: str) -> float | None:
    """A scorer's answer as a score: None, a bool (0/1) or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return min(1.0, max(0.0, float(value)))
    raise UsageError(
        f"scorer {name!r} returned {value!r}; a scorer returns a number in [0, 1], a bool or None"
    )


@dataclass(slots=True)
class ExactMatch:
    """1.0 when the output equals the expected output (strings compared without surrounding space)."""

    name: str = "exact"

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        expected = item.expected
        if expected is None:
            return None
        if isinstance(output, str) and isinstance(expected, str):
            return float(output.strip() == expected.strip())
        return float(output == expected)


@dataclass(slots=True)
class JsonSchemaValid:
    """1.0 when the output is valid under a JSON schema (a string output is parsed as JSON first, taking
    the object inside prose or code fences). Needs ``jsonschema`` (``pip install podium[evals]``)."""

    schema: dict[str, Any]
    name: str = "json_schema"
    _validator: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            jsonschema = importlib.import_module("jsonschema")
        except ImportError:
            raise MissingExtraError(
                "the json_schema scorer needs jsonschema: pip install podium[evals]"
            ) from None
        try:
            cls = jsonschema.validators.validator_for(self.schema)
            cls.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise UsageError(f"invalid JSON schema: {exc.message}") from None
        self._validator = cls(self.schema)

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        value: Any = output
        if isinstance(output, str):
            raw = output
            start, end = raw.find("{"), raw.rfind("}")
            candidates = [raw] + ([raw[start : end + 1]] if 0 <= start < end else [])
            for candidate in candidates:
                try:
                    value = json.loads(candidate)
                    break
                except json.JSONDecodeError:
                    continue
            else:
                return 0.0
        return float(self._validator.is_valid(value))


@dataclass(slots=True)
class NumericTolerance:
    """1.0 when output and expected output are numbers at most ``tolerance`` apart (``relative``: as a
    fraction of the expected value); 0.0 when the output is not a number."""

    tolerance: float = 0.0
    relative: bool = False
    name: str = "numeric"

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        want = _number(item.expected)
        if want is None:
            return None
        got = _number(output)
        if got is None:
            return 0.0
        limit = self.tolerance * abs(want) if self.relative else self.tolerance
        return float(abs(got - want) <= limit + 1e-12)


@dataclass(slots=True)
class RegexMatch:
    """1.0 when ``pattern`` (default: the item's expected output, as a pattern) is found in the output."""

    pattern: str | None = None
    name: str = "regex"

    def __post_init__(self) -> None:
        if self.pattern is not None:
            _compile(self.pattern)

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        pattern = self.pattern if self.pattern is not None else item.expected
        if pattern is None:
            return None
        return float(_compile(text(pattern)).search(text(output)) is not None)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"invalid regular expression {pattern!r}: {exc}") from None


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return 0.0 if na == 0 or nb == 0 else dot / (na * nb)


@dataclass(slots=True)
class EmbeddingSimilarity:
    """Cosine similarity (floored at 0) of the embeddings of output and expected output, by the embedding
    model ``model`` (default: the embedded ``embed`` model)."""

    model: str = "embed"
    name: str = "embedding"

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        if item.expected is None:
            return None
        spec = models.spec(self.model)
        if spec.kind != "embedding":
            raise UsageError(f"model {self.model!r} is not an embedding model")
        result = await models.provider(spec).embed(spec, [text(output), text(item.expected)], query=False)
        return max(0.0, min(1.0, cosine(result.vectors[0], result.vectors[1])))


JUDGE_PROMPT = """You grade the answer of an AI system.
Task input:
{input}

Reference answer (may be empty):
{expected}

Answer to grade:
{output}

{criteria}Reply with JSON only: {{"score": N}} where N is from 0 (wrong) to 10 (perfect)."""
_SCORE = re.compile(r'"score"\s*:\s*(-?\d+(?:\.\d+)?)|(-?\d+(?:\.\d+)?)')


@dataclass(slots=True)
class ModelJudge:
    """A model grades the output from 0 to 10 (or 0 to 1), given the input, the expected output and
    ``criteria``; the score is normalised to [0, 1]. An answer without a number scores 0."""

    model: str
    criteria: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise UsageError("a judge needs a model: judge:MODEL")
        self.name = self.name or f"judge:{self.model}"

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        from ..models.types import Message, ModelRequest

        prompt = JUDGE_PROMPT.format(
            input=text(item.input), expected="" if item.expected is None else text(item.expected),
            output=text(output), criteria=f"Criteria: {self.criteria}\n" if self.criteria else "",
        )  # fmt: skip
        spec = models.spec(self.model)
        request = ModelRequest(messages=[Message(role="user", content=prompt)], temperature=0.0)
        completion = await models.provider(spec).complete(spec, request)
        return parse_grade(completion.text)


def parse_grade(answer: str) -> float:
    """A judge's grade in [0, 1]: ``{"score": 8}`` or the first number; over 1 means out of 10."""
    m = _SCORE.search(answer)
    if m is None:
        return 0.0
    value = float(m.group(1) or m.group(2))
    return min(1.0, max(0.0, value / 10 if value > 1 else value))


@dataclass(slots=True)
class Custom:
    """A Python function as a scorer: ``fn(output, expected)`` or ``fn(output, expected, item)``."""

    fn: Callable[..., Any]
    name: str = ""
    _arity: int = 2

    def __post_init__(self) -> None:
        self.name = self.name or getattr(self.fn, "__name__", type(self.fn).__name__)
        try:
            params = inspect.signature(self.fn).parameters.values()
        except (TypeError, ValueError):
            params = ()  # type: ignore[assignment]
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._arity = 3 if len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params) else 2

    async def score(self, output: JSON, item: DatasetItem, models: Models) -> float | None:
        args = (output, item.expected, item)[: self._arity]
        value = self.fn(*args)
        if inspect.isawaitable(value):
            value = await value
        return clamp(value, self.name)


def as_scorer(value: Any, *, load: Callable[[str], ModuleType] | None = None) -> Scorer:
    """A scorer from a spec string (see the module docstring), a scorer object or a plain function."""
    if isinstance(value, str):
        return parse_scorer(value, load=load)
    if hasattr(value, "score") and hasattr(value, "name"):
        return value  # type: ignore[no-any-return]
    if callable(value):
        return Custom(value)
    raise UsageError(f"not a scorer: {value!r} (a spec such as 'exact', a Scorer or a function)")


def parse_scorer(spec: str, *, load: Callable[[str], ModuleType] | None = None) -> Scorer:
    """``exact``, ``json_schema:FILE_OR_JSON``, ``numeric[:TOL]``, ``regex[:PATTERN]``,
    ``embedding[:MODEL]``, ``judge:MODEL`` or ``MODULE:FUNCTION``."""
    kind, _, arg = spec.partition(":")
    if kind == "exact" and not arg:
        return ExactMatch()
    if kind in ("json_schema", "schema"):
        return JsonSchemaValid(_schema(arg))
    if kind == "numeric":
        try:
            tol = float(arg) if arg else 0.0
        except ValueError:
            raise UsageError(f"numeric:TOLERANCE needs a number, not {arg!r}") from None
        return NumericTolerance(tol)
    if kind == "regex":
        return RegexMatch(arg or None)
    if kind == "embedding":
        return EmbeddingSimilarity(arg or "embed")
    if kind == "judge":
        return ModelJudge(arg)
    if not arg:
        known = "exact, json_schema:SCHEMA, numeric[:TOL], regex[:PATTERN], embedding[:MODEL], judge:MODEL"
        raise UsageError(f"unknown scorer {spec!r}; use one of {known}, or MODULE:FUNCTION")
    module_ref, _, attr = spec.rpartition(":")
    try:
        module = load(module_ref) if load is not None else importlib.import_module(module_ref)
    except ImportError as exc:
        raise UsageError(f"scorer {spec!r}: cannot import {module_ref!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"scorer {spec!r}: {module_ref} has no function {attr!r}")
    return Custom(fn, name=attr)


def _schema(arg: str) -> dict[str, Any]:
    if not arg:
        raise UsageError("json_schema:SCHEMA needs a schema: a .json file or inline JSON")
    raw = arg
    if not arg.lstrip().startswith("{"):
        try:
            raw = Path(arg).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the JSON schema {arg}: {exc}") from None
    try:
        schema = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise UsageError("a JSON schema is a JSON object")
    return schema
