"""Web pages of the handover app (the API is under config.urls ``api/v1/``)."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "handover"

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that link no icon (the admin's, a raw error page): the product's icon.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True), name="favicon"),
    path("portfolio/", views.board, name="board"),
    path("search/", views.search, name="search"),
    path("saved-views/", views.saved_view_create, name="saved-view-create"),
    path("saved-views/<int:pk>/delete/", views.saved_view_delete, name="saved-view-delete"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications-read"),
    # Following a notification marks it read, then goes to the handover's page (handover:detail).
    path("notifications/<int:pk>/", views.notification_open, name="notification-open"),
    path("projects/<int:pk>/plan-handover/", views.plan_handover, name="plan"),
    path("handovers/", views.handover_list, name="list"),
    path("handovers/<int:pk>/", views.handover_detail, name="detail"),
    # The activity log's older entries, and a decision's frozen checklist, loaded on demand (GET; before the moves).
    path("handovers/<int:pk>/activity/", views.handover_activity, name="activity"),
    path("handovers/<int:pk>/comments/", views.handover_comments, name="comments"),
    path("handovers/<int:pk>/decisions/<int:decision_id>/", views.handover_decision, name="decision"),
    path("handovers/<int:pk>/accept-with-conditions/", views.accept_with_conditions, name="accept-with-conditions"),
    # submit, accept, return, start-hypercare, complete, cancel, comment
    path("handovers/<int:pk>/<slug:action>/", views.handover_move, name="move"),
    # complete, verify, send-back, waive, approve-waiver, not-applicable, reopen, evidence, comment
    path("items/<int:pk>/<slug:action>/", views.item_action, name="item-action"),
    path("conditions/<int:pk>/met/", views.condition_met, name="condition-met"),
    # acknowledge, snooze
    path("stalls/<int:pk>/<slug:action>/", views.stall_action, name="stall-action"),
]
