"""Managing what flows use: the prompt registry (``client.prompts``, ``ctx.prompt``)."""

from __future__ import annotations

from .prompts import DEFAULT_LABEL, LabelMove, Prompt, PromptInfo, Prompts, pick_arm

__all__ = ["DEFAULT_LABEL", "LabelMove", "Prompt", "PromptInfo", "Prompts", "pick_arm"]
