from django.conf import settings
from django.urls import path, re_path

from . import pages

urlpatterns = [
    path("", pages.org_picker, name="org-picker"),
    path("orgs/<uuid:org_id>/", pages.dashboard, name="dashboard"),
    re_path(rf"^{settings.STATIC_URL.strip('/')}/(?P<path>.+)$", pages.static_file, name="static-file"),
]
