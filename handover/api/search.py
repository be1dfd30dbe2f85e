"""The API of search (``GET /api/v1/search/?q=``) and of a person's saved views (``/api/v1/saved-views/``).

Both read and write through ``handover.search`` and ``handover.saved_views``; a person's saved views are theirs
alone (another's is a 404, for an administrator too).
"""

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import LIST_ERRORS, READ_ERRORS, ApiViewMixin, error_responses
from config.api_fields import StrictSerializerMixin

from .. import saved_views
from ..choices import SavedViewPage
from ..models import SavedView
from ..search import MAX_QUERY, MIN_SUBSTRING, PER_KIND, search

# ------------------------------------------------------------------------------------------------------ search


class SearchQuerySerializer(serializers.Serializer):
    """The query parameters of a search (documentation: the view reads ``q`` itself, literally)."""

    q = serializers.CharField(
        max_length=MAX_QUERY,
        help_text=f"What to look for, taken literally (% and _ are plain characters): part of a project's code or "
        f"name, or of a checklist item's title, case-insensitive. Fewer than {MIN_SUBSTRING} characters find a "
        "project by its exact code only.",
    )


class SearchResultSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["project", "handover", "item"])
    id = serializers.IntegerField(help_text="The id of the project, handover or item, as its endpoint takes it.")
    project_code = serializers.CharField()
    url = serializers.URLField(help_text="The object in this API.")
    web_url = serializers.URLField(help_text="The object's page in the web UI.")

    def get_fields(self):
        # Declared here rather than as an attribute, which would shadow ``Field.label``; it goes after ``id``.
        kind, id_, *rest = super().get_fields().items()
        label = serializers.CharField(help_text="What a person reads: code and name, or the item's title.")
        return dict([kind, id_, ("label", label), *rest])


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="The query as searched (without surrounding whitespace).")
    code_only = serializers.BooleanField(
        help_text=f"The query had fewer than {MIN_SUBSTRING} characters: only an exact project code was looked for."
    )
    results = SearchResultSerializer(
        many=True,
        help_text=f"Projects, then handovers, then checklist items, at most {PER_KIND} of each, each kind ranked: "
        "the exact code first, then codes and names (or titles) that start with the query, then the most similar.",
    )


class SearchView(ApiViewMixin, APIView):
    """Search what you may see: projects by code and name, their handovers, checklist items by title."""

    @extend_schema(
        operation_id="search",
        parameters=[SearchQuerySerializer],
        responses={200: SearchResponseSerializer, **error_responses(400, 401, 403)},
    )
    def get(self, request):
        unknown = sorted(set(request.query_params) - {"q", "format"})
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown query parameter; the search takes: q."] for name in unknown}
            )
        found = search(request.user, request.query_params.get("q"))
        results = [
            {
                "kind": result.kind,
                "id": result.id,
                "label": result.label,
                "project_code": result.project_code,
                "url": request.build_absolute_uri(result.url),
                "web_url": request.build_absolute_uri(result.web_url),
            }
            for result in found.results
        ]
        return Response({"query": found.query, "code_only": found.code_only, "results": results})


# ------------------------------------------------------------------------------------------------ saved views


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "maxLength": 200},
                {"type": "array", "items": {"type": "string", "maxLength": 200}, "minItems": 1, "maxItems": 50},
            ]
        },
        "description": "The page's filters by the names of its query string, each a value or a list of values "
        '(for example {"team": "3", "status": ["submitted", "accepted"]}). '
        + "; ".join(f"{page}: {', '.join(spec.filters)}" for page, spec in saved_views.PAGES.items())
        + ".",
    }
)
class FiltersField(serializers.Field):
    """The filters as sent; ``handover.saved_views.clean_filters`` checks the names and values against the page."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Give the filters as an object of names and values.")
        for value in data.values():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in values):
                raise serializers.ValidationError("Each filter's value is a string, or a list of strings.")
        return data

    def to_representation(self, value):
        return value


class SavedViewSerializer(serializers.ModelSerializer):
    filters = FiltersField()
    url = serializers.SerializerMethodField(help_text="The page with the view's filters: opening it opens the view.")

    class Meta:
        model = SavedView
        fields = ["id", "name", "page", "filters", "url", "created_at"]
        read_only_fields = fields

    def get_url(self, view: SavedView) -> str:
        url = saved_views.saved_view_url(view)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class SavedViewCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    # Not trimmed here: the service strips it, and the length checked is the length sent, as the schema says.
    name = serializers.CharField(max_length=saved_views.MAX_NAME, trim_whitespace=False)
    page = serializers.ChoiceField(choices=SavedViewPage.choices)
    filters = FiltersField(required=False, default=dict)


@extend_schema_view(
    list=extend_schema(responses={200: SavedViewSerializer(many=True), **error_responses(*LIST_ERRORS)}),
    retrieve=extend_schema(responses={200: SavedViewSerializer, **error_responses(*READ_ERRORS)}),
    create=extend_schema(
        request=SavedViewCreateSerializer,
        responses={201: SavedViewSerializer, **error_responses(400, 401, 403)},
        description="Unknown filter names and invalid values are refused naming the filter (`filters.<name>`); a "
        "name you already gave a view of the same page is refused naming `name`.",
    ),
    destroy=extend_schema(responses={204: None, **error_responses(*READ_ERRORS)}),
)
class SavedViewViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your saved views: named filters of the board (`portfolio`), the handover list and the project list. Each
    stores filters only; opening its `url` shows what you may see with them."""

    serializer_class = SavedViewSerializer
    filterset_fields = ["page"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return SavedView.objects.none()
        user = self.request.user
        if not user.is_authenticated:
            return SavedView.objects.none()
        return SavedView.objects.filter(user=user)

    def create(self, request, *args, **kwargs):
        serializer = SavedViewCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        view = saved_views.saved_view_create(user=request.user, **serializer.validated_data)
        data = SavedViewSerializer(view, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        saved_views.saved_view_delete(view=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
