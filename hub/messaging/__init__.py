"""Moving events between the hub and the systems: outbox and relay, idempotent consumer, redelivery
policy, batch-flow scheduler, change announcements and reactions, and the bus engines (bus/)."""
