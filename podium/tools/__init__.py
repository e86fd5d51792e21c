"""Tools a model may call: ``@podium.tool``, ``Toolset`` (grants, filters, prefixes, approval rules), and
``podium.tools.mcp``: the tools of MCP servers (the ``mcp`` SDK loads only when one is used)."""

from . import mcp
from .tool import Tool, ToolArgumentsError, make_tool, tool
from .toolset import ToolResult, Toolset

__all__ = ["Tool", "ToolArgumentsError", "ToolResult", "Toolset", "make_tool", "mcp", "tool"]
