from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import OuterRef, Prefetch, Subquery
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from config.api import LIST_ERRORS, READ_ERRORS, WRITE_ERRORS, ApiViewMixin, error_responses

from .. import services
from ..models import Kpi, KpiReading, OperationsTeam, Service
from .serializers import (
    KpiReadingSerializer,
    KpiReadingWriteSerializer,
    KpiSerializer,
    KpiWriteSerializer,
    ServiceCreateSerializer,
    ServiceSerializer,
    ServiceUpdateSerializer,
    TeamSerializer,
    TeamWriteSerializer,
)

User = get_user_model()


@extend_schema_view(
    list=extend_schema(responses={200: TeamSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: TeamSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=TeamWriteSerializer, responses={201: TeamSerializer, **error_responses(400, 401, 403)}
    ),
    partial_update=extend_schema(
        request=TeamWriteSerializer, responses={200: TeamSerializer, **error_responses(*WRITE_ERRORS)}
    ),
)
class TeamViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Operations teams: everyone signed in reads; administrators create; the lead or an administrator edits."""

    serializer_class = TeamSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    queryset = OperationsTeam.objects.select_related("lead").prefetch_related(
        Prefetch("members", queryset=User.objects.order_by("username"))
    )
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["lead"]

    def create(self, request, *args, **kwargs):
        data = _validated(TeamWriteSerializer, request.data)
        team = services.team_create(by=request.user, **data)
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data, status=status.HTTP_201_CREATED)

    @transaction.atomic
    def partial_update(self, request, *args, **kwargs):
        team = self.get_object()
        data = _validated(TeamWriteSerializer, request.data, partial=True)
        members = data.pop("members", None)
        team = services.team_update(team=team, by=request.user, **data)
        if members is not None:
            services.team_set_members(team=team, by=request.user, members=members)
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data)


def _validated(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _kpis_with_latest():
    latest = KpiReading.objects.filter(kpi=OuterRef("pk")).order_by("-measured_at", "-id").values("value")[:1]
    return Kpi.objects.annotate(latest_value=Subquery(latest))


@extend_schema_view(
    list=extend_schema(responses={200: ServiceSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: ServiceSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=ServiceCreateSerializer, responses={201: ServiceSerializer, **error_responses(400, 401, 403)}
    ),
    partial_update=extend_schema(
        request=ServiceUpdateSerializer, responses={200: ServiceSerializer, **error_responses(*WRITE_ERRORS)}
    ),
)
class ServiceViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Services run by operations teams; the team's lead (or an administrator) adds and edits them."""

    serializer_class = ServiceSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    queryset = Service.objects.all()
    filterset_fields = ["team", "is_active"]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]

    def create(self, request, *args, **kwargs):
        data = _validated(ServiceCreateSerializer, request.data)
        service = services.service_create(by=request.user, **data)
        return Response(ServiceSerializer(service).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        data = _validated(ServiceUpdateSerializer, request.data, partial=True)
        service = services.service_update(service=self.get_object(), by=request.user, **data)
        return Response(ServiceSerializer(service).data)

    @extend_schema(methods=["GET"], responses={200: KpiSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=KpiWriteSerializer,
        responses={201: KpiSerializer, **error_responses(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def kpis(self, request, pk=None):
        """The service's KPIs by name; its team's lead (or an administrator) defines new ones."""
        service = self.get_object()
        if request.method == "POST":
            data = _validated(KpiWriteSerializer, request.data)
            kpi = services.kpi_create(service=service, by=request.user, **data)
            return Response(KpiSerializer(_kpis_with_latest().get(pk=kpi.pk)).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(_kpis_with_latest().filter(service=service).order_by("name", "id"))
        return self.get_paginated_response(KpiSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(responses={200: KpiSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: KpiSerializer, **error_responses(*READ_ERRORS)}),
    partial_update=extend_schema(
        request=KpiWriteSerializer, responses={200: KpiSerializer, **error_responses(*WRITE_ERRORS)}
    ),
)
class KpiViewSet(
    ApiViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """KPIs of services, with their latest reading; readings are posted to ``kpis/{id}/readings/``."""

    serializer_class = KpiSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_fields = ["service", "service__team", "is_adoption", "direction"]
    search_fields = ["name"]
    ordering_fields = ["name", "review_date", "created_at"]

    def get_queryset(self):
        return _kpis_with_latest()

    def partial_update(self, request, *args, **kwargs):
        data = _validated(KpiWriteSerializer, request.data, partial=True)
        kpi = services.kpi_update(kpi=self.get_object(), by=request.user, **data)
        return Response(KpiSerializer(_kpis_with_latest().get(pk=kpi.pk)).data)

    @extend_schema(methods=["GET"], responses={200: KpiReadingSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=KpiReadingWriteSerializer,
        responses={201: KpiReadingSerializer, **error_responses(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def readings(self, request, pk=None):
        """Readings of the KPI, newest first; members of the service's team (or their tools) post new ones."""
        kpi = get_object_or_404(Kpi.objects.select_related("service__team"), pk=pk)
        if request.method == "POST":
            data = _validated(KpiReadingWriteSerializer, request.data)
            reading = services.kpi_reading_add(kpi=kpi, by=request.user, **data)
            return Response(KpiReadingSerializer(reading).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(kpi.readings.select_related("recorded_by").order_by("-measured_at", "-id"))
        return self.get_paginated_response(KpiReadingSerializer(page, many=True).data)
