"""Cached dashboard reads served before the middleware stack: one Redis round trip, no view.

The dashboard polls five cached endpoints; on a hit their whole response is bytes already in
Redis. Through the full stack a hit costs four times a bare Django view's CPU (bench/RESULTS.md):
the middleware chain, the session, the principal and the value in sequential round trips. This
middleware runs first. For a GET without a query string on a view declared
`member_required(..., fast_path=True)` it fetches the session, the principal the session names and
the value in one Lua call (`stats.cache.read_for_session`), checks them exactly as
`member_required` does (same functions), and answers with the cached bytes. Anything else (no
cookie, miss, not a member, Redis failing, the breaker open, the lane switched off) goes down the
normal path, which decides and answers as it always did.

What the skipped middleware would have added to such a response is added here by the same
Django code: SecurityMiddleware and XFrameOptionsMiddleware headers, `Vary: Cookie` (the session
was read), Content-Length; django-prometheus's request metrics are recorded by its own
middleware methods. `tests/stats/test_fast_path.py` compares lane and normal responses.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from importlib import import_module

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.cache import patch_vary_headers
from prometheus_client import Counter

from . import cache, services
from .http import json_raw, session_principal, session_user_id
from .services import principal_from_json

# Django's session keys: 32 characters of [a-z0-9]. Anything else is not looked up here.
_SESSION_KEY = re.compile(r"[a-z0-9]{32}")

_PROMETHEUS_MIDDLEWARE = (
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
)


_FAST_PATH = Counter(
    "dashboard_fast_path_requests_total",
    "Requests to fast-path views without a query string: served from the cache before the middleware "
    "stack, or passed to the stack (miss, not signed in, not a member, Redis failing)",
    ["outcome"],
)
FAST_PATH_SERVED = _FAST_PATH.labels("served")
FAST_PATH_PASSED = _FAST_PATH.labels("passed")


@functools.lru_cache(maxsize=8192)
def _route(path: str) -> ResolverMatch | None:
    """The URL match of a fast-path view, else None. Cached: resolving walks the URLconf on
    every call, and the dashboard polls the same few paths per organization."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match if hasattr(match.func, "fast_path_key") else None


@receiver(setting_changed)
def _forget_routes(*, setting: str, **kwargs: object) -> None:
    if setting == "ROOT_URLCONF":
        _route.cache_clear()


class _RequestMetrics:
    """What django-prometheus's two middlewares record for a request, recorded for a lane hit
    (same metric objects, same labels), with the labelled children looked up once per view."""

    def __init__(self) -> None:
        from django_prometheus.middleware import Metrics

        self.metrics = Metrics.get_instance()
        self._children: dict[tuple[str, str], tuple] = {}

    def _for(self, view: str, transport: str) -> tuple:
        children = self._children.get((view, transport))
        if children is None:
            m = self.metrics
            children = (
                m.requests_by_method.labels(method="GET"),
                m.requests_by_transport.labels(transport=transport),
                m.requests_by_view_transport_method.labels(view=view, transport=transport, method="GET"),
                m.responses_by_status.labels(status="200"),
                m.responses_by_status_view_method.labels(status="200", view=view, method="GET"),
                m.responses_by_charset.labels(charset="utf-8"),
                m.requests_latency_by_view_method.labels(view=view, method="GET"),
            )
            self._children[(view, transport)] = children
        return children

    def record(self, request: HttpRequest, view: str, body_bytes: int, started: float) -> None:
        m = self.metrics
        by_method, by_transport, by_view, by_status, by_status_view, by_charset, latency = self._for(
            view, "https" if request.is_secure() else "http"
        )
        m.requests_total.inc()
        by_method.inc()
        by_transport.inc()
        if request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            m.requests_ajax.inc()
        m.requests_body_bytes.observe(0)  # a GET without a body
        by_view.inc()
        by_status.inc()
        by_status_view.inc()
        by_charset.inc()
        m.responses_body_bytes.observe(body_bytes)
        elapsed = time.perf_counter() - started
        latency.observe(elapsed)
        m.responses_total.inc()
        m.requests_latency_before.observe(elapsed)


class FastPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.enabled = self._usable()
        if self.enabled:
            prefix = import_module(settings.SESSION_ENGINE).SessionStore.cache_key_prefix
            sessions = caches[settings.SESSION_CACHE_ALIAS]
            self.session_cache_key = lambda session_key: sessions.make_key(prefix + session_key)
        self.security = SecurityMiddleware(get_response)
        self.xframe = XFrameOptionsMiddleware(get_response)
        self.metrics = _RequestMetrics() if set(_PROMETHEUS_MIDDLEWARE) <= set(settings.MIDDLEWARE) else None

    @staticmethod
    def _usable() -> bool:
        """Only where the lane answers exactly as the stack would: sessions in the cache's Redis,
        JSON-serialized, never re-saved on a read."""
        if not settings.CACHE_FAST_PATH or settings.SESSION_SAVE_EVERY_REQUEST:
            return False
        store = import_module(settings.SESSION_ENGINE).SessionStore
        return hasattr(store, "cache_key_prefix")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.enabled and request.method == "GET" and not request.META.get("QUERY_STRING"):
            match = _route(request.path_info)
            if match is not None:
                response = self._hit(request, match)
                if response is not None:
                    FAST_PATH_SERVED.inc()
                    return response
                FAST_PATH_PASSED.inc()
        return self.get_response(request)

    def _hit(self, request: HttpRequest, match: ResolverMatch) -> HttpResponse | None:
        started = time.perf_counter()
        if not cache.is_enabled():
            return None
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if session_key is None or not _SESSION_KEY.fullmatch(session_key):
            return None
        key = match.func.fast_path_key(**match.kwargs)
        fetched = cache.read_for_session(self.session_cache_key(session_key), key)
        if fetched is None:
            return None
        if fetched.session is None or fetched.principal is None or fetched.value is None:
            return None
        try:
            session = json.loads(fetched.session)
            user_id = session_user_id(session) if isinstance(session, dict) else None
            if user_id is None or user_id != fetched.principal_user_id:
                return None
            principal = session_principal(session, principal_from_json(user_id=user_id, raw=fetched.principal))
        except (ValueError, KeyError, TypeError):  # not what this code stores: let the stack decide
            return None
        if principal is None or principal.role_in(match.kwargs["org_id"]) is None:
            return None
        if self.security.process_request(request) is not None:
            return None  # an HTTPS redirect: the stack answers that
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
        except DisallowedHost:
            return None
        cache.count_hits(cache.principal_key(user_id), key)
        services.query_refresh_ahead(key, fetched.seconds_left)
        request.resolver_match = match
        value = fetched.value
        response = json_raw(value)
        patch_vary_headers(response, ("Cookie",))
        response.headers["Content-Length"] = str(len(value))
        response = self.xframe.process_response(request, self.security.process_response(request, response))
        if self.metrics is not None:
            self.metrics.record(request, match.view_name, len(value), started)
        return response
