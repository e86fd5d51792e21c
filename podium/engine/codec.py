"""Turning step results and errors into journal data and back."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

if TYPE_CHECKING:  # pydantic itself loads on first use: `import podium` stays quick
    from pydantic import TypeAdapter

from ..config import redact_secrets
from ..errors import RunError, StepTimeoutError

_ADAPTERS: dict[object, TypeAdapter[Any] | None] = {}


def to_json(value: Any) -> Any:
    """``value`` in JSON form (pydantic models, dataclasses, dates, sets ... become plain JSON)."""
    return to_jsonable_python(value)


def result_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any] | None:
    """A validator for ``fn``'s return annotation, or None when it has none worth validating."""
    key = getattr(fn, "__code__", fn)  # closures made by one `def` share it: one adapter, no leak
    try:
        return _ADAPTERS[key]
    except KeyError:
        pass
    adapter: TypeAdapter[Any] | None = None
    try:
        hint = typing.get_type_hints(fn).get("return", inspect.Signature.empty)
    except Exception:
        hint = inspect.Signature.empty
    if hint not in (inspect.Signature.empty, Any, None, type(None)):
        from pydantic import TypeAdapter

        try:
            adapter = TypeAdapter(hint)
        except Exception:
            adapter = None
    _ADAPTERS[key] = adapter
    return adapter


def from_json(fn: Callable[..., Any], value: Any) -> Any:
    """A journaled JSON result rebuilt as ``fn``'s annotated return type."""
    adapter = result_adapter(fn)
    return value if adapter is None else adapter.validate_python(value)


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The journaled form of an exception: ``type``, ``message`` (without secrets), ``retryable``."""
    if isinstance(exc, RunError):
        return {"type": exc.type, "message": redact_secrets(exc.message), "retryable": exc.retryable}
    if isinstance(exc, TimeoutError):
        return {"type": StepTimeoutError.__name__, "message": str(exc) or "timed out", "retryable": True}
    return {"type": type(exc).__name__, "message": redact_secrets(str(exc)), "retryable": True}


__all__ = ["PydanticSerializationError", "describe_error", "from_json", "result_adapter", "to_json"]
