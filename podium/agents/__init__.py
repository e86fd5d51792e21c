"""Agents: models that call tools in a journaled loop, hand work to each other and are reviewed."""

from .agent import Agent, AgentError, AgentInput, AgentResult

__all__ = ["Agent", "AgentError", "AgentInput", "AgentResult"]
