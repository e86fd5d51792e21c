"""NATS JetStream events that start or signal runs (needs ``pip install podium[nats]``).

```toml
[nats]
servers = ["nats://127.0.0.1:4222"]   # the default

[events.order_created]
subject = "orders.created"
stream = "ORDERS"                      # created if missing (the subject is added to it if needed)
flow = "shop.py:fulfil"                # the message (JSON) is the run's input
# action = "signal", signal = "paid", run_field = "run_id" as for webhooks
```
``podium worker`` consumes every configured event; ``start_events`` does the same from code.

Each event has one durable JetStream consumer named after it (``podium-NAME``), shared through a deliver
group by every worker that consumes the event: each message goes to one of them. JetStream delivers at least
once; the run's idempotency key (or the signal's deduplication key) ``nats:STREAM:ID``, where ``ID`` is the
message's ``Nats-Msg-Id`` header or else its stream sequence, makes that exactly once: a redelivered
message finds the run it started. A message is acknowledged only after its run exists. One that can never
succeed (not JSON, an input the flow refuses, a signal for an unknown run) is logged and terminated, not
redelivered forever; a store failure asks for redelivery a second later.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..client import Client
from ..errors import ConfigError, UsageError
from .action import Action, FlowLoader, apply, parse_action

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext

log = logging.getLogger("podium.nats")

DEFAULT_SERVERS = ("nats://127.0.0.1:4222",)
HINT = "pip install podium[nats]"


@dataclass(frozen=True)
class EventSource:
    """One configured ``[events.NAME]``."""

    name: str
    subject: str
    stream: str
    action: Action

    @property
    def durable(self) -> str:
        """The durable consumer's (and deliver group's) name."""
        return "podium-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)


def load_events(config: Mapping[str, Any], *, load: FlowLoader) -> dict[str, EventSource]:
    """The ``[events.NAME]`` tables of ``podium.toml``; ``ConfigError`` if one is wrong, or if there are
    events and nats-py is not installed."""
    tables = config.get("events", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("podium.toml: [events] must be a table of [events.NAME] tables")
    if tables:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ConfigError(f"NATS events ([events] in podium.toml) need nats-py: {HINT}") from None
    out: dict[str, EventSource] = {}
    for name, section in tables.items():
        where = f"podium.toml [events.{name}]"
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where} must be a table")
        subject, stream = section.get("subject"), section.get("stream")
        if not isinstance(subject, str) or not subject or " " in subject:
            raise ConfigError(f'{where}: needs subject = "SUBJECT" (e.g. "orders.created")')
        if not isinstance(stream, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", stream):
            raise ConfigError(f'{where}: needs stream = "NAME" (letters, digits, - and _)')
        out[name] = EventSource(name, subject, stream, parse_action(section, where, load))
    return out


def servers_from(config: Mapping[str, Any]) -> list[str]:
    """``[nats] servers`` (a list, or one URL), by default ``nats://127.0.0.1:4222``."""
    section = config.get("nats", {})
    value = section.get("servers", list(DEFAULT_SERVERS)) if isinstance(section, Mapping) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError('podium.toml [nats]: servers must be a URL or a list of URLs ("nats://host:4222")')
    return value


def message_key(stream: str, msg: Msg) -> str:
    """``nats:STREAM:ID``: the message's ``Nats-Msg-Id`` header, else its stream sequence."""
    msg_id = (msg.headers or {}).get("Nats-Msg-Id")
    return f"nats:{stream}:{msg_id or msg.metadata.sequence.stream}"


class Malformed(UsageError):
    """A message whose body is not JSON."""


