"""``manage.py load_templates``: install the default checklist templates, idempotently."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from config.errors import DomainError
from handover import checklists
from handover.choices import Risk
from handover.models import ChecklistTemplate


class Command(BaseCommand):
    help = "Install the default checklist templates; a changed definition becomes a new template version."

    def handle(self, *args, **options) -> None:
        try:
            results = checklists.install_default_templates()
        except DomainError as error:
            raise CommandError(f"Nothing installed: {error}") from error
        for template, changed in results:
            self.stdout.write(f"{template.name}: {_outcome(template, changed)} ({_risk_counts(template)})")


def _outcome(template: ChecklistTemplate, changed: bool) -> str:
    if not changed:
        # An administrator may have retired the template; say so rather than let "unchanged" suggest it is usable.
        return f"unchanged at v{template.version}" + ("" if template.is_active else ", inactive")
    return "created" if template.version == 1 else f"updated to v{template.version}"


def _risk_counts(template: ChecklistTemplate) -> str:
    counts = dict(template.items.values_list("risk").annotate(n=Count("id")).order_by())
    return ", ".join(f"{risk} {counts.get(risk, 0)}" for risk in Risk.values)
