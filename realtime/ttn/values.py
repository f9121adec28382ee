"""Numbers as decoders write them: JSON numbers, numeric strings ("4.1", "4.1 °C", "39 F"), and
`{value, unit}` objects; temperatures converted to °C only from a unit that is certain."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# The units a temperature may carry, by how decoders spell them.
_TEMPERATURE_UNITS = {
    "c": "C", "°c": "C", "degc": "C", "celsius": "C", "cel": "C", "℃": "C",
    "f": "F", "°f": "F", "degf": "F", "fahrenheit": "F", "fah": "F", "℉": "F",
    "k": "K", "kelvin": "K",
}  # fmt: skip
_NUMBER_WITH_UNIT = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].{0,15})?\s*")


class UnitConflict(ValueError):
    """The value names a unit that contradicts the one declared for its key."""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str | None  # as written next to the value, normalized where known; None when bare


def finite(value: object) -> float | None:
    """A finite JSON number (bools are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any float
        return None
    return number if math.isfinite(number) else None


def quantity(raw: object) -> Quantity | None:
    """A number with the unit written beside it, if any; None when `raw` is not a number."""
    if isinstance(raw, dict):
        inner = quantity(raw.get("value"))
        unit = raw.get("unit")
        if inner is None or (unit is not None and not isinstance(unit, str)):
            return None
        return Quantity(inner.value, _normal_unit(unit) if unit else inner.unit)
    if isinstance(raw, str):
        match = _NUMBER_WITH_UNIT.fullmatch(raw) if len(raw) <= 40 else None
        if match is None:
            return None
        number = finite(float(match.group(1)))
        if number is None:
            return None
        return Quantity(number, _normal_unit(match.group(2)) if match.group(2) else None)
    number = finite(raw)
    return None if number is None else Quantity(number, None)


def _normal_unit(unit: str) -> str:
    cleaned = unit.strip().lower().replace(" ", "")
    return _TEMPERATURE_UNITS.get(cleaned, unit.strip())


def celsius(raw: object, declared: str | None, *, bare: str | None = None) -> float | None:
    """The temperature `raw` holds, in °C. `declared` is the unit its source declares (C, F, K),
    or None when only the value itself can say; `bare` is the unit of a value that says none and
    whose source declares none (the convention of a generic key, which a written unit overrides).
    None when it is not a temperature we can read for certain; UnitConflict when the value's own
    unit contradicts the declared one."""
    found = quantity(raw)
    if found is None:
        return None
    unit = found.unit
    if declared and unit and unit != declared:
        raise UnitConflict(f"value says {unit}, its source says {declared}")
    unit = unit or declared or bare
    if unit == "C":
        return found.value
    if unit == "F":
        return (found.value - 32) * 5 / 9
    if unit == "K":
        return found.value - 273.15
    return None


def in_unit(raw: object, declared: str, accepted: dict[str, float]) -> float | None:
    """`raw` as a number in the first unit of `accepted` ({unit: factor to it}); the value's own
    unit must be one of them (or absent, then `declared` is used). None when uncertain."""
    found = quantity(raw)
    if found is None:
        return None
    unit = found.unit or declared
    factor = accepted.get(unit)
    return None if factor is None else found.value * factor
