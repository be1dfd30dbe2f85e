"""The handover app's models, one module per subsystem (Django's "organizing models in a package"): the workflow,
stall detection, notifications, webhooks, the outbox's bookkeeping, API tokens and saved views. All belong to this
app, so their tables keep their ``handover_`` names. Import them from here."""

from .notifications import Notification
from .outbox import OutboxSweep
from .saved import SavedView
from .stalls import DetectionRun, StallFlag
from .tokens import ApiToken
from .webhooks import Event, WebhookDelivery, WebhookSubscription
from .workflow import (
    Activity,
    AdminEvent,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Evidence,
    Handover,
    TemplateItem,
)

__all__ = [
    "Activity",
    "AdminEvent",
    "ApiToken",
    "ChecklistItem",
    "ChecklistTemplate",
    "Comment",
    "Condition",
    "Decision",
    "DetectionRun",
    "Event",
    "Evidence",
    "Handover",
    "Notification",
    "OutboxSweep",
    "SavedView",
    "StallFlag",
    "TemplateItem",
    "WebhookDelivery",
    "WebhookSubscription",
]
