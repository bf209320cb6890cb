"""The RabbitMQ bus (aio-pika), for several hub processes on a RabbitMQ cluster.

Topology (all names prefixed with `settings.bus_namespace`, "ns"), declared idempotently:

- `{ns}.events`: durable topic exchange; the routing key is the CloudEvent type.
- `{ns}.{queue}` per Route: durable quorum queue, bound by the route's patterns, with
  `x-delivery-limit` = settings.delivery_limit, `x-dead-letter-exchange` = `{ns}.dlx`,
  `x-dead-letter-strategy` = at-least-once (which needs `x-overflow` = reject-publish).
- `{ns}.dlx`: durable fanout exchange into `{ns}.dead-letters`, one durable quorum queue.

Messages are CloudEvents 1.0 in AMQP *structured* content mode: the body is the whole CloudEvent as
JSON (content type `application/cloudevents+json`), so a consumer on any stack reads one document;
the AMQP properties repeat what brokers and tools look at: message_id = event id, correlation_id,
type, timestamp, delivery_mode persistent.

Publishing uses publisher confirms and `mandatory`: a message no queue is bound for comes back as
basic.return and raises `Unroutable`; a lost connection raises `BusUnavailable` (the outbox relay
keeps the event and tries again).

Consuming: one channel per queue with prefetch = settings.prefetch; the deliveries go through one
worker task per queue, so the handler sees them in queue order, one at a time; a message is acked
only after the handler returned.

Retries: a handler failure holds the message (unacked) for `retry_backoff_seconds * 2**(n-1)` and
then nacks it with requeue, while the next messages flow on. The attempt count is the broker's own
`x-delivery-count` of the quorum queue (+1), so it is honest across hub processes and crashes and
needs no extra queues or re-publishing (which would reset or duplicate the count). The price: a
message waiting for its retry keeps one prefetch slot.

Dead letters keep their reason: when the hub gives up on a message (unreadable body,
PermanentError/MalformedEvent, or the attempt that reaches delivery_limit) it publishes a copy,
confirmed, to `{ns}.dlx` with headers x-hub-reason, x-hub-queue, x-hub-attempts, x-hub-dead-at, and
only then acks the original. The broker's own dead-lettering (x-delivery-limit, reported in
`x-death`) is the safety net for consumers that crash before settling: the broker gives up one
delivery after the hub would have.

Reconnects: `connect_robust` reconnects the connection and reopens our channels, but our
exchanges, queues and consumers are declared with robust=False: the bus restores them itself in a
reconnect callback (topology first, then a fresh channel and basic.consume per tracked consumer),
so there is exactly one owner of the restore and no consumer is lost or doubled. Deliveries from
the dead channel are dropped (the broker redelivers them).

The package, split by job (RabbitBus owns the connection and delegates):

- `bus`: RabbitBus, the robust connection, the scratch channels, the restore after a reconnect.
- `topology`: names, queue arguments, declaring the base topology and the routes.
- `publisher`: the message for an event, confirmed + mandatory publishing, the error mapping.
- `consumer`: consumers (prefetch, one worker per queue, delayed nacks), broadcast listeners, drain.
- `dead_letters`: dead-lettering with the reason, listing, replay, stats.
- `amqp`: what they share (network errors, settling, message ids).
"""

from hub.messaging.bus.rabbitmq.bus import RabbitBus
from hub.messaging.bus.rabbitmq.dead_letters import H_ATTEMPTS, H_DEAD_AT, H_QUEUE, H_REASON, MAX_BROWSE
from hub.messaging.bus.rabbitmq.publisher import CONTENT_TYPE
from hub.messaging.bus.rabbitmq.topology import DEAD_LETTER_QUEUE

__all__ = [
    "CONTENT_TYPE",
    "DEAD_LETTER_QUEUE",
    "H_ATTEMPTS",
    "H_DEAD_AT",
    "H_QUEUE",
    "H_REASON",
    "MAX_BROWSE",
    "RabbitBus",
]
