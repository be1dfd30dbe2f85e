"""``manage.py detect_stalls``: one detection pass, for cron users and for debugging."""

from django.core.management.base import BaseCommand

from handover.choices import DetectionSource
from handover.models import StallFlag
from handover.stalls.services import detect_stalls


class Command(BaseCommand):
    help = "Run one stall-detection pass and print what it opened, escalated, reminded and resolved."

    def handle(self, *args, **options):
        result = detect_stalls(source=DetectionSource.COMMAND)
        self.stdout.write(
            f"opened {len(result.opened)}, escalated {len(result.escalated)}, reminded {len(result.reminded)}, "
            f"resolved {len(result.resolved)}"
        )
        for flag in result.opened:
            self.stdout.write(f"  opened    {flag.handover.project.code:<14} {flag.rule}")
        labels = [("escalated", result.escalated), ("reminded", result.reminded), ("resolved", result.resolved)]
        flags = StallFlag.objects.in_bulk([pk for _, ids in labels for pk in ids])
        for label, ids in labels:
            for pk in ids:
                flag = flags[pk]
                self.stdout.write(f"  {label:<9} {flag.handover.project.code:<14} {flag.rule}")
