"""Stalled handovers: the detector's rules, flags (one per episode), their notifications, escalation, acknowledge
and snooze (docs/domain.md, "Stalled handovers")."""
