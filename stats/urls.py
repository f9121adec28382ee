from django.urls import path

from . import views

urlpatterns = [
    path("orgs/", views.organization_list, name="api-orgs"),
    path("orgs/<uuid:org_id>/units", views.unit_list, name="api-units"),
    path("orgs/<uuid:org_id>/stats", views.organization_stats, name="api-stats"),
    path("orgs/<uuid:org_id>/units/status", views.unit_status, name="api-unit-status"),
    path("orgs/<uuid:org_id>/alerts", views.alert_list, name="api-alerts"),
    path("orgs/<uuid:org_id>/alerts/count", views.alert_counts, name="api-alert-counts"),
    path("orgs/<uuid:org_id>/units/<uuid:unit_id>/trends", views.temperature_trends, name="api-trends"),
    path("orgs/<uuid:org_id>/devices/online", views.devices_online, name="api-devices-online"),
]
