"""The cached values' one serializer, for values computed from the database and values updated in
place alike, so the two are byte for byte the same: compact JSON by orjson (about ten times
faster than the standard library's on a 96-point trend), with Django's formats for what JSON has
no type for (times as ISO 8601 to the millisecond with "Z", decimals as strings)."""

from __future__ import annotations

import orjson
from django.core.serializers.json import DjangoJSONEncoder

_DJANGO_JSON = DjangoJSONEncoder()
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_bytes(value: object) -> bytes:
    return orjson.dumps(value, default=_DJANGO_JSON.default, option=_OPTIONS)
