"""Workflow control-flow patterns in Podium: one small flow per pattern.

docs/patterns.md explains each one and shows this code verbatim; tests/test_patterns.py runs every flow and
checks its result and journal. ``python examples/patterns.py`` runs the ones that need nobody to signal them.

The steps record what they did in ``LOG``. A test can hold a step back (``HOLD[name] = asyncio.Event()``)
until it sets the event: that is how the tests decide which branch of a race finishes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import podium

LOG: list[str] = []  # what the steps did, in order
HOLD: dict[str, asyncio.Event] = {}  # a test holds the step called `name` back until it sets HOLD[name]


async def _do(name: str) -> None:
    LOG.append(f"start:{name}")
    try:
        if name in HOLD:
            await HOLD[name].wait()
    except asyncio.CancelledError:
        LOG.append(f"cancelled:{name}")
        raise
    LOG.append(f"done:{name}")


@podium.step
async def work(name: str) -> str:
    """Does the job called `name` and returns its name."""
    await _do(name)
    return name


# -- sequence -------------------------------------------------------------------------------------------
@podium.flow(name="patterns.sequence")
async def sequence(ctx: podium.Context, order: str) -> list[str]:
    reserved = await work(f"reserve {order}")
    charged = await work(f"charge {order}")
    return [reserved, charged, await work(f"ship {order}")]


# -- parallel split and synchronization -----------------------------------------------------------------
@podium.flow(name="patterns.parallel")
async def parallel(ctx: podium.Context, order: str) -> list[str]:
    # all three run at once; the results come back in argument order, whoever finished first
    return await ctx.gather(work(f"pack {order}"), work(f"invoice {order}"), work(f"notify {order}"))


# -- exclusive choice -----------------------------------------------------------------------------------
@podium.flow(name="patterns.exclusive_choice")
async def exclusive_choice(ctx: podium.Context, amount: float) -> str:
    if amount > 1000:
        return await work("manual review")
    return await work("auto approve")


# -- multi-choice with synchronizing merge --------------------------------------------------------------
@podium.flow(name="patterns.multi_choice")
async def multi_choice(ctx: podium.Context, prefs: dict[str, bool]) -> list[str]:
    chosen = [channel for channel in ("email", "sms", "push") if prefs.get(channel)]
    sent = await ctx.gather(*(work(f"send {channel}") for channel in chosen))
    return [*sent, await work("log")]  # once, after every chosen branch (and only those) finished


# -- discriminator: the first of N ----------------------------------------------------------------------
@podium.flow(name="patterns.discriminator")
async def discriminator(ctx: podium.Context) -> str:
    return await ctx.first(work("mirror a"), work("mirror b"), work("mirror c"))


# -- N-of-M partial join --------------------------------------------------------------------------------
@podium.flow(name="patterns.partial_join")
async def partial_join(ctx: podium.Context, cancel_rest: bool) -> dict[str, list[Any]]:
    acks = await ctx.wait([work(f"replica {i}") for i in range(5)], n=3, cancel_rest=cancel_rest)
    await work("commit")  # goes on as soon as 3 of the 5 have answered
    return {"acks": list(acks), "from": acks.indices}


@podium.flow(name="patterns.partial_join_then_all")
async def partial_join_then_all(ctx: podium.Context) -> dict[str, list[str]]:
    tasks = [ctx.start(work(f"replica {i}")) for i in range(5)]
    acks = await ctx.wait(tasks, n=3, cancel_rest=False)
    await work("commit")  # after 3 answers, as above
    late = [await t for i, t in enumerate(tasks) if i not in acks.indices]  # then the other 2 as well
    return {"acks": list(acks), "late": late}


# -- dynamic multiple instances -------------------------------------------------------------------------
@podium.step
async def list_photos(album: str) -> list[str]:
    return [f"{album}/{i}.jpg" for i in range(4)]


@podium.flow(name="patterns.map")
async def thumbnails(ctx: podium.Context, album: str) -> list[str]:
    photos = await list_photos(album)  # how many: known only at run time
    return await ctx.map(lambda photo: work(f"thumb {photo}"), photos, concurrency=2)


SITE = {"/": ["/a", "/b"], "/a": ["/a/1", "/a/2"], "/b": [], "/a/1": [], "/a/2": []}


@podium.step
async def links(page: str) -> list[str]:
    return SITE[page]


@podium.flow(name="patterns.group")
async def crawl(ctx: podium.Context, root: str) -> list[str]:
    seen: list[str] = []

    async def visit(page: str) -> None:
        seen.append(page)
        for link in await links(page):
            g.start(visit(link))  # new work, added while other work runs

    async with ctx.group() as g:  # the block ends when all of it (however much) has finished
        g.start(visit(root))
    return sorted(seen)


# -- deferred choice ------------------------------------------------------------------------------------
@podium.flow(name="patterns.deferred_choice")
async def approve_or_escalate(ctx: podium.Context, request: str) -> str:
    got = await ctx.wait([ctx.wait_for_signal("approve"), ctx.sleep("48h")], n=1)
    if got.indices == [0]:
        return f"approved by {got[0]}"
    return await work(f"escalate {request}")


# -- milestone ------------------------------------------------------------------------------------------
@podium.flow(name="patterns.milestone")
async def editable(ctx: podium.Context, doc: str) -> list[Any]:
    await work(f"draft {doc}")
    edits: list[Any] = []
    async with ctx.milestone("editable"):  # signals sent with milestone="editable" are accepted in here only
        while True:
            got = await ctx.wait([ctx.wait_for_signal("edit"), ctx.wait_for_signal("submit")], n=1)
            if got.indices == [1]:
                break
            edits.append(got[0])
    await work(f"publish {doc}")
    return edits


async def send_edit(client: podium.Client, run_id: str, text: str) -> bool:
    """What an editor's UI calls: False once (or before) the document can be edited."""
    try:
        return await client.signal(run_id, "edit", text, milestone="editable")
    except podium.SignalRefusedError:
        return False


