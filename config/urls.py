from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from handover import views as handover_views
from handover.api.search import SavedViewViewSet, SearchView
from handover.api.views import (
    ConditionViewSet,
    HandoverViewSet,
    ItemViewSet,
    MeView,
    NotificationViewSet,
    StallFlagViewSet,
    TemplateViewSet,
    TokenViewSet,
    WebhookViewSet,
)
from operations.api.views import KpiViewSet, ServiceViewSet, TeamViewSet
from projects.api.views import ProjectViewSet

from . import web
from .api import api_not_found
from .views import healthz

admin.site.site_header = "Handover administration"
admin.site.site_title = "Handover"

router = DefaultRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("teams", TeamViewSet, basename="team")
router.register("services", ServiceViewSet, basename="service")
router.register("kpis", KpiViewSet, basename="kpi")
router.register("templates", TemplateViewSet, basename="template")
router.register("handovers", HandoverViewSet, basename="handover")
router.register("items", ItemViewSet, basename="item")
router.register("conditions", ConditionViewSet, basename="condition")
router.register("tokens", TokenViewSet, basename="token")
router.register("stalls", StallFlagViewSet, basename="stall")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("saved-views", SavedViewViewSet, basename="saved-view")

api_v1 = [
    path("me/", MeView.as_view(), name="me"),
    path("search/", SearchView.as_view(), name="search"),
    *router.urls,
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start script from a URL (?script), not inline: the CSP allows no inline script.
    # Swagger UI draws its icons as data: images, which this page alone may load.
    path(
        "api/docs/",
        csp_update({"img-src": ["data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs.html")
        ),
        name="api-docs",
    ),
    # Last under /api/: an unknown endpoint is a 404 in the API's error shape, never the web UI's HTML page.
    re_path(r"^api/", api_not_found),
    # The web UI: Django's own sign-in, sign-out (POST) and password change, with the templates in
    # config/templates/registration/; then the pages of each app.
    # Sign-in and password change answer a form with errors with 400 (config.web), like every form of the UI.
    path("accounts/login/", web.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", web.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("", handover_views.home, name="home"),
    path("", include("handover.urls")),
    path("", include("projects.urls")),
    path("", include("operations.urls")),
]

# Errors Django answers itself (outside a DRF view): in the API's error shape under /api/, else the web UI's pages.
handler400 = "config.api.handler400"
handler403 = "config.api.handler403"
handler404 = "config.api.handler404"
handler500 = "config.api.handler500"
