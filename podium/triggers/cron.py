"""Cron arithmetic and the missed-run policies of schedules.

A leaf module (it imports nothing of Podium's but errors and the store's record type), so the ``Client``
can validate schedules with it and the ``Scheduler`` can plan them without an import cycle.

Cron expressions have 5 fields (minute hour day month weekday), or 6 with seconds as the *last* field
(``croniter``'s convention): ``"*/5 * * * *"``, ``"0 9 * * mon-fri"``, ``"* * * * * */10"``. They are read in
the schedule's time zone (``tz``, an IANA name such as ``"Europe/Paris"``; ``"UTC"`` by default).
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..storage.base import ScheduleRecord

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

# croniter and zoneinfo are imported when first needed: ``import podium`` does not pay for them.

MISSED_POLICIES = ("skip", "once", "catchup")
"""What a schedule does about occurrences that fell due while no worker was running:

* ``skip`` (default): none of them run; the schedule continues with its next future occurrence.
* ``once``: one run, for the latest missed occurrence.
* ``catchup``: one run per missed occurrence, the latest ``CATCHUP_LIMIT`` of them.
"""

CATCHUP_LIMIT = 100
"""At most this many missed occurrences of one schedule are run by ``catchup`` (the latest ones)."""

ON_TIME_SECONDS = 60.0
"""An occurrence fired at most this late counts as on time, not missed: ``skip`` still runs it. (A worker
that was busy or restarting for a few seconds does not lose an occurrence.)"""

NEVER = math.inf
"""``next_at`` of a schedule whose cron has no future occurrence."""

_NAME = re.compile(r"^[\w.\-/]+$")


def normalize(cron: str) -> str:
    """The cron expression with single spaces between fields."""
    return " ".join(cron.split())


def check(name: str, cron: str, tz: str, missed: str) -> None:
    """Raise ``UsageError`` with a clear message if a schedule's definition is not usable."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"invalid schedule name {name!r}: use letters, digits and . _ - / (pass name=... to choose one)"
        )
    if missed not in MISSED_POLICIES:
        raise UsageError(f"unknown missed-run policy {missed!r}; use one of {', '.join(MISSED_POLICIES)}")
    zone(tz)
    if not isinstance(cron, str) or not cron.strip():
        raise UsageError("a schedule needs a cron expression, e.g. '*/5 * * * *'")
    from croniter import CroniterError, croniter

    try:
        croniter(normalize(cron))
    except CroniterError as exc:
        raise UsageError(f"invalid cron expression {cron!r}: {exc}") from None
    if next_after(cron, tz, datetime.now(UTC).timestamp()) == NEVER:
        raise UsageError(f"cron expression {cron!r} never falls due")


def zone(tz: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ``UsageError`` if there is none."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise UsageError(
            f"unknown time zone {tz!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


@functools.lru_cache(maxsize=4096)
def _iterator(cron: str, tz: str) -> Any:
    from croniter import croniter

    # Parsing a cron expression costs far more than stepping it; iterators are reused (each use sets its
    # start time first, and nothing awaits between that and reading the result).
    return croniter(normalize(cron), datetime.now(zone(tz)))


@functools.lru_cache(maxsize=8192)
def next_after(cron: str, tz: str, t: float) -> float:
    """The first occurrence strictly after ``t`` (seconds since the epoch); ``NEVER`` if there is none.

    Memoized: schedules that share a cron expression fall due together and step to the same next time.
    """
    from croniter import CroniterBadDateError

    it = _iterator(cron, tz)
    it.set_current(t, force=True)
    try:
        return float(it.get_next(float))
    except CroniterBadDateError:
        return NEVER


def _latest(cron: str, tz: str, low: float, high: float, count: int) -> list[float]:
    """Up to ``count`` latest occurrences in ``[low, high]``, oldest first."""
    from croniter import CroniterBadDateError

    it = _iterator(cron, tz)
    it.set_current(high + 0.5, force=True)  # get_prev is strictly before its start: include ``high``
    out: list[float] = []
    while len(out) < count:
        try:
            t = float(it.get_prev(float))
        except CroniterBadDateError:
            break
        if t < low:
            break
        if t <= high:
            out.append(t)
    out.reverse()
    return out


def plan(schedule: ScheduleRecord, now: float) -> tuple[list[float], float]:
    """The occurrences of a due schedule to fire at ``now`` under its missed-run policy, and its new
    ``next_at`` (the first occurrence after ``now``). ``schedule.next_at`` is its first unclaimed occurrence.

    Walks forward from ``next_at`` (one step in the usual case of a worker that woke on time); after a long
    outage it counts back from ``now`` instead, so a year-long gap costs no more than ``CATCHUP_LIMIT`` steps.
    """
    cron, tz = schedule.cron, schedule.tz
    due: list[float] = []
    t = schedule.next_at
    while t <= now and len(due) <= CATCHUP_LIMIT:
        due.append(t)
        t = next_after(cron, tz, t)
    if t <= now:  # more missed occurrences than we keep: the latest ones, counted back from now
        due = _latest(cron, tz, schedule.next_at, now, CATCHUP_LIMIT)
        t = next_after(cron, tz, now)
    if schedule.missed == "skip":
        due = [d for d in due if d >= now - ON_TIME_SECONDS]
    elif schedule.missed == "once":
        due = due[-1:]
    else:
        due = due[-CATCHUP_LIMIT:]
    return due, t


def run_key(name: str, at: float) -> str:
    """The idempotency key of the run a schedule starts for its occurrence at ``at``:
    ``schedule:NAME:2027-01-15T08:05:00Z``. Whoever starts that run again gets the same run."""
    when = datetime.fromtimestamp(at, UTC)
    return f"schedule:{name}:{when.strftime('%Y-%m-%dT%H:%M:%S')}Z"
