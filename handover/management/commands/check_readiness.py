"""``manage.py check_readiness``: compare the readiness stored on each handover with its items; ``--fix`` repairs."""

from django.core.management.base import BaseCommand, CommandError

from handover.models import Handover
from handover.readiness import drift
from handover.services import readiness_repair


class Command(BaseCommand):
    help = (
        "Recompute every handover's readiness counters from its checklist items and report any drift (handover, "
        "project, counter, stored and actual values); exit status 1 when some drifted. --fix repairs them in one "
        "set-based statement and records it in the configuration audit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Repair the drifted counters (audited).")
        parser.add_argument(
            "--handover",
            dest="handovers",
            metavar="ID",
            nargs="+",
            default=None,
            help="Only these handovers (ids); default: every handover.",
        )

    def handle(self, *args, fix: bool = False, handovers: list[str] | None = None, **options):
        ids = _handover_ids(handovers)
        found = readiness_repair(via="manage.py check_readiness --fix", handover_ids=ids) if fix else drift(ids)
        for d in found:
            for name, (stored, actual) in d.fields.items():
                self.stdout.write(f"handover {d.handover_id} {d.project_code}: {name} stored {stored}, actual {actual}")
        checked = "every handover" if ids is None else f"{len(ids)} handover(s)"
        if not found:
            self.stdout.write(f"No drift: the stored readiness of {checked} matches the items.")
        elif fix:
            self.stdout.write(f"Repaired the stored readiness of {len(found)} handover(s) of {checked}.")
        else:
            self.stderr.write(f"{len(found)} handover(s) of {checked} drifted; run with --fix to repair them.")
            raise SystemExit(1)


def _handover_ids(values: list[str] | None) -> list[int] | None:
    if values is None:
        return None
    bad = [v for v in values if not v.isdigit() or int(v) < 1]
    if bad:
        raise CommandError(f"--handover takes handover ids (positive whole numbers); not: {', '.join(bad)}.")
    ids = sorted({int(v) for v in values})
    missing = sorted(set(ids) - set(Handover.objects.filter(pk__in=ids).values_list("pk", flat=True)))
    if missing:
        raise CommandError(f"--handover: no handover with id {', '.join(map(str, missing))}.")
    return ids
