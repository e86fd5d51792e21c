"""Managing what flows use and do: the prompt registry (``client.prompts``, ``ctx.prompt``), human feedback
as data, datasets (``client.datasets``) and evaluations (``client.evaluate``, ``podium eval``). See
``docs/evals.md``."""

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
from .prompts import DEFAULT_LABEL, LabelMove, Prompt, PromptInfo, Prompts, pick_arm

__all__ = [
    "DEFAULT_LABEL",
    "Change",
    "Dataset",
    "DatasetItem",
    "Datasets",
    "EvalReport",
    "Feedback",
    "ItemResult",
    "LabelMove",
    "Prompt",
    "PromptInfo",
    "Prompts",
    "Variant",
    "VariantSummary",
    "compare",
    "get_eval",
    "list_evals",
    "parse_variant",
    "pick_arm",
]
