from django.urls import path

from .consumers import OrganizationConsumer

websocket_urlpatterns = [
    path("ws/orgs/<uuid:org_id>/", OrganizationConsumer.as_asgi()),
]
