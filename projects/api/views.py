import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import (
    ETAG,
    LIST_ERRORS,
    ApiViewMixin,
    FilterSet,
    StrictBooleanFilter,
    action_schema,
    error_responses,
    expected_version,
    read_schema,
    versioned_schema,
    with_etag,
)
from operations.models import OperationsTeam

from .. import services
from ..choices import Stage
from ..models import Project
from ..selectors import overdue_q
from .serializers import (
    ProjectEventSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    ProjectWriteSerializer,
    TransitionSerializer,
)

User = get_user_model()


@extend_schema_field(OpenApiTypes.BOOL)
class OverdueFilter(StrictBooleanFilter):
    pass


class ProjectFilter(FilterSet):
    stage = django_filters.MultipleChoiceFilter(choices=Stage.choices)
    team = django_filters.ModelChoiceFilter(
        field_name="receiving_team", queryset=OperationsTeam.objects.all(), label="The receiving operations team"
    )
    overdue = OverdueFilter(
        method="filter_overdue", label="Planned handover date passed with no handover accepted, and still running"
    )
    planned_handover_before = django_filters.DateFilter(field_name="planned_handover", lookup_expr="lte")
    planned_handover_after = django_filters.DateFilter(field_name="planned_handover", lookup_expr="gte")

    class Meta:
        model = Project
        fields = ["stage", "receiving_team", "manager", "confidential"]

    def filter_overdue(self, queryset, name, value):
        overdue = overdue_q()
        return queryset.filter(overdue) if value else queryset.exclude(overdue)


@extend_schema_view(
    list=extend_schema(responses={200: ProjectSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    create=extend_schema(
        request=ProjectWriteSerializer,
        responses={201: ProjectSerializer, **error_responses(400, 401, 403)},
        parameters=[ETAG],
    ),
)
class ProjectViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Projects and their lifecycle. Confidential projects exist only for their participants."""

    serializer_class = ProjectSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_class = ProjectFilter
    search_fields = ["code", "name", "sponsor", "description"]
    ordering_fields = ["code", "name", "stage", "planned_handover", "created_at", "updated_at"]
    ordering = ["code"]
    cursor_ordering = ("code",)  # ?paginate=cursor; code's unique index

    @staticmethod
    def _read(projects):
        return projects.select_related("manager", "receiving_team").prefetch_related(
            Prefetch("members", queryset=User.objects.order_by("username"))
        )

    def get_queryset(self):
        visible = Project.objects.visible_to(self.request.user)
        if self.action in ("list", "retrieve"):
            return self._read(visible)
        # A move, an edit or the history: the lookup only finds a project the caller can see; the services lock and
        # re-read it, and _respond reads the answer again.
        return visible

    def _respond(self, project: Project, status_code=status.HTTP_200_OK) -> Response:
        # The project as it now is; unscoped: its author is owed the answer to the change they were allowed to
        # make, even one that leaves them outside a confidential project.
        project = self._read(Project.objects).get(pk=project.pk)
        return with_etag(Response(ProjectSerializer(project).data, status=status_code), project.version)

    @read_schema(ProjectSerializer, etag=True)
    def retrieve(self, request, *args, **kwargs):
        project = self.get_object()
        return with_etag(Response(ProjectSerializer(project).data), project.version)

    def create(self, request, *args, **kwargs):
        serializer = ProjectWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = services.project_create(by=request.user, **data)
        return self._respond(project, status.HTTP_201_CREATED)

    @versioned_schema(request=ProjectUpdateSerializer, response=ProjectSerializer)
    def partial_update(self, request, *args, **kwargs):
        project = self.get_object()
        serializer = ProjectUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = expected_version(request, data.pop("version", None))
        project = services.project_update(project=project, by=request.user, expected_version=version, **data)
        return self._respond(project)

    @action_schema(
        request=TransitionSerializer, response=ProjectSerializer, summary="Move the project's stage", versioned=True
    )
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the project one stage forward, one back (with a reason) or to cancelled (with a reason)."""
        project = self.get_object()
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = expected_version(request, data.pop("version", None))
        project = services.project_transition(project=project, by=request.user, expected_version=version, **data)
        return self._respond(project)

    @extend_schema(responses={200: ProjectEventSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request, pk=None):
        """Every recorded change of the project, oldest first: stage moves with from, to, who, when and why."""
        project = self.get_object()
        page = self.paginate_queryset(project.events.select_related("actor").order_by("created_at", "id"))
        return self.get_paginated_response(ProjectEventSerializer(page, many=True).data)
