"""A tiny MCP server for tests/test_mcp.py, written with the official ``mcp`` SDK (``MCPServer``, the
``FastMCP`` of mcp 1.x). Every call of ``add`` appends a line to the file named by ``MCP_CALLS`` (if set),
so a test can count how often the server really ran it.

Run: ``python tests/mcp_server_app.py`` (MCP over stdio).
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("podium-test-tools")


def _count(line: str) -> None:
    path = os.environ.get("MCP_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    _count(f"add {a} {b}")
    return a + b


@app.tool()
def fail(reason: str = "no reason") -> str:
    """A tool that always fails (an MCP error result)."""
    _count(f"fail {reason}")
    raise ToolError(f"fail was asked to fail: {reason}")


@app.tool()
def echo(text: str, timeout: float = 1.0) -> str:
    """Echo a text back (``timeout`` is an argument of the tool's own, like many real tools have)."""
    _count(f"echo {text} {timeout}")
    return f"{text} {timeout}"


if __name__ == "__main__":
    app.run()  # stdio
