"""Prompt templates: sandboxed Jinja2 with strict variables, compiled once per text.

A template can only read the variables it is given: the sandbox refuses attribute access to internals
(``{{ x.__class__ }}``), calls of unsafe methods and ``str.format`` tricks, and a missing variable is an error
instead of an empty string.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import jinja2


@lru_cache(maxsize=1)
def _env() -> Any:
    """The sandboxed environment (Jinja2 is imported on first use: ``import podium`` stays light)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, auto_reload=False
    )


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template for ``source`` (a syntax error is a ``UsageError`` naming the line)."""
    import jinja2

    try:
        template: jinja2.Template = _env().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UsageError(f"invalid template (line {exc.lineno}): {exc.message}") from None
    return template


def variables_of(*sources: str | None) -> list[str]:
    """The variables ``sources`` read, sorted."""
    from jinja2 import meta

    names: set[str] = set()
    for source in sources:
        if source:
            compile_template(source)  # a clear error for a syntax error first
            names |= meta.find_undeclared_variables(_env().parse(source))
    return sorted(names)


def render(source: str, variables: Mapping[str, Any], what: str) -> str:
    """Render ``source`` with ``variables``; every failure is a ``UsageError`` that starts with ``what``."""
    import jinja2

    template = compile_template(source)
    try:
        return template.render(variables)
    except jinja2.exceptions.SecurityError as exc:
        raise UsageError(f"{what}: the template sandbox refused an unsafe operation: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise UsageError(f"{what}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise UsageError(f"{what}: cannot render: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise UsageError(f"{what}: cannot render: {type(exc).__name__}: {exc}") from None


def content_hash(
    template: str,
    system: str | None,
    variables: list[str],
    model: str | None,
    params: Mapping[str, Any],
) -> str:
    """The identity of a version's content: pushing the same content twice yields the same version."""
    blob = json.dumps(
        [template, system, sorted(variables), model, dict(params)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
