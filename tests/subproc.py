"""A ``podium`` command run as a real subprocess from an async test, its stderr read line by line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from conftest import WAIT_SECONDS

ROOT = Path(__file__).resolve().parent.parent


class Podium:
    """``python -m podium.cli ARGS``, started by ``await Podium.start(...)``; stdout is discarded."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Podium:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "podium.cli",
            *args,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200", **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def wait_for(self, text: str, timeout: float = WAIT_SECONDS) -> str:
        """The first stderr line (from now on) that contains ``text``; fails the test if none comes."""
        assert self.proc.stderr is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self.proc.stderr.readline()
                    if not raw:
                        pytest.fail(f"the process exited before printing {text!r}:\n{''.join(self.lines)}")
                    line = raw.decode()
                    self.lines.append(line)
                    if text in line:
                        return line
        except TimeoutError:
            pytest.fail(f"never saw {text!r} in:\n{''.join(self.lines)}")

    async def stop(self) -> str:
        """SIGTERM, wait for the exit, and return all of stderr."""
        if self.proc.returncode is None:
            self.proc.terminate()
        assert self.proc.stderr is not None
        async with asyncio.timeout(WAIT_SECONDS):
            rest = await self.proc.stderr.read()
            await self.proc.wait()
        self.lines.append(rest.decode())
        return "".join(self.lines)
