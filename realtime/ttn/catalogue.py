"""The device-model catalogue: where each known sensor model puts the product temperature.

One TOML file per vendor in `catalogue/`, one table per model, keyed by the ids The Things Stack
sends in `uplink_message.version_ids` (`brand_id` is the file name, `model_id` the table). Each
entry is data read from the model's codec in The Things Network's Device Repository; how to add
one: docs/sensors.md. Entries are checked when loaded: a typo fails start-up and the tests, not
an uplink.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .paths import PathError, compile_path

CATALOGUE_DIR = Path(__file__).with_name("catalogue")
# "object": the value carries its unit ({value, unit}); "unknown": the sources disagree (say why in
# unit_note): nothing is stored until staff set the device's override with its unit.
TEMPERATURE_UNITS = ("C", "F", "K", "object", "unknown")
BATTERY_UNITS = {"V": ("V", 1.0), "mV": ("V", 0.001), "%": ("%", 1.0)}
# unix: seconds; unix_ms; iso: ISO 8601 with its zone; iso_utc: ISO 8601 that the decoder writes
# in UTC without saying so; ymd: {year, month (number or English name), day, hours, minutes, seconds}, UTC.
TIME_FORMATS = ("unix", "unix_ms", "iso", "iso_utc", "ymd")
# Physically plausible for a cold-chain probe when the catalogue does not say: anything outside
# is a decoder or probe failure, not a temperature.
DEFAULT_RANGE = (-100.0, 100.0)

_MODEL_KEYS = {
    "name", "codec", "temperature", "channels", "unit", "housing", "no_reading", "range", "fault_when",
    "valid_when", "time", "time_format", "humidity", "battery", "battery_unit", "readings", "external_probe",
    "unit_note",
}  # fmt: skip
_READINGS_KEYS = {"path", "temperature", "time", "time_format", "spacing_seconds"}


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True)
class ReadingsLayout:
    """Frames that carry several readings: where the list is and what each element holds."""

    path: str
    temperature: str
    time: str | None = None
    time_format: str = "unix"
    spacing_seconds: int | None = None


@dataclass(frozen=True)
class DeviceModel:
    brand_id: str
    model_id: str
    name: str
    codec: str
    temperature: str | None  # the product temperature's path (the probe where there is one)
    channels: tuple[str, ...]  # several probes: staff choose one (the device's override)
    unit: str | None  # C, F or K; None: the value carries its unit ({value, unit} or "4 °C")
    unit_note: str  # why the unit is not certain ("unknown"): the model needs the device override
    housing: str | None  # the housing's own sensor: the room's temperature, never the product's
    external_probe: bool  # the temperature is a plugged probe: housing without probe = probe missing
    no_reading: tuple[float | str, ...]  # what the decoder writes when the probe gives no reading
    range: tuple[float, float]
    fault_when: str | None  # a path whose true or non-empty value says the probe failed
    valid_when: str | None  # a path whose false value says the probe's value means nothing
    time: str | None  # the single reading's own time, when the frame carries one
    time_format: str
    humidity: str | None
    battery: str | None
    battery_unit: str | None  # V or %, what the column stores
    battery_factor: float
    readings: ReadingsLayout | None

    @property
    def key(self) -> str:
        return f"{self.brand_id}/{self.model_id}"


def _path(entry: dict, name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: {name} must be a path string")
    try:
        compile_path(value)
    except PathError as exc:
        raise CatalogueError(f"{where}: {name}: {exc}") from None
    return value


def _readings(raw: object, where: str) -> ReadingsLayout | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - _READINGS_KEYS:
        raise CatalogueError(f"{where}.readings: unknown keys {sorted(set(raw) - _READINGS_KEYS)}")
    path, temperature = _path(raw, "path", where), _path(raw, "temperature", where)
    if path is None or temperature is None:
        raise CatalogueError(f"{where}.readings needs path and temperature")
    time_format = raw.get("time_format", "unix")
    spacing = raw.get("spacing_seconds")
    if time_format not in TIME_FORMATS:
        raise CatalogueError(f"{where}.readings: time_format must be one of {TIME_FORMATS}")
    if (raw.get("time") is None) == (spacing is None):
        raise CatalogueError(f"{where}.readings needs exactly one of time and spacing_seconds")
    if spacing is not None and (not isinstance(spacing, int) or spacing <= 0):
        raise CatalogueError(f"{where}.readings: spacing_seconds must be a positive integer")
    return ReadingsLayout(path, temperature, _path(raw, "time", where), time_format, spacing)


def _model(brand_id: str, model_id: str, entry: dict) -> DeviceModel:
    where = f"{brand_id}/{model_id}"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where} must be a table")
    unknown = set(entry) - _MODEL_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
    channels = entry.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise CatalogueError(f"{where}: channels must be a list of paths")
    for index, channel in enumerate(channels):
        _path({"channel": channel}, "channel", f"{where}.channels[{index}]")
    temperature = _path(entry, "temperature", where)
    readings = _readings(entry.get("readings"), where)
    if bool(temperature) + bool(channels) + bool(readings) == 0:
        raise CatalogueError(f"{where} needs temperature, channels or readings")
    if temperature and channels:
        raise CatalogueError(f"{where}: temperature and channels exclude each other")
    unit = entry.get("unit", "C")
    if unit not in TEMPERATURE_UNITS:
        raise CatalogueError(f"{where}: unit must be one of {TEMPERATURE_UNITS}")
    unit_note = entry.get("unit_note", "")
    if (unit == "unknown") != bool(unit_note):
        raise CatalogueError(f'{where}: unit = "unknown" goes with unit_note (why), and only with it')
    no_reading = entry.get("no_reading", [])
    if not isinstance(no_reading, list) or not all(isinstance(v, int | float | str) for v in no_reading):
        raise CatalogueError(f"{where}: no_reading must be a list of numbers or strings")
    time_format = entry.get("time_format", "unix")
    if time_format not in TIME_FORMATS:
        raise CatalogueError(f"{where}: time_format must be one of {TIME_FORMATS}")
    low, high = entry.get("range", DEFAULT_RANGE)
    if not low < high:
        raise CatalogueError(f"{where}: range must be [low, high]")
    battery = _path(entry, "battery", where)
    battery_unit = entry.get("battery_unit")
    if (battery is None) != (battery_unit is None) or (battery_unit and battery_unit not in BATTERY_UNITS):
        raise CatalogueError(f"{where}: battery needs battery_unit, one of {sorted(BATTERY_UNITS)}")
    stored_unit, factor = BATTERY_UNITS[battery_unit] if battery_unit else (None, 1.0)
    return DeviceModel(
        brand_id=brand_id,
        model_id=model_id,
        name=str(entry.get("name") or where),
        codec=str(entry.get("codec", "")),
        temperature=temperature,
        channels=tuple(channels),
        unit=None if unit in ("object", "unknown") else unit,
        unit_note=str(unit_note),
        housing=_path(entry, "housing", where),
        external_probe=entry.get("external_probe") is True,
        no_reading=tuple(v if isinstance(v, str) else float(v) for v in no_reading),
        range=(float(low), float(high)),
        fault_when=_path(entry, "fault_when", where),
        valid_when=_path(entry, "valid_when", where),
        time=_path(entry, "time", where),
        time_format=time_format,
        humidity=_path(entry, "humidity", where),
        battery=battery,
        battery_unit=stored_unit,
        battery_factor=factor,
        readings=readings,
    )


@cache
def models() -> dict[tuple[str, str], DeviceModel]:
    """Every catalogued model by (brand_id, model_id), loaded once."""
    found: dict[tuple[str, str], DeviceModel] = {}
    for file in sorted(CATALOGUE_DIR.glob("*.toml")):
        with file.open("rb") as handle:
            try:
                tables = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise CatalogueError(f"{file.name}: {exc}") from None
        for model_id, entry in tables.items():
            model = _model(file.stem, model_id, entry)
            found[(model.brand_id, model.model_id)] = model
    return found


def lookup(brand_id: str | None, model_id: str | None) -> DeviceModel | None:
    if not brand_id or not model_id:
        return None
    return models().get((brand_id.lower(), model_id.lower()))
