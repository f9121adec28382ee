"""Server-rendered dashboard pages: the organization picker and one organization's dashboard.

The pages only frame the dashboard; every number on them is fetched by dashboard.js from the
JSON API, so the page and the API can never disagree. Authorization uses the cached principal
(no user/membership queries), like the API.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import views as staticfiles_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from . import queries, selectors
from .http import principal_from_request
from .models import ALERT_MANAGER_ROLES, Organization


@require_GET
def org_picker(request: HttpRequest) -> HttpResponse:
    principal = principal_from_request(request)
    if principal is None:
        return redirect_to_login(request.get_full_path())
    organizations = selectors.organizations_for_user(memberships=principal.roles)
    if len(organizations) == 1:
        return redirect("dashboard", org_id=organizations[0]["id"])
    return render(request, "stats/org_picker.html", {"organizations": organizations})


@require_GET
def dashboard(request: HttpRequest, org_id: uuid.UUID) -> HttpResponse:
    principal = principal_from_request(request)
    if principal is None:
        return redirect_to_login(request.get_full_path())
    role = principal.role_in(org_id)
    if role is None:
        raise Http404("organization not found")  # 404, not 403: do not reveal that it exists
    organization = Organization.objects.filter(id=org_id).values("id", "name", "timezone").first()
    if organization is None:
        raise Http404("organization not found")
    config = {
        "orgId": str(org_id),
        "role": role,
        "canManageAlerts": role in ALERT_MANAGER_ROLES,
        "apiBase": f"/api/orgs/{org_id}",
        "wsPath": f"/ws/orgs/{org_id}/",
        "pickerUrl": reverse("org-picker"),
        # What the page loads and what it loads again on each event: the query catalogue's.
        "queries": {query.name: query.path for query in queries.QUERIES if query.on_page},
        "refetch": queries.page_refetch(),
        "patches": queries.page_patches(),
    }
    return render(
        request,
        "stats/dashboard.html",
        {"organization": organization, "role": role, "config": config, "several_orgs": len(principal.roles) > 1},
    )


def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """The app's own JS/CSS through the staticfiles finders, also with DEBUG off: the dashboard
    is served by daphne/gunicorn alone (no collectstatic, no separate web server)."""
    return staticfiles_views.serve(request, path, insecure=True)
