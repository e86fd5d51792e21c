"""A minimal OpenAI-compatible chat endpoint on uvicorn (single-threaded asyncio, low jitter), recording
when each request arrives. Used by bench/models.py to check rate-limit pacing at the receiving end.

    python bench/chat_server.py LOG_FILE PORT      # on SIGTERM/SIGINT, writes one arrival time per line
"""

from __future__ import annotations

import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ARRIVALS: list[float] = []


async def chat(request: Request) -> JSONResponse:
    ARRIVALS.append(time.time())
    await request.body()
    return JSONResponse(
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )


async def models(request: Request) -> JSONResponse:
    return JSONResponse({"data": []})


def main() -> None:
    log, port = sys.argv[1], int(sys.argv[2])
    app = Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    with open(log, "w") as f:
        f.writelines(f"{t}\n" for t in ARRIVALS)


if __name__ == "__main__":
    main()
