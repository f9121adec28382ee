"""Hostile input to POST /api/webhooks/ttn: never a 500, always a JSON error, nothing half-written."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from stats.models import Alert, Device, TemperatureReading, Unit
from tests.realtime.conftest import uplink
from tests.security.conftest import World

FUZZ = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)

# JSON of any type, including NaN/Infinity (json.dumps writes them as bare literals), unicode and big ints.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
long_strings = st.sampled_from(["x" * 5000, "é" * 3000, "\u202e" * 100, "\x00" * 50, "🧊" * 1000])


def field(plausible: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes any JSON at all."""
    return plausible | json_values | long_strings


def timestamps() -> st.SearchStrategy:
    return st.sampled_from(
        [
            "2020-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+00:00",
            "yesterday",
            "",
            "2024-13-45T99:00",
        ]
    ) | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())


def ttn_shaped(world: World) -> st.SearchStrategy:
    dev_euis = st.sampled_from(
        [
            world.device.dev_eui,
            world.device.dev_eui.lower(),
            world.other_device.dev_eui,
            "FFFFFFFFFFFFFFFF",
            "",
            "0" * 17,
            "GGGGGGGGGGGGGGGG",
        ]
    )
    numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(2**63), max_value=2**63)
    payload = st.fixed_dictionaries(
        {},
        optional={
            "temperature": field(numbers),
            "temp": field(numbers),
            "temperature_c": field(numbers),
            "temperature_f": field(numbers),
            "battery": field(numbers),
            "humidity": field(numbers),
        },
    )
    message = st.fixed_dictionaries(
        {},
        optional={
            "f_cnt": field(st.integers(min_value=-5, max_value=2**40)),
            "decoded_payload": field(payload),
            "rx_metadata": field(st.lists(st.fixed_dictionaries({}, optional={"rssi": field(numbers)}), max_size=20)),
            "received_at": field(timestamps()),
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "end_device_ids": field(st.fixed_dictionaries({}, optional={"dev_eui": field(dev_euis)})),
            "received_at": field(timestamps()),
            "uplink_message": field(message),
        },
    )


def valid_body(world: World) -> bytes:
    """One fixed valid uplink per test (hypothesis needs the same strategy bounds on every example)."""
    if not hasattr(world, "valid_body"):
        world.valid_body = json.dumps(uplink(world.device.dev_eui, 4.0, f_cnt=7)).encode()
    return world.valid_body


def _state() -> tuple:
    return (
        TemperatureReading.objects.count(),
        Alert.objects.count(),
        list(Unit.objects.order_by("id").values_list()),
        list(Device.objects.order_by("id").values_list()),
    )


def post_and_check(world: World, body: bytes, *, secret: str | None = None, content_type: str = "application/json"):
    """The three properties; a 500 raises inside the test client with its traceback."""
    before = _state()
    response = Client().post(
        "/api/webhooks/ttn",
        data=body,
        content_type=content_type,
        HTTP_X_WEBHOOK_SECRET=world.org.webhook_secret if secret is None else secret,
    )
    assert response.status_code < 500, (response.status_code, body[:300])
    if response.status_code != 200:
        assert response["Content-Type"] == "application/json"
        assert isinstance(response.json()["error"], str)
        assert _state() == before, f"rejected ({response.status_code}) but state changed: {body[:300]!r}"
    return response


@FUZZ
@given(data=st.data())
def test_ttn_shaped_payloads_with_random_types_are_answered_without_500_or_partial_writes(world, data):
    document = data.draw(ttn_shaped(world))
    post_and_check(world, json.dumps(document, allow_nan=True).encode())


@FUZZ
@given(data=st.data())
def test_random_bytes_and_truncations_of_a_valid_payload_are_refused_cleanly(world, data):
    valid = valid_body(world)
    body = data.draw(
        st.binary(max_size=2000)
        | st.integers(min_value=0, max_value=len(valid) - 1).map(lambda n: valid[:n])
        | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
    response = post_and_check(world, body)
    assert response.status_code != 200 or json.loads(body) is not None  # only a whole document can be stored


# Bare literals put in place of each numeric field. The integers beyond the float range and over
# Python's 4300-digit limit, and the 300-digit f_cnt (an uplink_id over 200 chars), were 500s.
LITERALS = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e308",
    "4.9e-324",
    "-0",
    "0",
    "1e2",
    "100.0000001",
    "-100.0000001",
    "9" * 300 + ".0",
    "0x10",
    "4,2",
    "4.2.1",
    "+4",
    ".5",
    "true",
    "null",
    '"4.2"',
    "[4.2]",
    '{"value": 4.2}',
    "",
    "1" * 300,
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "1" * 5000,
    str(2**32),
    str(2**63),
]


@pytest.mark.parametrize("key", ["temperature", "battery", "rssi", "f_cnt"])
@pytest.mark.parametrize("literal", LITERALS)
def test_boundary_number_literals_in_every_numeric_field_never_500(world, literal, key):
    body = valid_body(world).decode()
    old = {"temperature": '"temperature": 4.0', "battery": '"battery": 3.6', "rssi": '"rssi": -71'}.get(key)
    if old is None:
        old = '"f_cnt": 7'
    post_and_check(world, body.replace(old, f'"{key}": {literal}', 1).encode())


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_deeply_nested_documents_are_refused_without_500(world, depth):
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        body = (opener * depth + "1" + closer * depth).encode()
        response = post_and_check(world, body)
        assert response.status_code in (400, 413, 422)


def test_a_body_over_the_limit_is_413_even_when_content_length_lies(world):
    big = valid_body(world) + b" " * settings.WEBHOOK_MAX_BODY_BYTES
    assert post_and_check(world, big).status_code == 413
    before = _state()
    response = Client().generic(
        "POST",
        "/api/webhooks/ttn",
        big,
        content_type="application/json",
        HTTP_X_WEBHOOK_SECRET=world.org.webhook_secret,
        CONTENT_LENGTH="10",
    )
    assert response.status_code in (400, 413) and _state() == before
    assert "error" in response.json()


@FUZZ
@given(
    secret=st.sampled_from(["", "x", "x" * 43, "x" * 201, "' OR 1=1 --", "ü" * 50, "\x00", "%00"])
    | st.text(max_size=250)
)
def test_wrong_secrets_are_401_and_store_nothing(world, secret):
    if secret == world.org.webhook_secret:
        return
    response = post_and_check(world, valid_body(world), secret=secret)
    assert response.status_code == 401


def test_another_organizations_secret_cannot_store_a_reading_for_this_device(world):
    assert post_and_check(world, valid_body(world), secret=world.other.webhook_secret).status_code == 403


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_odd_content_types_do_not_change_the_answer(world, content_type):
    assert post_and_check(world, b"{not json", content_type=content_type).status_code == 400


def test_a_300_digit_frame_counter_is_refused_not_stored(world):
    body = json.dumps(uplink(world.device.dev_eui, 4.0, f_cnt=10**300)).encode()
    assert post_and_check(world, body).status_code == 422
