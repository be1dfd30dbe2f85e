import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import F, Prefetch, Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    ETAG,
    LIST_ERRORS,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiViewMixin,
    FilterSet,
    IdFilter,
    StrictBooleanFilter,
    action_schema,
    error_responses,
    expected_version,
    read_schema,
    versioned_schema,
    with_etag,
)
from operations.models import OperationsTeam
from operations.selectors import teams_of
from projects.choices import Stage
from projects.models import Project, visible_q

from .. import services
from ..choices import ACCEPTED_STATUSES, HandoverStatus, ItemStatus, Risk, Side, StallRule
from ..models import (
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Condition,
    Evidence,
    Handover,
    Notification,
    StallFlag,
    WebhookSubscription,
)
from ..notifications.services import notifications_mark_read
from ..readiness import SHARE_FIELDS as READINESS_SHARES
from ..selectors import handovers_visible_to, inbox
from ..stalls import services as stalls
from ..tokens import services as tokens
from ..webhooks import services as webhooks
from .serializers import (
    AcceptWithConditionsSerializer,
    AcknowledgeSerializer,
    ActivitySerializer,
    CommentSerializer,
    CommentWriteSerializer,
    CompleteSerializer,
    ConditionMetSerializer,
    ConditionSerializer,
    DecisionSerializer,
    EmptySerializer,
    EvidenceSerializer,
    EvidenceWriteSerializer,
    HandoverCreateSerializer,
    HandoverSerializer,
    HandoverUpdateSerializer,
    HypercareSerializer,
    ItemCreateSerializer,
    ItemSerializer,
    ItemUpdateSerializer,
    JustificationSerializer,
    MarkedSerializer,
    MarkReadSerializer,
    MeSerializer,
    NoteSerializer,
    NotificationSerializer,
    OptionalReasonSerializer,
    ReasonSerializer,
    ReturnSerializer,
    SnoozeSerializer,
    StallFlagSerializer,
    TemplateSerializer,
    TemplateUpdateSerializer,
    TemplateWriteSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
    VersionSerializer,
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
)

User = get_user_model()


