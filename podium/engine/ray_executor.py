"""Steps that run as Ray tasks (``@podium.step(executor="ray", num_cpus=..., num_gpus=...)``).

The worker hands such a step's function and arguments to Ray and awaits the task without blocking its
event loop; everything else about the step (journaling, retries, timeouts, idempotency keys, replay) is
the engine's, exactly as for a local step. Ray is imported on first use only (``pip install podium[ray]``).

* **Where**: ``[ray] address`` (or ``PODIUM_RAY_ADDRESS``) names a running cluster (``"auto"``,
  ``"ray://host:10001"``); without one, the worker starts a local Ray instance in its own process the
  first time a Ray step runs (``num_cpus`` etc. from ``[ray]``), and shuts it down when it stops. A Ray
  already initialised in the process (``ray.init`` by the application) is used as it is.
* **Failures**: an exception raised by the function is the step's error, as if it ran locally (its class
  name is the journaled ``type``). A Ray worker process that dies mid-task (killed, out of memory, its node
  lost) is a retryable ``RayWorkerDied`` error, any other failure of Ray a retryable ``RayError``: the
  step's retry policy retries them. Ray itself never
  retries (``max_retries=0``), so every attempt is the engine's and is journaled.
* **Cancellation**: a step timeout or a cancelled run cancels the Ray task (``force=True`` kills its
  worker process, so a stuck function does not keep its CPUs).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

from ..config import RaySettings
from ..errors import RunError
from ..workflow.step import RayOptions, StepInfo, _remote

log = logging.getLogger("podium.ray")

INSTALL_HINT = "steps with executor='ray' need Ray: pip install podium[ray]"


def load_ray() -> Any:
    """The ``ray`` module; a non-retryable ``RunError`` with the install hint when it is missing."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing calls home
    # no stack dump on the SIGTERM that stops `podium worker` (it stops cleanly); read when ray is imported
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise RunError(INSTALL_HINT, type="RayNotInstalled", retryable=False) from None


def run_step(fn: Callable[..., Any], is_async: bool, args: Any, kwargs: Any, info: StepInfo) -> Any:
    """The Ray task: call the step's function in a Ray worker process (async ones in a fresh loop), with
    ``podium.current_step()`` telling it which step it is."""
    token = _remote.set(info)
    try:
        if is_async:
            return asyncio.run(fn(*args, **kwargs))
        return fn(*args, **kwargs)
    finally:
        _remote.reset(token)


class RayExecutor:
    """Runs steps as Ray tasks for one worker. Created on the first Ray step (``Worker.ray``)."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.ray = load_ray()
        self._started = False  # True when this executor called ray.init (and so shuts Ray down)
        self._starting: asyncio.Task[None] | None = None
        self._remote: Any = None
        self._lock = threading.Lock()

    async def ensure(self) -> None:
        """Connect to (or start) Ray once. The start runs in a task of its own: a step whose attempt times
        out or is cancelled meanwhile stops waiting for it, without stopping it for the others."""
        task = self._starting
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._starting = asyncio.get_running_loop().create_task(asyncio.to_thread(self._init))
        await asyncio.shield(task)

    def _init(self) -> None:
        ray = self.ray
        with self._lock:
            if not ray.is_initialized():
                s = self.settings
                kwargs: dict[str, Any] = {
                    "include_dashboard": False,
                    "logging_level": logging.ERROR,
                    "log_to_driver": False,
                    "configure_logging": True,
                }
                if s.address is not None:
                    kwargs["address"] = s.address
                else:  # a new local instance (never one another process started); the sizes apply
                    kwargs["address"] = "local"
                    kwargs["_node_ip_address"] = "127.0.0.1"  # its ports listen on loopback only
                    for key in ("num_cpus", "num_gpus", "object_store_memory"):
                        value = getattr(s, key)
                        if value is not None:
                            kwargs[key] = value
                where = s.address or "a local instance"
                log.info("starting Ray (%s)", where)
                try:
                    ray.init(**kwargs)
                except Exception as exc:
                    raise RunError(
                        f"cannot start or reach Ray ({where}): {exc}", type="RayUnavailable", retryable=True
                    ) from None
                self._started = True
            self._remote = ray.remote(run_step)

    async def run(
        self,
        options: RayOptions,
        fn: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: StepInfo,
    ) -> Any:
        """One attempt of a step as a Ray task; its result, or the function's own exception."""
        await self.ensure()
        ray = self.ray
        task_options: dict[str, Any] = {
            "num_cpus": options.num_cpus,
            "num_gpus": options.num_gpus,
            "max_retries": 0,  # the step's retry policy decides, and journals every attempt
            "name": f"podium:{info.name}",
        }
        if options.memory is not None:
            task_options["memory"] = options.memory
        if options.resources:
            task_options["resources"] = dict(options.resources)
        try:
            ref = self._remote.options(**task_options).remote(fn, is_async, args, kwargs, info)
        except (TypeError, pickle.PicklingError) as exc:  # ray cannot pickle the function or an argument
            raise RunError(
                f"step {info.name!r} runs on Ray, so its function and arguments must be picklable: {exc}",
                type="UnpicklableStep",
                retryable=False,
            ) from None
        try:
            return await ref
        except asyncio.CancelledError:  # a step timeout or a cancelled run: stop the task too
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # it may have finished meanwhile
                log.debug("cancelling the Ray task of step %s: %r", info.name, exc)
            raise
        except ray.exceptions.RayTaskError as exc:  # the function raised: its own exception
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise RunError(str(exc), type="RayTaskError", retryable=True) from None
        except ray.exceptions.RayError as exc:
            errors = ray.exceptions
            died = (errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError)
            if isinstance(exc, died):  # the worker process running it was killed, or its node was lost
                message = f"step {info.name!r}: the Ray worker running it died ({type(exc).__name__})"
                detail = _first_line(exc)
                raise RunError(f"{message}: {detail}", type="RayWorkerDied", retryable=True) from None
            raise RunError(  # Ray failed otherwise (an object lost, its runtime environment, ...)
                f"step {info.name!r}: Ray failed: {type(exc).__name__}: {_first_line(exc)}",
                type="RayError",
                retryable=True,
            ) from None

    async def close(self) -> None:
        """Shut Ray down if this executor started it (waiting for a start still under way)."""
        if self._starting is not None and not self._starting.done():
            try:
                await self._starting
            except Exception:  # it failed: nothing to shut down
                pass
        if self._started:
            self._started = False
            await asyncio.to_thread(self.ray.shutdown)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
