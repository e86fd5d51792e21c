"""Managing what flows do: human feedback as data, datasets (``client.datasets``) and evaluations
(``client.evaluate``, ``podium eval``). See ``docs/evals.md``."""

from __future__ import annotations

from .datasets import Dataset, DatasetItem, Datasets
from .evals import (
    Change,
    EvalReport,
    ItemResult,
    Variant,
    VariantSummary,
    compare,
    get_eval,
    list_evals,
    parse_variant,
)
from .feedback import Feedback

__all__ = [
    "Change",
    "Dataset",
    "DatasetItem",
    "Datasets",
    "EvalReport",
    "Feedback",
    "ItemResult",
    "Variant",
    "VariantSummary",
    "compare",
    "get_eval",
    "list_evals",
    "parse_variant",
]
