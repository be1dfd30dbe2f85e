"""Notifications to people: the in-app inbox and the email channel, sent through the outbox."""
