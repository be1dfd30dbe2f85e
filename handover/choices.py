from django.db import models

from operations.choices import StallRule  # noqa: F401 (re-exported: the rules are the teams' thresholds)


class Risk(models.TextChoices):
    """The three things that go wrong when a transition is done badly (docs/domain.md "Why it exists")."""

    INEFFICIENCY = "inefficiency", "Operational inefficiency"
    FAILURE = "failure", "System failure"
    ADOPTION = "adoption", "Low adoption"


class Side(models.TextChoices):
    """Which side of the handover does the work of a checklist item."""

    PROJECT = "project", "Project"
    OPERATIONS = "operations", "Operations"


class TemplateKind(models.TextChoices):
    """The kinds of project that ship with a checklist template."""

    SOFTWARE_ROLLOUT = "software_rollout", "Software roll-out"
    SITE_LAUNCH = "site_launch", "Site or facility launch"
    OFFICE_RELOCATION = "office_relocation", "Office relocation"
    PROCESS_REDESIGN = "process_redesign", "Process redesign"
    CUSTOM = "custom", "Custom"


class HandoverStatus(models.TextChoices):
    """State of a handover.

    Legal moves (``HANDOVER_TRANSITIONS``), each made by one service in ``handover.services``:

    * preparing → submitted (manager submits: every mandatory item done, waived or not applicable)
    * submitted → accepted | accepted_with_conditions (operations owner: every mandatory item verified,
      approved-waived or not applicable) | returned (operations owner, with a reason)
    * returned → preparing (on the manager's next change)
    * accepted | accepted_with_conditions → hypercare (operations owner, with an end date and exit criteria)
    * hypercare → completed (operations owner)
    * preparing | submitted | returned → cancelled (manager or operations owner, with a reason)
    """

    PREPARING = "preparing", "Preparing"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted"
    ACCEPTED_WITH_CONDITIONS = "accepted_with_conditions", "Accepted with conditions"
    RETURNED = "returned", "Returned"
    HYPERCARE = "hypercare", "Hypercare"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


HANDOVER_TRANSITIONS: dict[str, frozenset[str]] = {
    HandoverStatus.PREPARING: frozenset({HandoverStatus.SUBMITTED, HandoverStatus.CANCELLED}),
    HandoverStatus.SUBMITTED: frozenset(
        {
            HandoverStatus.ACCEPTED,
            HandoverStatus.ACCEPTED_WITH_CONDITIONS,
            HandoverStatus.RETURNED,
            HandoverStatus.CANCELLED,
        }
    ),
    HandoverStatus.RETURNED: frozenset({HandoverStatus.PREPARING, HandoverStatus.CANCELLED}),
    HandoverStatus.ACCEPTED: frozenset({HandoverStatus.HYPERCARE}),
    HandoverStatus.ACCEPTED_WITH_CONDITIONS: frozenset({HandoverStatus.HYPERCARE}),
    HandoverStatus.HYPERCARE: frozenset({HandoverStatus.COMPLETED}),
    HandoverStatus.COMPLETED: frozenset(),
    HandoverStatus.CANCELLED: frozenset(),
}

# A project may have one handover that is not cancelled.
ACTIVE_STATUSES = frozenset(set(HandoverStatus) - {HandoverStatus.CANCELLED})
ACCEPTED_STATUSES = frozenset(
    {
        HandoverStatus.ACCEPTED,
        HandoverStatus.ACCEPTED_WITH_CONDITIONS,
        HandoverStatus.HYPERCARE,
        HandoverStatus.COMPLETED,
    }
)
# While the checklist can still change; after a decision to accept it is frozen.
OPEN_STATUSES = frozenset({HandoverStatus.PREPARING, HandoverStatus.SUBMITTED, HandoverStatus.RETURNED})


class ItemStatus(models.TextChoices):
    """State of a checklist item.

    Legal moves (``ITEM_TRANSITIONS``):

    * open → done (complete, with evidence) → verified (operations verifies)
    * done → open (operations sends it back, with a reason)
    * open | done → waived (with a justification; approved by an operations owner)
    * open | done → not_applicable (with a reason)
    * verified | waived | not_applicable | done → open (reopen)
    """

    OPEN = "open", "Open"
    DONE = "done", "Done"
    VERIFIED = "verified", "Verified"
    WAIVED = "waived", "Waived"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


ITEM_TRANSITIONS: dict[str, frozenset[str]] = {
    ItemStatus.OPEN: frozenset({ItemStatus.DONE, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE}),
    ItemStatus.DONE: frozenset({ItemStatus.VERIFIED, ItemStatus.OPEN, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE}),
    ItemStatus.VERIFIED: frozenset({ItemStatus.OPEN}),
    ItemStatus.WAIVED: frozenset({ItemStatus.OPEN}),
    ItemStatus.NOT_APPLICABLE: frozenset({ItemStatus.OPEN}),
}


