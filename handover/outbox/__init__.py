"""The outbox: rows that must be sent are written with the change, published after commit, claimed once, retried
with backoff and swept. Shared by the notification and webhook channels."""
