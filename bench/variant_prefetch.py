"""Experiment only (BENCH_VARIANT=mget-principal-and-value): one Redis round trip fewer per request.

On GET /api/orgs/<id>/stats both cache keys the request will read, the principal's and the
value's, are known once the session is loaded; this middleware fetches them with one MGET and
serves stats.cache.read_through from that for the rest of the request. It estimates what the
change would gain if built into stats/cache.py and stats/http.py; it is not that change.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse

from stats import cache
from stats.cache import CACHE_HIT, QueryType, cache_key, principal_key, query_type_of

STATS_PATH = re.compile(r"^/api/orgs/([0-9a-f-]{36})/stats$")
_prefetched = threading.local()
_original_read_through = cache.read_through


def _read_through(key: str, compute: Callable[[], bytes]) -> bytes:
    value = getattr(_prefetched, "values", {}).pop(key, None)
    if value is not None:
        CACHE_HIT.labels(query_type_of(key)).inc()
        return value
    return _original_read_through(key, compute)


cache.read_through = _read_through


class PrefetchMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = STATS_PATH.match(request.path)
        _prefetched.values = {}
        if match and "refresh" not in request.GET:
            user_id = request.session.get(SESSION_KEY)
            if user_id is not None:
                keys = [principal_key(int(user_id)), cache_key(QueryType.STATS, uuid.UUID(match.group(1)))]
                client = cache._client()
                _prefetched.values = dict(zip(keys, client.mget(keys), strict=True))
        try:
            return self.get_response(request)
        finally:
            _prefetched.values = {}
