"""Import user code named on the command line: ``module:flow`` or ``path/to/file.py:flow``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UnknownFlowError, UsageError
from ..workflow.flow import Flow


def load_module(ref: str) -> ModuleType:
    """Import a dotted module or a ``.py`` file (the current directory is importable)."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if ref.endswith(".py") or "/" in ref or "\\" in ref:
        path = Path(ref)
        if not path.is_file():
            raise UsageError(f"no such file: {ref}")
        name = path.stem
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path.resolve()):
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path.resolve())
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import {ref}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise UsageError(f"importing {ref} failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import module {ref!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing {ref} failed: {type(exc).__name__}: {exc}") from exc


def load_flow(ref: str) -> Flow[Any, Any]:
    """``module:flow`` to the registered ``Flow``."""
    if ":" not in ref:
        raise UsageError(f"expected MODULE:FLOW (e.g. examples/checkout.py:checkout), got {ref!r}")
    mod_ref, _, attr = ref.rpartition(":")
    module = load_module(mod_ref)
    obj = getattr(module, attr, None)
    if obj is None:
        raise UnknownFlowError(f"{mod_ref} has no attribute {attr!r}")
    if not isinstance(obj, Flow):
        raise UnknownFlowError(f"{ref} is not a flow (decorate it with @podium.flow)")
    return obj
