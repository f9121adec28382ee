"""Small helpers shared by the JSON views: error bodies and the membership check."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
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


def session_user_id(session: Mapping[str, object]) -> int | None:
    """The user a session is signed in as, if it names one through a configured backend."""
    raw_id = session.get(SESSION_KEY)
    if raw_id is None or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        return int(raw_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def session_principal(session: Mapping[str, object], principal: Principal | None) -> Principal | None:
    """`principal` if the session may act as it: active, and the session's hash still matches
    (a password change signs every other session out, as Django's get_user() does)."""
    if principal is None or not principal.is_active:
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not constant_time_compare(session_hash if isinstance(session_hash, str) else "", principal.session_hash):
        return None
    return principal


def _session_user_id(request: HttpRequest) -> int | None:
    return session_user_id(request.session)


def _checked(request: HttpRequest, user_id: int) -> Principal | None:
    return session_principal(request.session, principal_get(user_id=user_id))


def principal_from_request(request: HttpRequest) -> Principal | None:
    """The signed-in user from the session, checked like Django's get_user() but without
    loading the user from the database: the principal is cached (and invalidated on change)."""
    user_id = _session_user_id(request)
    return None if user_id is None else _checked(request, user_id)


ReadsFor = Callable[..., list[str]]


def member_required(
    view: Callable[..., HttpResponse] | None = None, *, reads: ReadsFor | None = None, fast_path: bool = False
):
    """401 for anonymous callers; 404 (not 403: do not reveal it exists) for non-members.

    `reads(org_id, **view_kwargs)` names the cache keys the view will read: they are fetched
    together with the principal in one round trip, and used only once the check has passed.
    `fast_path=True` declares that, for a GET without a query string, the response is exactly the
    cached bytes of the first key `reads` names: `stats.fast_path` may then serve a hit without
    running the view (`view.fast_path_key(**url_kwargs)` gives the key).
    """
    if fast_path and reads is None:
        raise TypeError("fast_path needs `reads` to name the key the response is")

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

        if fast_path:
            wrapper.fast_path_key = lambda **url_kwargs: reads(**url_kwargs)[0]  # type: ignore[attr-defined]
        return wrapper

    return decorate(view) if view is not None else decorate
