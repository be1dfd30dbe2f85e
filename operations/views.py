"""Web pages of operations teams: the list of teams and a team's page with its services and KPI charts.

The handover app adds the team's incoming handovers and the decision times per team (``config.web``), since
operations never imports handover.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from config.charts import Chart, Point, line_chart
from config.web import error_status, page_sections

from . import services as ops
from .choices import KpiDirection, StallRule
from .forms import ReadingForm
from .models import Kpi, KpiReading, OperationsTeam, Service
from .selectors import is_team_member

# How far back the KPI charts go.
READINGS_WINDOW = timedelta(days=180)


@login_required
def team_list(request):
    teams = list(
        OperationsTeam.objects.select_related("lead")
        .annotate(member_count=Count("members", distinct=True), service_count=Count("services", distinct=True))
        .order_by("name")
    )
    context = {"nav": "teams", "teams": teams, "sections": page_sections("teams", request, teams)}
    return render(request, "operations/team_list.html", context)


def _kpi_chart(kpi: Kpi, readings: list[KpiReading]) -> Chart:
    points = [Point(at=r.measured_at, value=float(r.value)) for r in readings]
    better = "higher" if kpi.direction == KpiDirection.HIGHER else "lower"
    return line_chart(
        points,
        title=f"{kpi.name} ({kpi.unit})" if kpi.unit else kpi.name,
        target=float(kpi.target),
        baseline=float(kpi.baseline) if kpi.baseline is not None else None,
        unit=kpi.unit,
        desc=(
            f"{len(points)} readings of {kpi.name} against a target of {kpi.target.normalize():f} {kpi.unit} "
            f"({better} is better)" + (f"; latest {points[-1].value:g} {kpi.unit}" if points else "; no readings yet")
        ),
    )


def _may_post_readings(team: OperationsTeam, user) -> bool:
    """``kpi_reading_add``'s role: a member (or the lead) of the service's team, or an administrator."""
    return user.is_staff or is_team_member(team, user)


@dataclass(frozen=True)
class KpiCard:
    """A KPI as the team page shows it: its chart over the window, its latest reading, the form to post one."""

    kpi: Kpi
    chart: Chart
    latest: KpiReading | None
    on_target: bool | None
    form: ReadingForm | None


@dataclass(frozen=True)
class ServiceKpis:
    """A service of the team with the cards of its KPIs, by name."""

    service: Service
    kpis: list[KpiCard]


def _team_page(request, team: OperationsTeam, *, bound: dict[int, ReadingForm] | None = None, status: int = 200):
    bound = bound or {}
    since = timezone.now() - READINGS_WINDOW
    may_post = _may_post_readings(team, request.user)
    kpis: dict[int, list[KpiCard]] = defaultdict(list)
    for kpi in (
        Kpi.objects.filter(service__team=team)
        .order_by("name")
        .prefetch_related(
            Prefetch(
                "readings",
                queryset=KpiReading.objects.filter(measured_at__gte=since).order_by("measured_at", "id"),
                to_attr="window_readings",
            )
        )
    ):
        latest = kpi.window_readings[-1] if kpi.window_readings else None
        kpis[kpi.service_id].append(
            KpiCard(
                kpi=kpi,
                chart=_kpi_chart(kpi, kpi.window_readings),
                latest=latest,
                on_target=kpi.meets_target(latest.value) if latest else None,
                form=(bound.get(kpi.pk) or ReadingForm(prefix=f"kpi{kpi.pk}")) if may_post else None,
            )
        )
    services = [ServiceKpis(service=service, kpis=kpis[service.pk]) for service in Service.objects.filter(team=team)]
    context = {
        "nav": "teams",
        "team": team,
        "members": list(team.members.order_by("first_name", "last_name", "username")),
        "services": services,
        "thresholds": [(rule.label, team.stall_threshold(rule)) for rule in StallRule],
        "escalation_days": team.escalation_delay_days,
        "may_post": may_post,
        "sections": page_sections("team", request, team),
    }
    return render(request, "operations/team_detail.html", context, status=status)


@login_required
def team_detail(request, pk: int):
    return _team_page(request, get_object_or_404(OperationsTeam.objects.select_related("lead"), pk=pk))


@login_required
@require_POST
def kpi_reading_add(request, pk: int):
    """A member of the service's team posts a reading."""
    kpi = get_object_or_404(Kpi.objects.select_related("service__team__lead"), pk=pk)
    if not _may_post_readings(kpi.service.team, request.user):
        raise PermissionDenied("Only a member of the service's team may post a reading.")
    form = ReadingForm(request.POST, prefix=f"kpi{kpi.pk}")
    if form.is_valid() and form.run(
        ops.kpi_reading_add,
        kpi=kpi,
        by=request.user,
        value=form.cleaned_data["value"],
        measured_at=form.cleaned_data["measured_at"],
        note=form.cleaned_data["note"],
    ):
        messages.success(request, f"Reading of {kpi.name} recorded.")
        return redirect(reverse("operations:team", args=[kpi.service.team_id]) + f"#kpi-{kpi.pk}")
    return _team_page(request, kpi.service.team, bound={kpi.pk: form}, status=error_status(form))
