"""The cached values' one serializer: compact JSON with Django's formats for what JSON has no type
for, as the API answered before it was orjson (a dashboard parses the same values)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from stats.services import json_bytes


def test_times_decimals_and_ids_keep_djangos_formats():
    unit = uuid.UUID("6f1c2f9e-3d4b-4a5c-9e8f-0a1b2c3d4e5f")
    value = {
        "lastUpdated": datetime(2026, 12, 7, 13, 15, 42, 123456, tzinfo=UTC),
        "day": date(2026, 12, 7),
        "limit": Decimal("8.50"),
        "unitId": unit,
        "compliancePercentage": 97.25,
        "none": None,
    }
    assert json_bytes(value) == (
        b'{"lastUpdated":"2026-12-07T13:15:42.123Z","day":"2026-12-07","limit":"8.50",'
        b'"unitId":"6f1c2f9e-3d4b-4a5c-9e8f-0a1b2c3d4e5f","compliancePercentage":97.25,"none":null}'
    )


def test_the_same_json_as_the_standard_librarys_but_for_non_ascii_sent_as_utf8():
    value = {"name": "Kühlraum 3", "points": [{"temperature": -18.5, "min": -19.0}], 7: "a number as a key"}
    encoded = json_bytes(value)
    assert b"K\xc3\xbchlraum" in encoded
    assert json.loads(encoded) == json.loads(json.dumps(value))
