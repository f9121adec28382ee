"""Project-level endpoints: /metrics (optionally token-protected) and JSON error pages for the API."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views import csrf, defaults
from django_prometheus.exports import ExportToDjangoView


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "")
        if not constant_time_compare(supplied, f"Bearer {token}"):
            return JsonResponse({"error": "metrics token required"}, status=401)
    return ExportToDjangoView(request)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path in {"/health", "/metrics"}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": "not found"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": "bad request"}, status=400)
    return defaults.bad_request(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": "CSRF check failed", "reason": reason}, status=403)
    return csrf.csrf_failure(request, reason=reason)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": "internal error"}, status=500)
    return defaults.server_error(request)