class DecisionKind(models.TextChoices):
    """What operations decided on a submitted handover."""

    ACCEPTED = "accepted", "Accepted"
    ACCEPTED_WITH_CONDITIONS = "accepted_with_conditions", "Accepted with conditions"
    RETURNED = "returned", "Returned"


class ConditionStatus(models.TextChoices):
    """State of a condition attached to a conditional acceptance."""

    OPEN = "open", "Open"
    MET = "met", "Met"


class ActivityVerb(models.TextChoices):
    """What an activity entry records; every change to a handover or its items writes one."""

    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    STATUS_CHANGED = "status_changed", "Status changed"
    ITEM_ADDED = "item_added", "Item added"
    ITEM_UPDATED = "item_updated", "Item updated"
    ITEM_STATUS_CHANGED = "item_status_changed", "Item status changed"
    WAIVER_APPROVED = "waiver_approved", "Waiver approved"
    EVIDENCE_ADDED = "evidence_added", "Evidence added"
    COMMENTED = "commented", "Commented"
    CONDITION_MET = "condition_met", "Condition met"
    STALL_ACKNOWLEDGED = "stall_acknowledged", "Stall acknowledged"
    STALL_SNOOZED = "stall_snoozed", "Stall snoozed"


class Channel(models.TextChoices):
    """How a person is told about a stall flag."""

    IN_APP = "in_app", "In-app"
    EMAIL = "email", "Email"


class NotificationKind(models.TextChoices):
    """Why a notification was sent."""

    OPENED = "opened", "Stall opened"
    ESCALATED = "escalated", "Escalated"
    REMINDER = "reminder", "Reminder after snooze"


class DeliveryStatus(models.TextChoices):
    """Outbox state of a notification or webhook delivery.

    pending → sending (claimed by one task, compare-and-set) → sent | pending (retry later) | failed (gave up).
    A row stuck in sending (its worker died) counts as a failed attempt when the sweep frees it. A notification
    whose stall flag resolved before it went out is cancelled (pending → cancelled): it no longer has anything true
    to say; so is a webhook delivery whose subscription was switched off, or no longer takes confidential projects'
    events, before it went out.
    """

    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled (flag resolved first)"


class DetectionSource(models.TextChoices):
    """What ran a stall-detection pass: /healthz trusts only beat's passes as proof that the scheduler runs."""

    BEAT = "beat", "Beat (Celery task)"
    COMMAND = "command", "manage.py detect_stalls"


class AdminEventKind(models.TextChoices):
    """Changes to what the product runs on rather than to a handover: templates, API tokens, webhooks, and a
    person's own saved views."""

    TEMPLATE_CREATED = "template_created", "Template created"
    TEMPLATE_VERSIONED = "template_versioned", "Template changed (new version)"
    TEMPLATE_ACTIVATED = "template_activated", "Template activated"
    TEMPLATE_DEACTIVATED = "template_deactivated", "Template deactivated"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    WEBHOOK_CREATED = "webhook_created", "Webhook created"
    WEBHOOK_UPDATED = "webhook_updated", "Webhook changed"
    WEBHOOK_DELETED = "webhook_deleted", "Webhook deleted"
    SAVED_VIEW_CREATED = "saved_view_created", "Saved view created"
    SAVED_VIEW_DELETED = "saved_view_deleted", "Saved view deleted"
    READINESS_REPAIRED = "readiness_repaired", "Stored readiness repaired"


class SavedViewPage(models.TextChoices):
    """The pages whose filters a person can save as a named view (``handover.saved_views.PAGES``)."""

    PORTFOLIO = "portfolio", "Portfolio board"
    HANDOVERS = "handovers", "Handover list"
    PROJECTS = "projects", "Project list"


class EventType(models.TextChoices):
    """Events published to webhook subscribers (docs/domain.md "Events for other tools")."""

    HANDOVER_CREATED = "handover.created", "handover.created"
    HANDOVER_SUBMITTED = "handover.submitted", "handover.submitted"
    HANDOVER_ACCEPTED = "handover.accepted", "handover.accepted"
    HANDOVER_ACCEPTED_WITH_CONDITIONS = "handover.accepted_with_conditions", "handover.accepted_with_conditions"
    HANDOVER_RETURNED = "handover.returned", "handover.returned"
    HANDOVER_HYPERCARE_STARTED = "handover.hypercare_started", "handover.hypercare_started"
    HANDOVER_COMPLETED = "handover.completed", "handover.completed"
    HANDOVER_CANCELLED = "handover.cancelled", "handover.cancelled"
    ITEM_UPDATED = "item.updated", "item.updated"
    STALL_OPENED = "stall.opened", "stall.opened"
    STALL_ESCALATED = "stall.escalated", "stall.escalated"
    STALL_RESOLVED = "stall.resolved", "stall.resolved"
    PROJECT_STAGE_CHANGED = "project.stage_changed", "project.stage_changed"
