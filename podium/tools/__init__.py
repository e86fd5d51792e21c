"""Tools a model may call: ``@podium.tool``, ``Toolset`` (grants, filters, prefixes, approval rules)."""

from .tool import Tool, ToolArgumentsError, make_tool, tool
from .toolset import ToolResult, Toolset

__all__ = ["Tool", "ToolArgumentsError", "ToolResult", "Toolset", "make_tool", "tool"]
