"""Replay, execution, group commit and workers."""

from .execution import Execution
from .timeline import TimelineRow, timeline
from .worker import Worker

__all__ = ["Execution", "TimelineRow", "Worker", "timeline"]
