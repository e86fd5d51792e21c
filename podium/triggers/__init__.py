"""Triggers: the ways a run starts or is signalled from outside a flow.

* ``podium.triggers.schedule``: cron schedules kept in the store, fired by every worker (exactly once).
* ``podium.triggers.webhook``: signed HTTP deliveries (``podium serve``, needs ``podium[server]``).
* ``podium.triggers.nats``: NATS JetStream messages (needs ``podium[nats]``).

Every trigger goes through the public ``Client``, and turns its source's delivery identity (an occurrence's
time, a webhook delivery id, a stream sequence) into the run's idempotency key or the signal's deduplication
key, so a source that delivers twice still starts one run. This package imports nothing at import time:
``podium.client`` uses ``podium.triggers.cron``, and the modules here use ``podium.client``.
"""
