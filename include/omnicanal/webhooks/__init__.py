"""The webhook receiver: where platforms that push events (WhatsApp) deliver them.

Generic infrastructure, not a channel: it serves every registry channel whose
``source.delivery`` is ``"webhook"``, with that channel's ``app_secret`` and
``verify_token`` settings, and the channel's tap reads what it stored.

- :mod:`.payload`: Meta's signature and how a delivery splits into events;
- :mod:`.store`: the durable, deduplicating event store (SQLite WAL, group commit);
- :mod:`.app`: the HTTP contract (handshake, signed POSTs, read API, health);
- :mod:`.server`: ``omnicanal webhooks serve`` and :class:`WebhooksProcess`, the
  receiver as a child process for tests, the bench and the demo.

Each POST is acknowledged only after its events are fsync'd; a redelivery of an event
already stored (same channel and event id) is a no-op; a signed body that is no Meta
payload is quarantined whole with its reason.
"""

from __future__ import annotations