class EventConsumer:
    """Starts or signals runs for the messages of one event."""

    def __init__(self, client: Client, source: EventSource) -> None:
        self.client = client
        self.source = source
        self.started = 0
        """Messages that started a run (or delivered a signal)."""
        self.repeated = 0
        """Messages whose run (or signal) existed already: redeliveries, or a Msg-Id seen before."""
        self.terminated = 0
        """Messages dropped because they can never succeed."""

    async def process(self, msg: Msg) -> tuple[str, bool]:
        """Start or signal the run for ``msg`` without acknowledging it; ``(run_id, created)``."""
        try:
            data = json.loads(msg.data) if msg.data.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Malformed(f"the message is not JSON: {exc}") from None
        return await apply(self.client, self.source.action, data, message_key(self.source.stream, msg))

    async def handle(self, msg: Msg) -> None:
        """``process`` then acknowledge; terminate messages that can never succeed; redeliver on failure."""
        try:
            _, created = await self.process(msg)
        except UsageError as exc:
            seq = msg.metadata.sequence.stream
            log.warning("event %s: message %s on %s dropped: %s", self.source.name, seq, msg.subject, exc)
            self.terminated += 1
            await msg.term()
            return
        except Exception as exc:  # the store failed: let JetStream deliver it again
            log.error("event %s: will retry a message: %r", self.source.name, exc)
            await msg.nak(delay=1.0)
            return
        await msg.ack()
        if created:
            self.started += 1
        else:
            self.repeated += 1


class EventConsumers:
    """The running consumers of ``start_events``; ``await consumers.stop()`` ends them."""

    def __init__(self, nc: NATS, consumers: list[EventConsumer], subscriptions: list[Subscription]) -> None:
        self.nc = nc
        self.consumers = consumers
        self._subscriptions = subscriptions

    async def stop(self) -> None:
        """Stop taking messages, let the ones in hand finish, and close the connection."""
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be gone already
                log.debug("unsubscribe failed: %r", exc)
        if not self.nc.is_closed:
            await self.nc.drain()


async def ensure_stream(js: JetStreamContext, stream: str, subject: str) -> None:
    """Create ``stream`` capturing ``subject`` if it does not exist; add ``subject`` to it if it lacks it."""
    from nats.js.api import StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    for _ in range(3):  # another worker may be creating it at the same moment
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            try:
                await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
                return
            except BadRequestError:
                continue
        subjects = list(info.config.subjects or [])
        if subject not in subjects:
            subjects.append(subject)
            await js.update_stream(StreamConfig(name=stream, subjects=subjects))
        return
    raise ConfigError(f"cannot create NATS stream {stream!r} for subject {subject!r}")


async def start_events(
    client: Client,
    events: Mapping[str, EventSource],
    *,
    servers: Sequence[str] = DEFAULT_SERVERS,
    ack_wait: float = 30.0,
) -> EventConsumers:
    """Connect to NATS and consume ``events`` with ``client`` until ``stop()``.

    ``client`` should run (or share) a worker, so that a started run begins at once in this process
    (``podium worker`` passes ``Client.for_worker(worker)``). ``ack_wait``: seconds before JetStream
    delivers an unacknowledged message again.
    """
    try:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig
    except ImportError as exc:
        raise ImportError(f"NATS events need nats-py ({exc}): {HINT}") from exc
    try:
        nc = await nats.connect(list(servers), connect_timeout=5, max_reconnect_attempts=-1, name="podium")
    except Exception as exc:
        raise ConfigError(f"cannot connect to NATS at {', '.join(servers)}: {exc!r}") from None
    consumers: list[EventConsumer] = []
    subscriptions: list[Subscription] = []
    try:
        js = nc.jetstream()
        for source in events.values():
            await ensure_stream(js, source.stream, source.subject)
            consumer = EventConsumer(client, source)
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_ack_pending=1000)
            sub = await js.subscribe(
                source.subject,
                queue=source.durable,
                durable=source.durable,
                stream=source.stream,
                cb=consumer.handle,
                manual_ack=True,
                config=config,
            )
            consumers.append(consumer)
            subscriptions.append(sub)
    except BaseException:
        await nc.close()
        raise
    return EventConsumers(nc, consumers, subscriptions)
