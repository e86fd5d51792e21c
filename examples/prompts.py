"""Prompts from the registry: push two versions, run a flow on `production`, roll back, split traffic.

`python examples/prompts.py` (or, with the registry filled: `podium run examples/prompts.py:triage --input
'"my printer is on fire"'`). The model here is a stand-in that echoes its prompt in capitals; configure a real
one in podium.toml and call it by name instead.
"""

import asyncio

import podium
from podium.models import ModelRequest, register


def shout(request: ModelRequest) -> str:
    return request.messages[-1].content.upper()


register("shout", shout)


@podium.flow
async def triage(ctx: podium.Context, ticket: str) -> dict[str, object]:
    prompt = await ctx.prompt("triage")  # journaled: a resumed or replayed run keeps this version
    text = prompt.render(ticket=ticket)
    answer = await ctx.model("shout").generate(text, system=text.system)  # journals the prompt's version
    return {"prompt": prompt.ref, "arm": prompt.arm, "answer": answer}


async def main() -> None:
    async with podium.Client() as client:
        await client.prompts.split("triage", None)  # (run again: start without the split of the last run)
        await client.prompts.push("triage", "Classify: {{ ticket }}", label="production")
        await client.prompts.push(
            "triage", "Triage this ticket in one word.\n{{ ticket }}", system="Be brief.", label="production"
        )
        print(await (await client.start(triage, "printer on fire")).result())  # version 2
        await client.prompts.rollback("triage")  # production back to version 1, for new runs at once
        print(await (await client.start(triage, "printer on fire")).result())
        await client.prompts.label("triage", 2, "candidate")
        await client.prompts.split("triage", {"production": 50, "candidate": 50})
        for _ in range(4):
            out = await (await client.start(triage, "printer on fire")).result()
            print(out["arm"], out["prompt"])
        print(await client.prompts.diff("triage", "production", "candidate"))


if __name__ == "__main__":
    asyncio.run(main())
