"""A real OpenAI-compatible (and Anthropic Messages) HTTP server on 127.0.0.1, scripted by a test.

```python
with FakeOpenAIServer() as server:                       # listens on a free port
    server.script("429:0.2", "500", "ok:hello")          # then answers "ok" forever
    spec: base_url = server.url
    ...
    assert len(server.requests) == 3                      # every request it received, in order
```
Behaviours: ``ok[:TEXT]``, ``json:{...}`` (the message content), ``429[:RETRY_AFTER]``, ``500``, ``400``,
``sleep:SECONDS`` (answer late, for timeouts), ``malformed`` (not JSON), ``drop`` (close the connection
without answering), ``tool:NAME:{json args}``, ``401echo`` (a 401 whose message quotes the key sent, as some
gateways do).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIServer:
    """Serves ``/v1/chat/completions`` (also streaming) and ``/v1/embeddings`` from a script."""

    def __init__(self, default: str = "ok:hello") -> None:
        self.default = default
        self._script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "body": body,
                            "authorization": self.headers.get("authorization"),
                            "at": time.monotonic(),
                        }
                    )
                    action = server._script.popleft() if server._script else server.default
                server._answer(self, action, body)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *actions: str) -> None:
        """Queue behaviours for the next requests (then ``default`` applies)."""
        with self._lock:
            self._script.extend(actions)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers ------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, action: str, body: dict[str, Any]) -> None:
        kind, _, arg = action.partition(":")
        if kind == "drop":
            h.close_connection = True
            h.connection.close()
            return
        if kind == "sleep":
            time.sleep(float(arg))
            kind, arg = "ok", "late"
        if kind == "429":
            headers = {"Retry-After": arg} if arg else {}
            return self._send(h, 429, {"error": {"message": "rate limited"}}, headers)
        if kind == "401echo":  # as some gateways do: the key sent, quoted back in the error
            key = h.headers.get("authorization", "")
            return self._send(h, 401, {"error": {"message": f"Incorrect API key provided: {key}"}})
        if kind in ("500", "400"):
            return self._send(h, int(kind), {"error": {"message": f"scripted {kind}"}})
        if kind == "malformed":
            return self._send_raw(h, 200, b"{not json", "application/json")
        if h.path.endswith("/messages"):
            return self._anthropic(h, kind, arg, body)
        if h.path.endswith("/embeddings"):
            inputs = body.get("input", [])
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [{"index": i, "embedding": _vector(t)} for i, t in enumerate(inputs)]
            return self._send(
                h,
                200,
                {
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": sum(len(t.split()) for t in inputs)},
                },
            )
        message: dict[str, Any] = {"role": "assistant", "content": arg if kind == "ok" else ""}
        if kind == "json":
            message["content"] = arg
        if kind == "tool":
            name, _, args = arg.partition(":")
            message["tool_calls"] = [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args or "{}"}}
            ]
        if body.get("stream"):
            return self._stream(
                h, message["content"], bool((body.get("stream_options") or {}).get("include_usage"))
            )
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        self._send(
            h,
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if kind == "tool" else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(message["content"].split()),
                },
            },
        )

    def _anthropic(self, h: BaseHTTPRequestHandler, kind: str, arg: str, body: dict[str, Any]) -> None:
        """Anthropic's Messages API shape (``/v1/messages``)."""
        if kind == "tool" or (kind == "json" and body.get("tool_choice")):
            name, _, args = arg.partition(":") if kind == "tool" else ("output", "", arg)
            content = [{"type": "tool_use", "id": "toolu_1", "name": name, "input": json.loads(args or "{}")}]
        else:
            content = [{"type": "text", "text": arg}]
        if body.get("stream"):
            h.send_response(200)
            h.send_header("content-type", "text/event-stream")
            h.send_header("connection", "close")
            h.end_headers()
            for word in arg.split(" "):
                event = {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word + " "},
                }
                h.wfile.write(f"event: content_block_delta\ndata: {json.dumps(event)}\n\n".encode())
            h.wfile.write(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
            h.close_connection = True
            return None
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        self._send(
            h,
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": content,
                "stop_reason": "tool_use" if content[0]["type"] == "tool_use" else "end_turn",
                "usage": {"input_tokens": len(prompt.split()), "output_tokens": len(arg.split())},
            },
        )
        return None

    def _stream(self, h: BaseHTTPRequestHandler, text: str, usage: bool = False) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        for word in text.split(" "):
            chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
            h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            h.wfile.flush()
        if usage:
            final = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(text.split())}}
            h.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        h.wfile.write(b"data: [DONE]\n\n")
        h.close_connection = True

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(h, status, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(
        h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test, dropped connection) is expected here; stay quiet."""


def _vector(text: str, dim: int = 8) -> list[float]:
    """A deterministic toy embedding: letter frequencies folded into ``dim`` buckets, normalised."""
    v = [0.0] * dim
    for ch in text.lower():
        if ch.isalpha():
            v[ord(ch) % dim] += 1.0
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


def main() -> None:
    """Run the server in its own process: prints its URL, and on SIGTERM writes the arrival time
    (``time.time()``) of every request, one per line, to the file named by the first argument."""
    import signal
    import sys

    server = FakeOpenAIServer(default=sys.argv[2] if len(sys.argv) > 2 else "ok:fine")
    server.start()
    print(server.url, flush=True)
    offset = time.time() - time.monotonic()

    def finish(*_: object) -> None:
        server.stop()
        with open(sys.argv[1], "w") as f:
            f.writelines(f"{r['at'] + offset}\n" for r in server.requests)
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.pause()


if __name__ == "__main__":
    main()
