"""Outbound webhooks: events for other tools, subscriptions, signed deliveries sent through the outbox."""