def _validated(serializer_class, request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _version(request, data: dict) -> int | None:
    """The version the client read, from If-Match or the body's ``version`` (taken out of ``data``)."""
    return expected_version(request, data.pop("version", None))


def _items_queryset():
    return ChecklistItem.objects.select_related(
        "assignee", "done_by", "verified_by", "waiver_requested_by", "waiver_approved_by"
    ).prefetch_related(Prefetch("evidence", queryset=Evidence.objects.select_related("added_by")))


# ---------------------------------------------------------------------------------------------- templates


@extend_schema_view(
    list=extend_schema(responses={200: TemplateSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: TemplateSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=TemplateWriteSerializer, responses={201: TemplateSerializer, **error_responses(400, 401, 403)}
    ),
    partial_update=extend_schema(
        request=TemplateUpdateSerializer,
        responses={200: TemplateSerializer, **error_responses(*WRITE_ERRORS)},
        description="Changing items or the description creates a new version; live handovers keep theirs.",
    ),
)
class TemplateViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Checklist templates: everyone signed in reads; administrators write."""

    serializer_class = TemplateSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    queryset = ChecklistTemplate.objects.prefetch_related("items")
    filterset_fields = ["kind", "is_active"]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "version", "created_at"]

    def create(self, request, *args, **kwargs):
        data = _validated(TemplateWriteSerializer, request)
        items = [services.TemplateItemSpec(**item) for item in data.pop("items")]
        template = services.template_create(by=request.user, items=items, **data)
        return Response(TemplateSerializer(self.get_queryset().get(pk=template.pk)).data, status=201)

    def partial_update(self, request, *args, **kwargs):
        template = self.get_object()
        data = _validated(TemplateUpdateSerializer, request)
        if "items" in data:
            data["items"] = [services.TemplateItemSpec(**item) for item in data["items"]]
        template = services.template_update(template=template, by=request.user, **data)
        return Response(TemplateSerializer(self.get_queryset().get(pk=template.pk)).data)


# ---------------------------------------------------------------------------------------------- handovers


@extend_schema_field(OpenApiTypes.BOOL)
class BoolFilter(StrictBooleanFilter):
    pass


# Filters by id choose among what the caller can see: a confidential project's id is as unknown as a missing one.
def _visible_projects(request):
    return Project.objects.visible_to(request.user) if request else Project.objects.none()


def _visible_handovers(request):
    return handovers_visible_to(request.user) if request else Handover.objects.none()


READINESS_PAIR = ("readiness_risk", "readiness_below")
# ?ordering= names for the stored readiness shares: readiness (overall) and readiness_<risk>.
READINESS_ORDERINGS = {
    "readiness": READINESS_SHARES["overall"],
    **{f"readiness_{risk}": READINESS_SHARES[risk] for risk in Risk.values},
}


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 1})
class ShareFilter(django_filters.NumberFilter):
    """A share from 0 to 1, as the schema says."""


class HandoverFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        given = {name for name in READINESS_PAIR if self.data.get(name) not in (None, "")}
        if len(given) == 1:
            (missing,) = set(READINESS_PAIR) - given
            self.add_error(
                missing, "readiness_risk and readiness_below go together (readiness_risk=overall for all risks)."
            )
        return cleaned


class HandoverFilter(FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=HandoverStatus.choices)
    stage = django_filters.MultipleChoiceFilter(
        field_name="project__stage", choices=Stage.choices, label="The project's stage"
    )
    project = django_filters.ModelChoiceFilter(queryset=_visible_projects)
    team = django_filters.ModelChoiceFilter(
        field_name="receiving_team", queryset=OperationsTeam.objects.all(), label="The receiving operations team"
    )
    manager = IdFilter(field_name="project__manager")
    overdue = BoolFilter(method="filter_overdue", label="Target date passed and not yet accepted")
    readiness_risk = django_filters.ChoiceFilter(
        choices=[*Risk.choices, ("overall", "Overall")],
        method="filter_noop",
        label="The risk (or overall) that readiness_below looks at; the two go together",
    )
    readiness_below = ShareFilter(
        method="filter_readiness_below",
        min_value=0,
        max_value=1,
        label="Share (0 to 1) of the risk's mandatory items verified or waived with approval is below this; a risk "
        "with no applicable mandatory item counts as 0 (nothing is ready). Goes with readiness_risk",
    )
    has_open_stall = BoolFilter(method="filter_has_open_stall", label="Has an open stall flag")
    target_date_before = django_filters.DateFilter(field_name="target_date", lookup_expr="lte")
    target_date_after = django_filters.DateFilter(field_name="target_date", lookup_expr="gte")

    class Meta:
        model = Handover
        fields = ["status", "project", "receiving_team", "operations_owner", "service", "manager"]
        form = HandoverFilterForm

    def filter_noop(self, queryset, name, value):
        return queryset

    def filter_has_open_stall(self, queryset, name, value):
        flagged = StallFlag.objects.filter(resolved_at__isnull=True).values("handover_id")
        return queryset.filter(pk__in=flagged) if value else queryset.exclude(pk__in=flagged)

    def filter_overdue(self, queryset, name, value):
        overdue = Q(target_date__lt=timezone.localdate()) & ~Q(
            status__in=[*ACCEPTED_STATUSES, HandoverStatus.CANCELLED]
        )
        return queryset.filter(overdue) if value else queryset.exclude(overdue)

    def filter_readiness_below(self, queryset, name, value):
        # The share stored on the handover (handover.readiness), 0 when nothing applies: no item is read.
        share = READINESS_SHARES[self.form.cleaned_data["readiness_risk"]]
        return queryset.filter(**{f"{share}__lt": value})


@extend_schema_view(
    list=extend_schema(responses={200: HandoverSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    create=extend_schema(
        request=HandoverCreateSerializer,
        responses={201: HandoverSerializer, **error_responses(400, 401, 403, 409)},
        parameters=[ETAG],
        summary="Plan a project's handover from a template",
    ),
)
class HandoverViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Handovers with their readiness per risk, and every move of their lifecycle as an action.

    Send ``If-Match`` with the ETag you read (or ``version`` in the body) to refuse a lost update with 412.
    """

    serializer_class = HandoverSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_class = HandoverFilter
    search_fields = ["project__code", "project__name", "deliverables"]
    # ``readiness`` orders by the stored overall share, ``readiness_<risk>`` by one risk's (handover.readiness).
    ordering_fields = [
        "target_date",
        "status",
        "last_activity_at",
        "created_at",
        "submitted_at",
        *READINESS_ORDERINGS,
    ]
    ordering = ["target_date", "id"]
    cursor_ordering = ("target_date", "id")  # ?paginate=cursor; index handover_target_id

    @staticmethod
    def _read(handovers):
        """What ``HandoverSerializer`` shows, in a fixed number of queries for a page."""
        return handovers.select_related("project__manager", "template", "receiving_team", "service", "operations_owner")

    def get_queryset(self):
        visible = handovers_visible_to(self.request.user)
        if self.action in ("list", "retrieve"):
            return self._read(visible)
        # A move, an edit or a list under the handover: the lookup only finds a handover the caller can see (404
        # otherwise). The services lock and re-read the row, and the answer is read again by _respond.
        return visible

    def _respond(self, handover, status_code=status.HTTP_200_OK) -> Response:
        handover = self._read(handovers_visible_to(self.request.user)).get(pk=handover.pk)
        return with_etag(Response(HandoverSerializer(handover).data, status=status_code), handover.version)

    def filter_queryset(self, queryset):
        # The readiness orderings' names, for OrderingFilter: the shares stored on the handover.
        return super().filter_queryset(queryset.alias(**{name: F(f) for name, f in READINESS_ORDERINGS.items()}))

    @read_schema(HandoverSerializer, etag=True)
    def retrieve(self, request, *args, **kwargs):
        handover = self.get_object()
        return with_etag(Response(HandoverSerializer(handover).data), handover.version)

    def create(self, request, *args, **kwargs):
        data = _validated(HandoverCreateSerializer, request, user=request.user)
        handover = services.handover_create(by=request.user, **data)
        return self._respond(handover, status.HTTP_201_CREATED)

    @versioned_schema(request=HandoverUpdateSerializer, response=HandoverSerializer)
    def partial_update(self, request, *args, **kwargs):
        handover = self.get_object()
        data = _validated(HandoverUpdateSerializer, request)
        version = _version(request, data)
        handover = services.handover_update(handover=handover, by=request.user, expected_version=version, **data)
        return self._respond(handover)

    def _act(self, request, service, serializer_class):
        handover = self.get_object()
        data = _validated(serializer_class, request)
        version = _version(request, data)
        return self._respond(service(handover=handover, by=request.user, expected_version=version, **data))

    @action_schema(
        request=VersionSerializer,
        response=HandoverSerializer,
        summary="Submit the handover to operations",
        versioned=True,
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """The project manager submits: every mandatory item done, waived or not applicable."""
        return self._act(request, services.handover_submit, VersionSerializer)

    @action_schema(request=NoteSerializer, response=HandoverSerializer, summary="Accept the handover", versioned=True)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """The operations owner accepts: every mandatory item verified, waived with approval or not applicable."""
        return self._act(request, services.handover_accept, NoteSerializer)

    @action_schema(
        request=AcceptWithConditionsSerializer,
        response=HandoverSerializer,
        summary="Accept with conditions",
        versioned=True,
    )
    @action(detail=True, methods=["post"], url_path="accept-with-conditions")
    def accept_with_conditions(self, request, pk=None):
        """Accept, attaching follow-on conditions (text, owner, due date) that survive the project's closure."""
        return self._act(request, services.handover_accept_with_conditions, AcceptWithConditionsSerializer)

    @action_schema(request=ReturnSerializer, response=HandoverSerializer, summary="Return the handover", versioned=True)
    @action(detail=True, methods=["post"], url_path="return")
    def return_(self, request, pk=None):
        """Return the handover to the project with a reason, sending the listed items back."""
        return self._act(request, services.handover_return, ReturnSerializer)

    @action_schema(request=HypercareSerializer, response=HandoverSerializer, summary="Start hypercare", versioned=True)
    @action(detail=True, methods=["post"], url_path="start-hypercare")
    def start_hypercare(self, request, pk=None):
        """Open the early-life-support window after acceptance."""
        return self._act(request, services.handover_start_hypercare, HypercareSerializer)

    @action_schema(request=NoteSerializer, response=HandoverSerializer, summary="Complete the handover", versioned=True)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """End hypercare."""
        return self._act(request, services.handover_complete, NoteSerializer)

    @action_schema(request=ReasonSerializer, response=HandoverSerializer, summary="Cancel the handover", versioned=True)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Withdraw the handover before acceptance, with a reason."""
        return self._act(request, services.handover_cancel, ReasonSerializer)

    @extend_schema(methods=["GET"], responses={200: ItemSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=ItemCreateSerializer,
        responses={201: ItemSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def items(self, request, pk=None):
        """The checklist, in order; the manager or the operations owner may add an item."""
        handover = self.get_object()
        if request.method == "POST":
            item = services.item_add(handover=handover, by=request.user, **_validated(ItemCreateSerializer, request))
            return Response(ItemSerializer(_items_queryset().get(pk=item.pk)).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(_items_queryset().filter(handover=handover).order_by("position", "id"))
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    @extend_schema(responses={200: ActivitySerializer(many=True), **error_responses(*LIST_ERRORS)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def activity(self, request, pk=None):
        """Every recorded change, newest first: who, what, when, from which state."""
        handover = self.get_object()
        page = self.paginate_queryset(handover.activity.select_related("actor").order_by("-created_at", "-id"))
        return self.get_paginated_response(ActivitySerializer(page, many=True).data)

    @extend_schema(responses={200: DecisionSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def decisions(self, request, pk=None):
        """Operations' decisions, oldest first, each with the checklist frozen as it stood."""
        handover = self.get_object()
        decisions = (
            handover.decisions.select_related("decided_by")
            .prefetch_related(Prefetch("conditions", queryset=Condition.objects.select_related("owner", "met_by")))
            .order_by("decided_at", "id")
        )
        page = self.paginate_queryset(decisions)
        return self.get_paginated_response(DecisionSerializer(page, many=True).data)

    @extend_schema(methods=["GET"], responses={200: CommentSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=CommentWriteSerializer,
        responses={201: CommentSerializer, **error_responses(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def comments(self, request, pk=None):
        """Comments on the handover and its items, oldest first; participants may comment."""
        handover = self.get_object()
        if request.method == "POST":
            comment = services.comment_add(
                handover=handover, by=request.user, **_validated(CommentWriteSerializer, request)
            )
            return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(handover.comments.select_related("author").order_by("created_at", "id"))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)

    @extend_schema(responses={200: ConditionSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def conditions(self, request, pk=None):
        """Conditions attached when the handover was accepted with conditions, by due date."""
        handover = self.get_object()
        page = self.paginate_queryset(handover.conditions.select_related("owner", "met_by").order_by("due_date", "id"))
        return self.get_paginated_response(ConditionSerializer(page, many=True).data)


# ------------------------------------------------------------------------------------------------- items


class ItemFilter(FilterSet):
    handover = django_filters.ModelChoiceFilter(queryset=_visible_handovers)
    status = django_filters.MultipleChoiceFilter(choices=ItemStatus.choices)
    risk = django_filters.ChoiceFilter(choices=Risk.choices)
    side = django_filters.ChoiceFilter(choices=Side.choices)

    class Meta:
        model = ChecklistItem
        fields = ["handover", "status", "risk", "side", "assignee", "mandatory"]


@extend_schema_view(list=extend_schema(responses={200: ItemSerializer(many=True), **error_responses(*LIST_ERRORS)}))
class ItemViewSet(
    ApiViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Checklist items across the handovers you can see, and every move of an item as an action."""

    serializer_class = ItemSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_class = ItemFilter
    search_fields = ["title", "guidance"]
    ordering_fields = ["position", "due_date", "status", "status_changed_at"]
    # handover_id, not handover: ordering by the relation would sort by the handover's own ordering, through a join.
    ordering = ["handover_id", "position", "id"]
    cursor_ordering = ("handover_id", "position", "id")  # ?paginate=cursor; index item_handover_position

    def get_queryset(self):
        visible = visible_q(self.request.user, "handover__project__")
        if self.action in ("list", "retrieve"):
            return _items_queryset().filter(visible)
        # A move or a list under the item: the services lock and re-read the item and its handover; _respond reads
        # the answer again. The lookup finds a visible item, with its handover (the services start from it).
        return ChecklistItem.objects.select_related("handover").filter(visible)

    def _respond(self, item) -> Response:
        item = _items_queryset().get(pk=item.pk)
        return with_etag(Response(ItemSerializer(item).data), item.version)

    @read_schema(ItemSerializer, etag=True)
    def retrieve(self, request, *args, **kwargs):
        item = self.get_object()
        return with_etag(Response(ItemSerializer(item).data), item.version)

    @versioned_schema(request=ItemUpdateSerializer, response=ItemSerializer)
    def partial_update(self, request, *args, **kwargs):
        item = self.get_object()
        data = _validated(ItemUpdateSerializer, request)
        version = _version(request, data)
        return self._respond(services.item_update(item=item, by=request.user, expected_version=version, **data))

    def _act(self, request, service, serializer_class):
        item = self.get_object()
        data = _validated(serializer_class, request)
        version = _version(request, data)
        return self._respond(service(item=item, by=request.user, expected_version=version, **data))

    @action_schema(request=CompleteSerializer, response=ItemSerializer, summary="Mark the item done", versioned=True)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """The responsible side marks the item done, with evidence (a link or a note) unless it has some."""
        data = _validated(CompleteSerializer, request)
        version = _version(request, data)
        evidence = data.get("evidence") or {}
        item = services.item_complete(
            item=self.get_object(),
            by=request.user,
            evidence_url=evidence.get("url", ""),
            evidence_text=evidence.get("text", ""),
            expected_version=version,
        )
        return self._respond(item)

    @action_schema(request=NoteSerializer, response=ItemSerializer, summary="Verify the item", versioned=True)
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Operations confirms a done item; nobody verifies their own work."""
        return self._act(request, services.item_verify, NoteSerializer)

    @action_schema(request=ReasonSerializer, response=ItemSerializer, summary="Send the item back", versioned=True)
    @action(detail=True, methods=["post"], url_path="send-back")
    def send_back(self, request, pk=None):
        """Operations sends a done item back to open, saying what is missing."""
        return self._act(request, services.item_send_back, ReasonSerializer)

    @action_schema(request=JustificationSerializer, response=ItemSerializer, summary="Waive the item", versioned=True)
    @action(detail=True, methods=["post"])
    def waive(self, request, pk=None):
        """Waive with a justification: approved at once by the operations owner, pending when the manager asks."""
        return self._act(request, services.item_waive, JustificationSerializer)

    @action_schema(
        request=VersionSerializer, response=ItemSerializer, summary="Approve a pending waiver", versioned=True
    )
    @action(detail=True, methods=["post"], url_path="approve-waiver")
    def approve_waiver(self, request, pk=None):
        """The operations owner approves a waiver the project side asked for."""
        return self._act(request, services.item_approve_waiver, VersionSerializer)

    @action_schema(
        request=ReasonSerializer, response=ItemSerializer, summary="Mark the item not applicable", versioned=True
    )
    @action(detail=True, methods=["post"], url_path="not-applicable")
    def not_applicable(self, request, pk=None):
        """Declare the item does not apply, with a reason; readiness shows it apart."""
        return self._act(request, services.item_mark_not_applicable, ReasonSerializer)

    @action_schema(request=OptionalReasonSerializer, response=ItemSerializer, summary="Reopen the item", versioned=True)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        """Put the item back to open."""
        return self._act(request, services.item_reopen, OptionalReasonSerializer)

    @extend_schema(methods=["GET"], responses={200: CommentSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=CommentWriteSerializer,
        responses={201: CommentSerializer, **error_responses(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def comments(self, request, pk=None):
        """Comments on the item, oldest first."""
        item = self.get_object()
        if request.method == "POST":
            comment = services.comment_add(
                handover=item.handover, item=item, by=request.user, **_validated(CommentWriteSerializer, request)
            )
            return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(item.comments.select_related("author").order_by("created_at", "id"))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)

    @extend_schema(methods=["GET"], responses={200: EvidenceSerializer(many=True), **error_responses(*LIST_ERRORS)})
    @extend_schema(
        methods=["POST"],
        request=EvidenceWriteSerializer,
        responses={201: EvidenceSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def evidence(self, request, pk=None):
        """Evidence on the item, oldest first; those who work or verify it may add a link or a note."""
        item = self.get_object()
        if request.method == "POST":
            evidence = services.evidence_add(item=item, by=request.user, **_validated(EvidenceWriteSerializer, request))
            return Response(EvidenceSerializer(evidence).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(item.evidence.select_related("added_by").order_by("added_at", "id"))
        return self.get_paginated_response(EvidenceSerializer(page, many=True).data)


# -------------------------------------------------------------------------------------------- conditions


class ConditionFilter(FilterSet):
    handover = django_filters.ModelChoiceFilter(queryset=_visible_handovers)

    class Meta:
        model = Condition
        fields = ["handover", "owner", "status"]


@extend_schema_view(
    list=extend_schema(responses={200: ConditionSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: ConditionSerializer, **error_responses(*READ_ERRORS)}),
)
class ConditionViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """Conditions of conditional acceptances: the operations side's follow-on actions."""

    serializer_class = ConditionSerializer
    filterset_class = ConditionFilter
    search_fields = ["text", "handover__project__code", "handover__project__name"]
    ordering_fields = ["due_date", "status", "met_at"]
    ordering = ["due_date", "id"]

    def get_queryset(self):
        return Condition.objects.select_related("owner", "met_by").filter(
            visible_q(self.request.user, "handover__project__")
        )

    @action_schema(request=ConditionMetSerializer, response=ConditionSerializer, summary="Mark the condition met")
    @action(detail=True, methods=["post"])
    def met(self, request, pk=None):
        """The condition's owner or the operations owner records that it is met."""
        condition = services.condition_mark_met(
            condition=self.get_object(), by=request.user, **_validated(ConditionMetSerializer, request)
        )
        return Response(ConditionSerializer(condition).data)


# ------------------------------------------------------------------------------------------------ tokens


@extend_schema_view(
    list=extend_schema(responses={200: TokenSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: TokenSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=TokenCreateSerializer, responses={201: TokenCreatedSerializer, **error_responses(400, 401, 403)}
    ),
    destroy=extend_schema(responses={204: None, **error_responses(401, 403, 404, 409)}),
)
class TokenViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your API tokens (an administrator sees every token). The secret is shown once, when it is created;
    ``DELETE`` revokes a token."""

    serializer_class = TokenSerializer
    filterset_fields = ["read_only"]
    search_fields = ["name", "prefix"]
    ordering_fields = ["name", "created_at", "last_used_at", "expires_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return ApiToken.objects.none()
        user = self.request.user
        if not user.is_authenticated:  # refused before a list or a lookup; nothing to show
            return ApiToken.objects.none()
        tokens = ApiToken.objects.select_related("user")
        return tokens if user.is_staff else tokens.filter(user=user)

    def create(self, request, *args, **kwargs):
        token, raw = tokens.token_create(by=request.user, **_validated(TokenCreateSerializer, request))
        data = TokenCreatedSerializer(token).data
        data["token"] = raw  # the secret exists only in this answer; the row keeps its hash
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        tokens.token_revoke(token=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------------- me


class MeView(ApiViewMixin, APIView):
    """Who you are, the teams you belong to, and what you manage or own."""

    @extend_schema(responses={200: MeSerializer, **error_responses(401, 403)})
    def get(self, request):
        user = request.user
        teams = list(teams_of(user).values("id", "name", "lead_id"))
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
            "email": user.email,
            "is_admin": user.is_staff,
            "token_read_only": getattr(request.auth, "read_only", None),
            "teams": [{"id": t["id"], "name": t["name"]} for t in teams],
            "led_teams": [{"id": t["id"], "name": t["name"]} for t in teams if t["lead_id"] == user.pk],
            "managed_projects": user.managed_projects.count(),
            "owned_handovers": Handover.objects.filter(operations_owner=user)
            .exclude(status__in=(HandoverStatus.CANCELLED, HandoverStatus.COMPLETED))
            .count(),
        }
        return Response(MeSerializer(data).data)


# -------------------------------------------------------------------------------------------- stall flags


class StallFlagFilter(FilterSet):
    handover = django_filters.ModelChoiceFilter(queryset=_visible_handovers)
    open = BoolFilter(field_name="resolved_at", lookup_expr="isnull", label="Still open")
    rule = django_filters.ChoiceFilter(choices=StallRule.choices)
    team = IdFilter(field_name="handover__receiving_team")

    class Meta:
        model = StallFlag
        fields = ["handover", "rule", "open", "team"]


@extend_schema_view(
    list=extend_schema(responses={200: StallFlagSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: StallFlagSerializer, **error_responses(*READ_ERRORS)}),
)
class StallFlagViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """Stall flags on the handovers you can see: one per episode of a rule being true."""

    serializer_class = StallFlagSerializer
    filterset_class = StallFlagFilter
    search_fields = ["handover__project__code", "handover__project__name", "acknowledge_note", "snooze_reason"]
    ordering_fields = ["opened_at", "resolved_at", "rule"]
    ordering = ["-opened_at", "-id"]

    def get_queryset(self):
        return StallFlag.objects.select_related("handover__project", "acknowledged_by", "snoozed_by").filter(
            visible_q(self.request.user, "handover__project__")
        )

    @action_schema(request=AcknowledgeSerializer, response=StallFlagSerializer, summary="Acknowledge the flag")
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """The operations owner has seen it and says what happens next; it will not escalate."""
        flag = stalls.stall_acknowledge(
            flag=self.get_object(), by=request.user, **_validated(AcknowledgeSerializer, request)
        )
        return Response(StallFlagSerializer(self.get_queryset().get(pk=flag.pk)).data)

    @action_schema(request=SnoozeSerializer, response=StallFlagSerializer, summary="Snooze the flag")
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        """Hold notifications and escalation until a date (at most 90 days), with a reason."""
        flag = stalls.stall_snooze(flag=self.get_object(), by=request.user, **_validated(SnoozeSerializer, request))
        return Response(StallFlagSerializer(self.get_queryset().get(pk=flag.pk)).data)


# ---------------------------------------------------------------------------------------- notifications


class NotificationFilter(FilterSet):
    unread = BoolFilter(field_name="read_at", lookup_expr="isnull", label="Not yet read")

    class Meta:
        model = Notification
        fields = ["unread", "kind"]


@extend_schema_view(
    list=extend_schema(responses={200: NotificationSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: NotificationSerializer, **error_responses(*READ_ERRORS)}),
)
class NotificationViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """Your in-app inbox: stall flags on handovers you own, manage or lead, newest first."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    search_fields = ["subject", "body"]
    ordering_fields = ["created_at", "read_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return inbox(self.request.user).select_related("flag")

    @extend_schema(request=None, responses={200: NotificationSerializer, **error_responses(400, 401, 403, 404)})
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        """Mark one notification read (again: it stays read). It takes no body; one with fields is refused."""
        notification = self.get_object()
        _validated(EmptySerializer, request)
        notifications_mark_read(user=request.user, ids=[notification.pk])
        return Response(NotificationSerializer(self.get_queryset().get(pk=notification.pk)).data)

    @extend_schema(request=MarkReadSerializer, responses={200: MarkedSerializer, **error_responses(400, 401, 403)})
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        """Mark the given notifications (or all unread ones) read."""
        marked = notifications_mark_read(user=request.user, ids=_validated(MarkReadSerializer, request)["ids"])
        return Response({"marked": marked})


# --------------------------------------------------------------------------------------------- webhooks


class AdminOnly(BasePermission):
    message = "Only an administrator may manage webhooks."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_staff)


@extend_schema_view(
    list=extend_schema(responses={200: WebhookSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: WebhookSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer, **error_responses(400, 401, 403)}
    ),
    partial_update=extend_schema(
        request=WebhookUpdateSerializer, responses={200: WebhookSerializer, **error_responses(400, 401, 403, 404)}
    ),
    destroy=extend_schema(responses={204: None, **error_responses(401, 403, 404)}),
)
class WebhookViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Outbound webhooks (administrators): signed the Standard Webhooks way, retried with capped backoff."""

    serializer_class = WebhookSerializer
    permission_classes = [*viewsets.GenericViewSet.permission_classes, AdminOnly]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = WebhookSubscription.objects.all()
    search_fields = ["url", "description"]
    ordering_fields = ["url", "created_at"]
    ordering = ["-created_at", "-id"]

    def create(self, request, *args, **kwargs):
        data = _validated(WebhookCreateSerializer, request)
        subscription = webhooks.webhook_create(by=request.user, **data)
        return Response(WebhookCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        data = _validated(WebhookUpdateSerializer, request)
        subscription = webhooks.webhook_update(subscription=self.get_object(), by=request.user, **data)
        return Response(WebhookSerializer(subscription).data)

    def destroy(self, request, *args, **kwargs):
        webhooks.webhook_delete(subscription=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True), **error_responses(*LIST_ERRORS)})
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request, pk=None):
        """The delivery log, newest first: status, attempts and the receiver's response code."""
        subscription = self.get_object()
        page = self.paginate_queryset(subscription.deliveries.select_related("event").order_by("-created_at", "-id"))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
