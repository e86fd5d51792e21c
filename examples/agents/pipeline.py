"""Sequential pipeline: a researcher looks facts up, a writer drafts, an editor polishes.

Each agent's answer is the next agent's task; every model turn and tool call is a journaled step, so a crash
between the writer and the editor resumes at the editor.

    python examples/agents/pipeline.py
"""

from __future__ import annotations

import podium
from podium.models import register
from podium.testing import ScriptedModel, call


@podium.tool
def search(query: str) -> list[str]:
    """Search the product notes.

    Args:
        query: Words to look for.
    """
    notes = [
        "Podium journals every step in SQLite or PostgreSQL.",
        "A crashed run resumes where it stopped.",
        "Agents call tools as journaled steps.",
    ]
    return [n for n in notes if any(w in n.lower() for w in query.lower().split())]


# Offline, scripted models give fixed replies (a reply is text, a tool call, or a function of the request).
# For a real model, configure one in podium.toml and pass its name as model= below (and drop these lines):
#     [models.smart]
#     provider = "openai"                 # OpenAI-compatible; "anthropic"; or "local" (embedded SmolLM2)
#     model = "gpt-4o-mini"
#     api_key_env = "OPENAI_API_KEY"
register(
    "pipeline.researcher",
    ScriptedModel(
        call("search", query="journals resumes agents"),
        "Podium journals every step; a crashed run resumes where it stopped; agent tool calls are steps.",
    ),
)
register(
    "pipeline.writer", ScriptedModel("Podium writes down evry step, so crashed run's resume and agents to.")
)
register("pipeline.editor", ScriptedModel("Podium journals every step, so crashed runs resume, agents too."))

researcher = podium.Agent(
    "researcher", "Find the facts the topic needs. Search first.", model="pipeline.researcher", tools=[search]
)
writer = podium.Agent("writer", "Write one sentence from the facts you are given.", model="pipeline.writer")
editor = podium.Agent("editor", "Fix grammar and spelling; keep the meaning.", model="pipeline.editor")


@podium.flow(name="agents.pipeline")
async def pipeline(ctx: podium.Context, topic: str) -> str:
    facts = await researcher.run(ctx, topic)
    draft = await writer.run(ctx, facts.output)
    final = await editor.run(ctx, draft.output)
    return final.output


if __name__ == "__main__":
    print(podium.run(pipeline, "Why is Podium durable?"))
