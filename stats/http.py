"""Small helpers shared by the JSON views: error bodies and the membership check."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare

from . import cache
from .services import Principal, principal_get


def json_error(status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def json_raw(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json")


def _session_user_id(request: HttpRequest) -> int | None:
    session = request.session
    raw_id = session.get(SESSION_KEY)
    if raw_id is None or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        return int(raw_id)
    except (TypeError, ValueError):
        return None


def _checked(request: HttpRequest, user_id: int) -> Principal | None:
    principal = principal_get(user_id=user_id)
    if principal is None or not principal.is_active:
        return None
    if not constant_time_compare(request.session.get(HASH_SESSION_KEY) or "", principal.session_hash):
        return None
    return principal


def principal_from_request(request: HttpRequest) -> Principal | None:
    """The signed-in user from the session, checked like Django's get_user() but without
    loading the user from the database: the principal is cached (and invalidated on change)."""
    user_id = _session_user_id(request)
    return None if user_id is None else _checked(request, user_id)


ReadsFor = Callable[..., list[str]]


def member_required(view: Callable[..., HttpResponse] | None = None, *, reads: ReadsFor | None = None):
    """401 for anonymous callers; 404 (not 403: do not reveal it exists) for non-members.

    `reads(org_id, **view_kwargs)` names the cache keys the view will read: they are fetched
    together with the principal in one round trip, and used only once the check has passed.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, org_id: uuid.UUID, *args: object, **kwargs: object) -> HttpResponse:
            user_id = _session_user_id(request)
            if user_id is None:
                return json_error(401, "authentication required")
            ahead = [cache.principal_key(user_id), *(reads(org_id, **kwargs) if reads else [])]
            with cache.read_ahead(ahead):
                principal = _checked(request, user_id)
                if principal is None:
                    return json_error(401, "authentication required")
                role = principal.role_in(org_id)
                if role is None:
                    return json_error(404, "organization not found")
                request.principal = principal  # type: ignore[attr-defined]
                request.org_role = role  # type: ignore[attr-defined]
                return view(request, org_id, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
