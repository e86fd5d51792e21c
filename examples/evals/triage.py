"""Evaluate a ticket triage flow on a dataset, offline: two keyword "models" stand in for real ones.

```sh
podium datasets import tickets examples/evals/tickets.jsonl
podium eval tickets --flow examples/evals/triage.py:triage \\
    --variant keywords=model:triager=keywords --variant keywords_v2=model:triager=keywords_v2 \\
    --scorer exact --scorer examples/evals/triage.py:known_team --chart eval.svg --fail-under 0.7
podium eval list tickets
```
With real models, configure them in ``podium.toml`` and pin them instead (``--variant
small=model:triager=fast``), or pin prompt versions (``--variant v4=prompt=triage@4``) when the flow reads
its prompt with ``ctx.prompt``.
"""

from typing import Any

import podium
from podium.models import ModelRequest, register

TEAMS = ("billing", "bug", "account", "other")
RULES = {"charged": "billing", "refund": "billing", "crash": "bug", "error": "bug"}
RULES_V2 = {**RULES, "password": "account", "log in": "account", "invoice": "billing"}


def keywords(rules: dict[str, str]) -> Any:
    """A "model" that answers with the team of the first keyword found in the ticket."""

    def answer(request: ModelRequest) -> str:
        text = request.messages[-1].content.lower()
        return next((team for word, team in rules.items() if word in text), "other")

    return answer


register("keywords", keywords(RULES), price_input=0.5, price_output=1.5)
register("keywords_v2", keywords(RULES_V2), price_input=0.5, price_output=1.5)
register("triager", keywords(RULES))  # what ctx.model("triager") calls unless a run pins another model


@podium.flow
async def triage(ctx: podium.Context, ticket: dict[str, Any]) -> str:
    """The team that should handle a ticket: ``{"text": ...}`` -> one of ``TEAMS``."""
    answer = await ctx.model("triager").generate(f"Which team handles this ticket? {ticket['text']}")
    return answer.strip().lower()


def known_team(output: Any, expected: Any) -> bool:
    """A custom scorer: the answer is one of the teams at all (whatever the expected one)."""
    return output in TEAMS
