"""What each source of a temperature says about one frame: readings, a probe fault, uncertainty,
or nothing. `extract` weighs them against each other."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from .catalogue import DEFAULT_RANGE, DeviceModel, ReadingsLayout
from .envelope import parse_timestamp
from .paths import find
from .values import UnitConflict, celsius, finite, quantity

# Generic keys and the unit each declares; None: °C by convention unless the value says otherwise.
GENERIC_KEYS = {"temperature": None, "temp": None, "temperature_c": "C", "temperature_f": "F"}
CAYENNE_TEMPERATURE = re.compile(r"temperature_\d{1,3}")


@dataclass(frozen=True)
class Found:
    """What one source says: readings (value °C, own time or None), or a fault, or uncertainty,
    or nothing at all (`absent`)."""

    values: list[tuple[float, datetime | None]] = field(default_factory=list)
    fault: str = ""
    uncertain: str = ""

    @property
    def absent(self) -> bool:
        return not (self.values or self.fault or self.uncertain)


def _sentinel(raw: object, model: DeviceModel | None) -> bool:
    """One of the model's "no reading" values, compared as the decoder wrote it (its own unit)."""
    if model is None:
        return False
    number = quantity(raw)
    for sentinel in model.no_reading:
        if isinstance(sentinel, str) and raw == sentinel:
            return True
        if not isinstance(sentinel, str) and number is not None and abs(number.value - sentinel) < 1e-9:
            return True
    return False


def _check(value: float, where: str, model: DeviceModel | None) -> Found:
    """A fault when the temperature lies outside the sensor's physical range."""
    low, high = model.range if model is not None else DEFAULT_RANGE
    if not low <= value <= high:
        return Found(fault=f"{where} = {value:g} °C is outside the sensor's range {low:g}..{high:g} °C")
    return Found(values=[(value, None)])


def one(data: object, path: str, unit: str | None, model: DeviceModel | None, *, bare: str | None = None) -> Found:
    """The single temperature at `path`, in °C (`unit` as declared for it, `bare` by convention)."""
    found = find(data, path)
    if not found:
        return Found()
    if len(found) > 1:
        return Found(uncertain=f"{path} matches {len(found)} values")
    raw = found[0]
    if _sentinel(raw, model):
        return Found(fault=f"{path} = {str(raw)[:40]}: no reading (probe missing or failed)")
    try:
        value = celsius(raw, unit, bare=bare)
    except UnitConflict as exc:
        return Found(uncertain=f"{path}: {exc}")
    if value is None and model is not None and quantity(raw) is None:
        # The catalogued path holds no number (null, "error"): the sensor reported no reading.
        return Found(fault=f"{path} = {str(raw)[:40]!r}: no reading")
    if value is None:
        return Found(uncertain=f"{path} = {str(raw)[:40]!r} is not a temperature with a certain unit")
    return _check(value, path, model)


_MONTHS = {name: number for number, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}  # fmt: skip


def _ymd(raw: object) -> datetime | None:
    if not isinstance(raw, dict):
        return None
    month = raw.get("month")
    month = _MONTHS.get(month.lower()) if isinstance(month, str) else month
    parts = [raw.get("year"), month, raw.get("day"), raw.get("hours", 0), raw.get("minutes", 0), raw.get("seconds", 0)]
    if not all(isinstance(part, int) and not isinstance(part, bool) for part in parts):
        return None
    try:
        return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]
    except ValueError:
        return None


def _time(raw: object, time_format: str) -> datetime | None:
    if time_format == "iso":
        return parse_timestamp(raw)
    if time_format == "iso_utc":
        return parse_timestamp(f"{raw}Z") if isinstance(raw, str) and len(raw) < 40 else None
    if time_format == "ymd":
        return _ymd(raw)
    number = finite(raw) if not isinstance(raw, str) else (quantity(raw).value if quantity(raw) else None)
    if number is None:
        return None
    seconds = number / 1000 if time_format == "unix_ms" else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _layout(data: dict, layout: ReadingsLayout, model: DeviceModel, received_at: datetime) -> Found:
    elements = find(data, layout.path)
    values: list[tuple[float, datetime | None]] = []
    faults: list[str] = []
    for index, element in enumerate(elements):
        found = one(element, layout.temperature, model.unit, model)
        if found.uncertain:
            return found
        if found.fault:
            faults.append(found.fault)
            continue
        if found.absent:
            continue
        if layout.spacing_seconds is not None:
            at = received_at - timedelta(seconds=layout.spacing_seconds * (len(elements) - 1 - index))
        else:
            times = find(element, layout.time or "")
            at = _time(times[0], layout.time_format) if len(times) == 1 else None
            if at is None:
                return Found(uncertain=f"{layout.path} element {index} has no readable {layout.time}")
        values.append((found.values[0][0], at))
    if not values and faults:
        return Found(fault=faults[-1])
    return Found(values=values)


