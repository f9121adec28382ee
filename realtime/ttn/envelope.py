"""The TTN v3 uplink envelope (`end_device_ids`, `uplink_message`, ...), validated without
touching the database. What The Things Stack never sends (not JSON, not an object, a malformed
DevEUI, a clock far off) is refused here; everything else becomes an `Envelope`, whatever its
payload holds (that is `extract`'s business).

The Things Stack omits empty fields (0, "", false): a device's first uplink has no `f_cnt`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .values import finite

DEV_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_FRACTION = re.compile(r"(\.\d{6})\d+")  # TTN sends nanoseconds; datetime takes microseconds
# Envelopes stamped this far from the server's clock are refused: a network server's reception
# time is never that far off, and a state machine fed such times would lie.
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=7)


class EnvelopeError(Exception):
    """Not an uplink The Things Stack would send: answered with `status` and `message`."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Envelope:
    dev_eui: str  # upper case; "" for a device registered without one (ABP)
    f_cnt: int
    received_at: datetime  # when the network received it: a single reading's time
    rssi: int | None
    brand_id: str | None
    model_id: str | None
    f_port: int | None
    decoded: dict | None  # `decoded_payload`; None when no payload formatter ran or it failed
    decode_errors: list[str]
    normalized: list[dict] | None  # `normalized_payload`: one element per measurement
    message_type: str  # "uplink_message", or the other message type TTN sent to this URL
    raw: dict  # the whole body, kept as received for uplinks that are not stored

    @property
    def uplink_id(self) -> str:
        """Idempotency key of the frame's one reading: TTN's retries carry the same one."""
        return f"{self.dev_eui}:{self.f_cnt}:{self.received_at.isoformat()}"


def parse_timestamp(raw: object) -> datetime | None:
    """An ISO 8601 timestamp with a timezone, else None."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", raw.replace("Z", "+00:00")))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python's extension, not JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but no database stores it
        raise ValueError(f"{text[:20]} is beyond a double")
    return value


def _object(body: bytes) -> dict:
    try:
        data = json.loads(body, parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, RecursionError):  # also UnicodeDecodeError and integers over 4300 digits
        raise EnvelopeError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise EnvelopeError(400, "body must be a JSON object")
    return data


def _dev_eui(data: dict) -> str:
    ids = data.get("end_device_ids")
    if not isinstance(ids, dict):
        raise EnvelopeError(422, "end_device_ids is missing", field="end_device_ids")
    dev_eui = ids.get("dev_eui")
    if dev_eui is None and isinstance(ids.get("device_id"), str):
        return ""  # registered without a DevEUI: nothing here can claim it
    if not isinstance(dev_eui, str) or not DEV_EUI.match(dev_eui):
        raise EnvelopeError(422, "end_device_ids.dev_eui must be 16 hex digits", field="end_device_ids.dev_eui")
    return dev_eui.upper()


def _received_at(message: dict, data: dict, now: datetime) -> datetime:
    raw = message.get("received_at", data.get("received_at"))
    if raw is None:
        return now
    parsed = parse_timestamp(raw)
    if parsed is None:
        raise EnvelopeError(422, "uplink_message.received_at must be an ISO 8601 timestamp with a timezone")
    if parsed > now + MAX_FUTURE or parsed < now - MAX_PAST:
        raise EnvelopeError(422, "received_at is too far from the server's clock", field="uplink_message.received_at")
    return parsed


def _rssi(message: dict) -> int | None:
    values = []
    metadata = message.get("rx_metadata")
    if isinstance(metadata, list):
        for gateway in metadata[:16]:
            value = finite(gateway.get("rssi")) if isinstance(gateway, dict) else None
            if value is not None and -200 <= value <= 50:
                values.append(int(value))
    return max(values) if values else None


def _ids(message: dict) -> tuple[str | None, str | None]:
    ids = message.get("version_ids")
    if not isinstance(ids, dict):
        return None, None
    brand, model = ids.get("brand_id"), ids.get("model_id")
    valid = lambda v: v if isinstance(v, str) and 0 < len(v) <= 64 else None  # noqa: E731
    return valid(brand), valid(model)


def parse_envelope(body: bytes, *, now: datetime | None = None) -> Envelope:
    now = now or datetime.now(UTC)
    data = _object(body)
    dev_eui = _dev_eui(data)
    message = data.get("uplink_message")
    if not isinstance(message, dict):
        # TTN sends other message types (join accepts, downlink events) to a webhook's URL when
        # they are switched on: not uplinks, but nothing to refuse either.
        other = next((key for key in data if key not in ("end_device_ids", "correlation_ids", "received_at")), "")
        return Envelope(dev_eui, 0, now, None, None, None, None, None, [], None, other[:40] or "unknown", data)
    f_cnt = message.get("f_cnt", 0)
    if isinstance(f_cnt, bool) or not isinstance(f_cnt, int) or not 0 <= f_cnt < 2**32:
        raise EnvelopeError(422, "uplink_message.f_cnt must be a 32-bit frame counter", field="uplink_message.f_cnt")
    f_port = message.get("f_port")
    decoded = message.get("decoded_payload")
    normalized = message.get("normalized_payload")
    if isinstance(normalized, dict):
        normalized = [normalized]
    errors = message.get("decoded_payload_warnings") if decoded is None else None
    brand_id, model_id = _ids(message)
    return Envelope(
        dev_eui=dev_eui,
        f_cnt=f_cnt,
        received_at=_received_at(message, data, now),
        rssi=_rssi(message),
        brand_id=brand_id,
        model_id=model_id,
        f_port=f_port if isinstance(f_port, int) and not isinstance(f_port, bool) else None,
        decoded=decoded if isinstance(decoded, dict) else None,
        decode_errors=[str(e)[:200] for e in errors[:5]] if isinstance(errors, list) else [],
        normalized=[m for m in normalized if isinstance(m, dict)] if isinstance(normalized, list) else None,
        message_type="uplink_message",
        raw=data,
    )
