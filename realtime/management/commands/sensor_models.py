"""The device-model catalogue as the README's table (the README's copy is checked by the tests)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from realtime.ttn import catalogue
from realtime.ttn.catalogue import DeviceModel

_UNITS = {"C": "°C", "F": "°F", "K": "K"}


def _where(model: DeviceModel) -> str:
    where = model.temperature or " or ".join(model.channels)
    if model.readings:
        where += f"{', ' if where else ''}{model.readings.path} (several readings)"
    return f"`{where}`"


def _unit(model: DeviceModel) -> str:
    if model.unit_note:
        return "not certain: set it in the override"
    return _UNITS.get(model.unit or "", "written with the value")


def _notes(model: DeviceModel) -> str:
    notes = []
    if model.channels:
        notes.append("several probes: choose one in the device's override")
    if model.no_reading:
        notes.append("no reading: " + ", ".join(f"`{value}`" for value in model.no_reading))
    if model.housing:
        notes.append(f"housing `{model.housing}` never stored")
    if model.fault_when:
        notes.append(f"fault when `{model.fault_when}`")
    if model.valid_when:
        notes.append(f"fault unless `{model.valid_when}`")
    if model.battery_unit:
        notes.append(f"battery in {model.battery_unit}")
    return "; ".join(notes)


def table() -> str:
    lines = ["| `brand_id/model_id` | model | product temperature | unit | notes |", "|---|---|---|---|---|"]
    for (brand_id, model_id), model in sorted(catalogue.models().items()):
        lines.append(f"| `{brand_id}/{model_id}` | {model.name} | {_where(model)} | {_unit(model)} | {_notes(model)} |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the device-model catalogue as a Markdown table (the README's list of supported models)."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(table())