# -- cancel task ----------------------------------------------------------------------------------------
@podium.step
async def is_member(user: str) -> bool:
    await _do(f"look up {user}")
    return user != "guest"


@podium.flow(name="patterns.cancel_task")
async def recommend(ctx: podium.Context, user: str) -> str:
    recs = ctx.start(work(f"recommendations for {user}"))  # speculative: starts now, runs meanwhile
    if not await is_member(user):
        recs.cancel()  # journaled; a replay cancels it at the same point
        return "no recommendations"
    return await recs


# -- compensation (sagas) -------------------------------------------------------------------------------
def unbook(item: str) -> None:
    LOG.append(f"undo:{item}")


@podium.step(compensate=unbook)
async def book(item: str) -> str:
    await _do(item)
    return f"booked {item}"


@podium.step
async def pay(card: str) -> str:
    if card == "declined":
        raise podium.ApplicationError("card declined", retryable=False)
    return "paid"


@podium.flow(name="patterns.saga")
async def saga(ctx: podium.Context, card: str) -> str:
    await book("flight")
    await book("hotel")
    return await pay(card)  # if this fails, the hotel and then the flight are unbooked; the run fails


# -- cancel run -----------------------------------------------------------------------------------------
@podium.flow(name="patterns.cancel_run")
async def trip(ctx: podium.Context, city: str) -> str:
    hotel = await book(f"hotel in {city}")
    await ctx.approval("go ahead", payload={"hotel": hotel})  # Client.cancel while this waits unbooks it
    return await book(f"flight to {city}")


# -- cancel region --------------------------------------------------------------------------------------
@podium.step
async def quote(what: str) -> float:
    await _do(f"quote {what}")
    return 1200.0


@podium.flow(name="patterns.cancel_region")
async def book_within_budget(ctx: podium.Context, budget: float) -> str:
    async with ctx.scope() as booking:

        async def bookings() -> None:
            await book("hotel")
            await book("flight")

        async def price_watch() -> None:
            if await quote("trip") > budget:
                booking.cancel()  # stops everything in the scope; what it booked is unbooked

        await ctx.gather(bookings(), price_watch())
    return "over budget" if booking.cancelled else "booked"


# -- structured loop ------------------------------------------------------------------------------------
@podium.step
async def job_status(job: str, polls: int) -> str:
    return "done" if polls >= 3 else "running"  # this fake job is done at the third poll


@podium.flow(name="patterns.loop")
async def wait_for_job(ctx: podium.Context, job: str) -> int:
    polls = 1
    while await job_status(job, polls) != "done":
        await ctx.sleep("10ms")  # "1m" in real life: a durable timer either way
        polls += 1
    return polls


@podium.flow(name="patterns.continue_as_new")
async def monitor(ctx: podium.Context, n: int) -> int:
    await work(f"check {n}")
    await ctx.sleep("10ms")  # "1h" for a real monitor
    if n < 4:  # a real monitor has no last round
        ctx.continue_as_new(n + 1)  # the same run again, with a fresh journal
    return n


# -- recursion ------------------------------------------------------------------------------------------
@podium.flow(name="patterns.recursion")
async def count_pages(ctx: podium.Context, page: str) -> int:
    below = await ctx.gather(*(ctx.child(count_pages, link) for link in await links(page)))
    return 1 + sum(below)  # each subtree is counted by a child run of this same flow


# -- transient and persistent triggers ------------------------------------------------------------------
@podium.flow(name="patterns.triggers")
async def doorbell(ctx: podium.Context) -> list[Any]:
    await work("open the door")  # signals sent meanwhile find nobody waiting
    first = await ctx.wait_for_signal("ring")
    second = await ctx.wait_for_signal("ring")
    return [first, second]


# -- README: control flow in ten lines ------------------------------------------------------------------
@podium.flow(name="patterns.readme")
async def publish(ctx: podium.Context, topic: str) -> str:
    source = await ctx.first(work("search web"), work("search wiki"))  # first wins, the other is cancelled
    reviews = await ctx.wait([work(f"review {i}") for i in range(3)], n=2)  # any 2 of 3 reviewers
    async with ctx.scope() as slot:  # a region: cancel it, and what it booked is unbooked
        await book(f"front page: {topic}")
        got = await ctx.wait([ctx.wait_for_signal("retract"), ctx.sleep("1h")], n=1)
        if got.indices == [0]:
            slot.cancel()
    return f"{source}, {len(reviews)} reviews, " + ("retracted" if slot.cancelled else "published")


async def main() -> None:
    settings = podium.Settings(database_url="memory://")
    async with podium.Client(settings) as client:
        runs: list[tuple[podium.Flow[Any, Any], Any]] = [
            (sequence, "o-1"),
            (parallel, "o-1"),
            (exclusive_choice, 1500.0),
            (multi_choice, {"email": True, "push": True}),
            (discriminator, None),
            (partial_join, True),
            (thumbnails, "holiday"),
            (crawl, "/"),
            (recommend, "guest"),
            (book_within_budget, 1000.0),
            (wait_for_job, "j-1"),
            (monitor, 0),
            (count_pages, "/"),
        ]
        for fl, arg in runs:
            handle = await client.start(fl, arg)
            print(f"{fl.name:28} {await handle.result()!r}")
        handle = await client.start(saga, "declined")
        try:
            await handle.result()
        except podium.RunFailedError as exc:
            print(f"{saga.name:28} failed ({exc}); {LOG[-2:]}")


if __name__ == "__main__":
    asyncio.run(main())
