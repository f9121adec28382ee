from django.urls import path

from . import views

urlpatterns = [
    path("webhooks/ttn", views.ttn_webhook, name="ttn-webhook"),
    path("orgs/<uuid:org_id>/alerts/<int:alert_id>/acknowledge", views.acknowledge, name="alert-acknowledge"),
    path("orgs/<uuid:org_id>/alerts/<int:alert_id>/resolve", views.resolve, name="alert-resolve"),
]
