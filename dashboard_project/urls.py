from django.contrib import admin
from django.urls import include, path

from stats.views import health

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("stats.urls")),
    path("api/", include("realtime.urls")),
    path("health", health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("", include("stats.page_urls")),
]

handler400 = "dashboard_project.views.bad_request"
handler404 = "dashboard_project.views.not_found"
handler500 = "dashboard_project.views.server_error"
