"""Web pages of the operations app."""

from django.urls import path

from . import views

app_name = "operations"

urlpatterns = [
    path("teams/", views.team_list, name="team-list"),
    path("teams/<int:pk>/", views.team_detail, name="team"),
    path("kpis/<int:pk>/readings/", views.kpi_reading_add, name="kpi-reading"),
]