def _flagged(data: dict, model: DeviceModel) -> str:
    """Why the model's own flags say the probe failed, or ""."""
    if model.fault_when:
        for value in find(data, model.fault_when):
            if value not in (None, False, "", 0):
                return f"{model.fault_when} = {str(value)[:40]}: the sensor reports a probe failure"
    if model.valid_when and any(value is False for value in find(data, model.valid_when)):
        return f"{model.valid_when} is false: the probe's value means nothing"
    return ""


def from_model(data: dict, model: DeviceModel, received_at: datetime, channel: str | None = None) -> Found:
    """`channel`: the probe staff chose, one of the model's `channels`."""
    if model.channels and channel is None:
        if not any(find(data, path) for path in model.channels):
            return Found()
        return Found(uncertain=f"{model.name} has several probes ({', '.join(model.channels)}): "
                      "choose one in the device's temperature override")  # fmt: skip
    flagged = _flagged(data, model)
    if flagged:
        return Found(fault=flagged)
    if (
        model.unit_note
        and channel is None
        and any(find(data, p) for p in (model.temperature, model.readings and model.readings.path) if p)
    ):
        return Found(uncertain=f"{model.name}: its unit is not certain ({model.unit_note}); "
                      "set the device's temperature override with the unit")  # fmt: skip
    temperature = channel or model.temperature
    values: list[tuple[float, datetime | None]] = []
    if model.readings is not None:
        layout = model.readings
        if channel and layout.temperature in model.channels:  # history records keyed by channel
            layout = replace(layout, temperature=channel)
        listed = _layout(data, layout, model, received_at)
        if listed.uncertain or listed.fault:
            return listed
        values += listed.values
    if temperature:
        current = one(data, temperature, model.unit, model)
        if current.uncertain or current.fault:
            return current
        if current.absent and not values and model.external_probe and model.housing and find(data, model.housing):
            # The housing reports and the probe does not: the probe is unplugged or broken, and
            # the housing's value is the room's, never the product's.
            return Found(fault=f"{temperature} missing while {model.housing} reports: probe not connected")
        times = find(data, model.time) if current.values and model.time else []
        if times:  # a frame without it is a live reading, at its reception time
            at = _time(times[0], model.time_format) if len(times) == 1 else None
            if at is None:
                return Found(uncertain=f"{model.time} is not a readable time")
            current = Found(values=[(current.values[0][0], at)])
        values += current.values
    return Found(values=values)


def from_normalized(measurements: list[dict]) -> Found:
    values: list[tuple[float, datetime | None]] = []
    for measurement in measurements:
        air = measurement.get("air")
        raw = air.get("temperature") if isinstance(air, dict) else None
        if raw is None:
            continue
        value = finite(raw)
        if value is None:
            return Found(uncertain="normalized_payload air.temperature is not a number")
        at = parse_timestamp(measurement["time"]) if "time" in measurement else None
        checked = _check(value, "normalized air.temperature", None)
        if checked.fault:
            return checked
        values.append((value, at))
    times = [at for _, at in values]
    if len(values) > 1 and (None in times or len(set(times)) < len(times)):
        return Found(uncertain="normalized_payload has several air temperatures for one time (indoor and outdoor?)")
    return Found(values=values)


def temperature_like(data: object, skip: set[str], depth: int = 0) -> list[str]:
    """Keys anywhere in the payload that look like another temperature (numeric, named *temp*)."""
    found: list[str] = []
    if depth > 4:
        return found
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in list(items)[:100]:
        name = str(key)
        if "temp" in name.lower() and name not in skip and quantity(value) is not None:
            found.append(name)
        elif isinstance(value, dict | list):
            found += temperature_like(value, skip, depth + 1)
    return found


def from_generic(data: dict) -> Found:
    """The generic keys, and The Things Stack's CayenneLPP formatter (`temperature_<channel>`, °C)."""
    matched = {key: GENERIC_KEYS[key.lower()] for key in data if key.lower() in GENERIC_KEYS}
    channels = [key for key in data if CAYENNE_TEMPERATURE.fullmatch(key)]
    if len(channels) > 1:
        return Found(uncertain=f"CayenneLPP channels {', '.join(channels[:4])}: choose one in the device's override")
    matched |= dict.fromkeys(channels, "C")  # CayenneLPP's temperature type is °C
    others = temperature_like(data, set(matched))
    if not matched:
        return Found(uncertain=f"no known key; {', '.join(others[:4])} look like temperatures") if others else Found()
    if others:
        return Found(uncertain=f"{', '.join(sorted(matched))} beside {', '.join(others[:4])}: which is the product?")
    readings = [one(data, key, unit, None, bare="C") for key, unit in matched.items()]
    for found in readings:
        if found.uncertain or found.fault:
            return found
    values = {round(found.values[0][0], 3) for found in readings}
    if len(values) > 1:
        return Found(uncertain=f"{', '.join(sorted(matched))} disagree")
    return readings[0]
